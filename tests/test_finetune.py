"""The Trainer fine-tuning scripts, a few steps each on the real data, for JAKET and the paper's baselines."""

import json

import pytest
import torch
from finetune_entity_classification import main as entity_classification
from finetune_entity_classification import parse_args as parse_entity_classification
from finetune_fewrel import main as fewrel
from finetune_fewrel import parse_args as parse_fewrel
from finetune_metaqa import answer_loss
from finetune_metaqa import main as metaqa
from finetune_metaqa import parse_args as parse_metaqa
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

import datasets_scripts
from conftest import DATA_DIR, assert_share_of, tiny_config
from jaket_training.finetuning import initial_memory, load_model, pretrained_head
from modeling_jaket import (
    EntityContextMemory,
    JaketForEntityClassification,
    JaketForSequenceClassification,
    JaketModel,
    KnowledgeGraph,
)
from tokenization import encode_descriptions

# the fair protocol at its smallest: three steps, one learning rate, one validation evaluation
QUICK = ["--step_budget", "3", "--learning_rate_grid", "1", "--num_evaluations", "1"]


def dog_and_cat() -> KnowledgeGraph:
    """Two described entities and one described relation: the smallest graph a memory is computed for."""
    return KnowledgeGraph(
        [0],
        [0],
        [1],
        2,
        1,
        entity_names=["dog", "cat"],
        relation_names=["is"],
        entity_descriptions=["dog: barks", "cat: meows"],
        relation_descriptions=["is: is"],
    )


def entity_classification_test_size(cache_dir) -> int:
    """The labelled entities of the held-out part of WordNet that every fraction is tested on."""
    return len(
        datasets_scripts.load("entity_classification", DATA_DIR, config_name="fraction-5", cache_dir=cache_dir)["test"]
    )


def common(tmp_path, datasets_cache, method, pretrained, backbone, with_control=False):
    """A run's flags. `with_control`: jaket runs beside lm_mlm started from the same folder, the memory encoded once
    (see `assert_control_is_jaket`)."""
    methods = [method]
    if method == "jaket" and with_control:
        methods += ["lm_mlm", "--mlm_control_path", str(pretrained[0]), "--memory_cache_dir", str(tmp_path / "memory")]
    args = [
        "--method",
        *methods,
        "--dataset_cache_dir",
        datasets_cache,
        "--output_dir",
        str(tmp_path),
        "--max_steps",
        "3",
    ]
    return args + (
        ["--model_name_or_path", str(pretrained[0])] if method.startswith("jaket") else ["--backbone", backbone]
    )


def assert_control_is_jaket(records: list[dict], score: str, folder) -> dict:
    """lm_mlm loads --mlm_control_path as jaket loads --model_name_or_path: run second in the process, from the same
    folder, it gives jaket's result, so a method's result does not depend on the methods run before it (each sets
    the seed first; the data and graph are loaded once). Returns the one record of another method's run, or jaket's."""
    if len(records) == 2:
        jaket, control = records
        assert (
            control["method"] == "lm_mlm" and control[score] == jaket[score] and control["chosen"] == jaket["chosen"]
        )
        assert len(list(folder.glob("results-lm_mlm*-seed42.json"))) == 1  # each method writes its own results
    return records[0]


@pytest.mark.scripts
@pytest.mark.data
@pytest.mark.parametrize("method", ["jaket", "gnn", "lm", "jaket_zero_shot", "jaket_from_head"])
def test_entity_classification(method, tmp_path, datasets_cache, pretrained, tiny_bert_checkpoint):
    record = assert_control_is_jaket(
        entity_classification(
            common(tmp_path, datasets_cache, method, pretrained, tiny_bert_checkpoint, with_control=True)
            + ["--fractions", "5", "--per_device_train_batch_size", "16", *QUICK]
        ),
        "accuracy",
        tmp_path,
    )
    assert record["method"] == method and set(record["accuracy"]) == {"5%"}
    assert_share_of(record["accuracy"]["5%"], entity_classification_test_size(datasets_cache))
    saved = json.loads((tmp_path / f"results-{method}-seed42.json").read_text())
    assert saved == record
    model_folder = tmp_path / f"{method}-5-seed42"  # the model as fine-tuned, with its card
    card = ModelCard.load(model_folder / "README.md")
    assert card.data.eval_results[0].metric_value == pytest.approx(record["accuracy"]["5%"])
    model_class = JaketForSequenceClassification if method == "lm" else JaketForEntityClassification
    config = model_class.from_pretrained(model_folder).config
    assert config.num_labels == 45
    if method == "lm":  # the LM baseline has no knowledge module, so no untrained merge LayerNorm either
        assert config.km_num_layers == 0


@pytest.mark.scripts
@pytest.mark.data
def test_bf16_fine_tuning_runs_and_keeps_its_memory_apart(tmp_path, datasets_cache, pretrained):
    """--bf16 (autocast, on the CPU with --use_cpu) through training, testing and LM1 over the descriptions; a bf16
    memory is cached under a key of its own, never served to a float32 run."""
    flags = common(tmp_path, datasets_cache, "jaket", pretrained, None) + [
        "--fractions",
        "5",
        "--memory_cache_dir",
        str(tmp_path / "memories"),
        *QUICK,
    ]
    [half] = entity_classification(flags + ["--bf16", "--use_cpu"])
    [full] = entity_classification(flags)
    for record in (half, full):
        assert_share_of(record["accuracy"]["5%"], entity_classification_test_size(datasets_cache))
    tables = sorted((tmp_path / "memories").glob("memory-*/entity_memory.safetensors"))
    assert len(tables) == 2
    first, second = (load_file(path)["entity_embeddings"] for path in tables)
    assert not torch.equal(first, second) and torch.allclose(first, second, atol=0.1)


@pytest.mark.data
def test_the_category_head_starts_the_classifier_and_zero_shot_trains_nothing(pretrained, tmp_path, datasets_cache):
    from finetune_entity_classification import start_from_category_head

    from modeling_jaket import JaketForPreTraining

    folder = str(pretrained[0])
    model = load_model("jaket", JaketForEntityClassification, folder, None, num_labels=5)  # pre-trained on 45
    with pytest.raises(ValueError, match="scores 45 categories but this task has 5 labels"):
        start_from_category_head(model, folder)
    model = load_model("jaket", JaketForEntityClassification, folder, None, num_labels=45)
    start_from_category_head(model, folder)
    head = JaketForPreTraining.from_pretrained(folder).entity_category_head
    assert torch.equal(model.classifier.weight, head.weight) and torch.equal(model.classifier.bias, head.bias)

    # zero-shot: the same test accuracy whatever the training fraction, since nothing is trained
    [record] = entity_classification(
        common(tmp_path, datasets_cache, "jaket_zero_shot", pretrained, None) + ["--fractions", "100", "5", *QUICK]
    )
    assert record["accuracy"]["100%"] == record["accuracy"]["5%"]


@pytest.mark.parametrize("shard", [None, "20KB"])
def test_a_pretrained_head_is_read_from_the_saved_weights_alone(tmp_path, shard):
    from modeling_jaket import JaketForPreTraining, JaketModel

    torch.manual_seed(0)
    model = JaketForPreTraining(tiny_config())
    model.save_pretrained(tmp_path / "pretrained", **({"max_shard_size": shard} if shard else {}))
    assert (tmp_path / "pretrained" / "model.safetensors.index.json").exists() == bool(shard)
    for head in ("entity_category_head", "masked_entity_head"):
        read = pretrained_head(str(tmp_path / "pretrained"), head)
        expected = getattr(model, head).state_dict()
        assert read.keys() == expected.keys() and all(torch.equal(read[k], expected[k]) for k in expected)
    JaketModel(tiny_config()).save_pretrained(tmp_path / "encoder")  # no pre-training heads
    with pytest.raises(ValueError, match="has no masked_entity_head"):
        pretrained_head(str(tmp_path / "encoder"), "masked_entity_head")


def test_an_identity_start_makes_the_untrained_merge_norm_nearly_pass_lm1_s_output_through(minilm_path):
    # a real encoder: a random one's LM1 ends in a LayerNorm of gain 1 and bias 0, which a fresh one already passes
    from transformers import AutoTokenizer

    from jaket_training.finetuning.methods import start_merge_norm_as_identity
    from modeling_jaket import JaketModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    graph = dog_and_cat()
    model = JaketModel.from_backbone(minilm_path).eval()
    encoding = tokenizer(["a dog barks at the cat", "the cat meows"], padding=True, return_tensors="pt")
    keep = encoding["attention_mask"].bool()

    def change_at_the_merge() -> float:  # how far the merge moves LM1's output Z where no mention is merged
        with torch.no_grad():
            z = model(**encoding, output_hidden_states=True).hidden_states[model.config.num_lm1_layers]
            merged = model.merge(z)
        return float(((merged - z)[keep].norm(dim=-1) / z[keep].norm(dim=-1)).mean())

    assert torch.equal(model.merge.layer_norm.weight, torch.ones_like(model.merge.layer_norm.weight))  # fresh
    fresh = change_at_the_merge()
    start_merge_norm_as_identity(model, tokenizer, graph)
    fitted = change_at_the_merge()
    assert fitted < 0.5 * fresh, (fitted, fresh)
    assert not torch.equal(model.merge.layer_norm.bias, torch.zeros_like(model.merge.layer_norm.bias))


def test_length_buckets_pad_less_and_still_shuffle():
    from finetune_entity_classification import LengthBucketSampler

    lengths = torch.randint(5, 65, (470,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = LengthBucketSampler(lengths, batch_size=64, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(470)) and list(sampler) == first  # every index once; seeded

    def padded_tokens(order):
        return sum(64 * max(lengths[i] for i in order[b : b + 64]) for b in range(0, len(order), 64))

    shuffled = torch.randperm(470, generator=torch.Generator().manual_seed(2)).tolist()
    assert padded_tokens(first) < 0.7 * padded_tokens(shuffled)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(470)) and second != first
    assert [set(first[b : b + 64]) for b in range(0, 470, 64)] != [set(second[b : b + 64]) for b in range(0, 470, 64)]


@pytest.mark.data
def test_the_lm_baseline_fine_tunes_the_whole_backbone_on_descriptions(tmp_path, datasets_cache, tiny_bert_checkpoint):
    [record] = entity_classification(
        [
            "--method",
            "lm",
            "--backbone",
            tiny_bert_checkpoint,
            "--dataset_cache_dir",
            datasets_cache,
            "--output_dir",
            str(tmp_path),
            "--fractions",
            "5",
            *QUICK,
        ]
    )
    chosen, accuracy = record["chosen"], record["accuracy"]
    assert chosen["5%"]["learning_rate"] == 5e-5 and chosen["5%"]["steps"] == 3
    assert set(accuracy) == {"5%"}
    assert_share_of(accuracy["5%"], entity_classification_test_size(datasets_cache))
    folder = tmp_path / "lm-5-seed42"
    backbone = load_file(f"{tiny_bert_checkpoint}/model.safetensors")
    trained = load_file(folder / "model.safetensors")
    for ours, theirs in (
        ("jaket.lm1.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.query.weight"),
        ("jaket.lm2.0.output.dense.weight", "bert.encoder.layer.1.output.dense.weight"),
    ):
        assert not torch.equal(trained[ours], backbone[theirs]), ours  # every layer is trained, not a frozen probe
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["JaketForSequenceClassification"]
    assert not (folder / "entity_memory.safetensors").exists()  # it reads descriptions, no memory


@pytest.mark.data
def test_jaket_fine_tuning_starts_from_the_pretrained_weights_and_recomputes_the_memory(pretrained):
    folder, _ = pretrained
    model = load_model("jaket", JaketForEntityClassification, str(folder), None, num_labels=45)
    checkpoint = load_file(folder / "model.safetensors")
    for key, value in model.jaket.state_dict().items():
        if f"jaket.{key}" in checkpoint:
            torch.testing.assert_close(value, checkpoint[f"jaket.{key}"], rtol=0, atol=0)
    assert sum(f"jaket.{key}" in checkpoint for key in model.jaket.state_dict()) > 20

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    graph = dog_and_cat()
    entities = initial_memory("jaket", model, tokenizer, graph).entity_embeddings
    expected = EntityContextMemory.compute(
        model, encode_descriptions(tokenizer, ["dog", "cat"], ["dog: barks", "cat: meows"])
    )
    torch.testing.assert_close(entities, expected)
    random_entities = initial_memory("lm_gnn", model, tokenizer, graph, seed=3).entity_embeddings
    again = initial_memory("lm_gnn", model, tokenizer, graph, seed=3).entity_embeddings
    assert torch.equal(random_entities, again) and not torch.allclose(random_entities, entities)
    with pytest.raises(ValueError, match="unknown method"):
        load_model("bert", JaketForEntityClassification, None, None)


@pytest.mark.scripts
@pytest.mark.data
@pytest.mark.parametrize("method", ["jaket", "lm"])
def test_fewrel_pair(method, tmp_path, datasets_cache, pretrained, tiny_bert_checkpoint):
    records = fewrel(
        common(tmp_path, datasets_cache, method, pretrained, tiny_bert_checkpoint, with_control=True)
        + [
            "--train_episodes",
            "4",
            "--test_episodes",
            "4",
            "--validation_episodes",
            "2",
            "--n_way",
            "5",
            "--k_shot",
            "1",
            *QUICK,
        ]
    )
    record = assert_control_is_jaket(records, "accuracy", tmp_path)
    assert record["setting"] == "5-way 1-shot" and record["test_episodes"] == 4
    assert record["kg"] == "meta_train" and record["chosen"]["steps"] == 3 and record["chosen"]["step"] == 3
    folder = tmp_path / f"{method}-5-1-seed42"
    assert ModelCard.load(folder / "README.md").data.eval_results[0].metric_value == pytest.approx(record["accuracy"])
    assert (
        EntityContextMemory.from_pretrained(folder).num_entities
        == KnowledgeGraph.from_pretrained(folder / "graph").num_entities
    )
    assert_share_of(record["accuracy"], record["test_episodes"] * 5)  # one query of each of the 5 classes


@pytest.mark.scripts
@pytest.mark.data
@pytest.mark.parametrize(
    "method, hops, kg_setting, head, candidates",
    [("jaket", "1", "full", "masked_entity", "memory"), ("lm_gnn", "2", "half", "linear", "knowledge_module")],
)
def test_metaqa(
    method, hops, kg_setting, head, candidates, tmp_path, datasets_cache, pretrained, tiny_bert_checkpoint
):
    records = metaqa(
        common(tmp_path, datasets_cache, method, pretrained, tiny_bert_checkpoint, with_control=True)
        + [
            "--hops",
            hops,
            "--kg_setting",
            kg_setting,
            "--question_head",
            head,
            "--candidate_embeddings",
            candidates,
            "--max_train_questions",
            "32",
            "--max_test_questions",
            "40",
            *QUICK,
        ]
    )
    record = assert_control_is_jaket(records, "hits@1", tmp_path)
    assert record["test_questions"] == 40 and record["setting"].startswith(f"{hops}-hop")
    assert record["candidate_embeddings"] == candidates
    assert record["chosen"]["steps"] == 3 and record["chosen"]["learning_rate"] == 5e-5
    # an unreachable question cannot be answered, so the reachable subset scores at least as well as all of them
    assert record["hits@1"] <= record["hits@1_reachable"]
    assert_share_of(record["hits@1"], 40)
    saved = load_file(tmp_path / f"{method}-{hops}hop-{kg_setting}-seed42" / "question_projection.safetensors")
    assert set(saved) == ({"w1.weight", "w2.weight"} if head == "masked_entity" else {"weight", "bias"})


@pytest.mark.data
def test_metaqa_s_question_head_can_start_from_the_pretrained_masked_entity_head(pretrained, tmp_path):
    from finetune_metaqa import parse_args, question_projection

    from modeling_jaket import JaketForPreTraining
    from modeling_jaket.modeling_jaket import JaketMaskedEntityHead

    folder = str(pretrained[0])
    config = JaketForPreTraining.from_pretrained(folder).config
    flags = ["--output_dir", str(tmp_path), "--model_name_or_path", folder, "--method", "jaket", "lm_gnn_m"]
    assert question_projection(parse_args(flags), "jaket", config) is None  # the default: a fresh linear layer
    args = parse_args(flags + ["--question_head", "masked_entity"])
    head = question_projection(args, "jaket", config)
    saved = JaketForPreTraining.from_pretrained(folder).masked_entity_head.state_dict()
    assert isinstance(head, JaketMaskedEntityHead) and head.state_dict().keys() == saved.keys()
    assert all(torch.equal(head.state_dict()[k], saved[k]) for k in saved)  # g(x) as L_e left it
    fresh = question_projection(args, "lm_gnn_m", config)  # from the backbone: the same form, fresh
    assert isinstance(fresh, JaketMaskedEntityHead) and not torch.equal(fresh.w1.weight, saved["w1.weight"])


def test_metaqa_scores_candidates_with_their_knowledge_module_embeddings():
    from finetune_metaqa import KGQuestionAnswering, QuestionCollator

    # 0 <- 1 <- 2 <- 3 (and back); questions mention entity 0 or 3, each with two candidates, the answer first
    graph = KnowledgeGraph([1, 2, 3, 0, 1, 2], [0, 0, 0, 1, 1, 1], [0, 1, 2, 1, 2, 3], 4, 2)
    features = [
        dict(
            input_ids=[0, 5, 6, 2],
            attention_mask=[1] * 4,
            mention_entity_ids=[0],
            mention_starts=[1],
            mention_ends=[2],
            candidates=cands,
            answer_ids=[cands[0]],
        )
        for cands in ([2, 1], [3, 0])
    ]
    features[1]["mention_entity_ids"] = [3]
    collate = QuestionCollator(1, graph, (2,), candidate_fanouts=(1,))
    batch = collate(features)
    positions, ids = batch["candidate_positions"], batch["candidate_ids"]
    assert torch.equal(batch["candidate_subgraph_entity_ids"][positions], ids)  # each candidate's own row
    assert batch["candidate_edge_index"].shape[1] == 4  # one sampled neighbour for each of the 4 candidates
    assert "candidate_positions" not in QuestionCollator(1, graph, (2,))(features)  # by default: the memory

    torch.manual_seed(0)
    config = tiny_config(vocab_size=16, num_relation_types=2)
    memory = EntityContextMemory(4, 2, config.hidden_size)
    memory.entity_embeddings.normal_()
    model = KGQuestionAnswering(JaketModel(config), memory)
    with_knowledge = model(**batch)
    by_memory = model(**{k: v for k, v in batch.items() if not k.startswith("candidate_") or k == "candidate_ids"})
    assert not torch.allclose(with_knowledge.logits, by_memory.logits)
    with_knowledge.loss.backward()  # the answer's score trains the module over the candidates' subgraph too
    knowledge_only = KGQuestionAnswering(JaketModel(config), memory)
    knowledge_only.load_state_dict(model.state_dict())
    for key in ("mention_entity_ids", "mention_starts", "mention_ends"):  # no topic merged: the module is reached
        batch[key][:] = -1  # through the candidates alone
    knowledge_only(**batch).loss.backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in knowledge_only.model.knowledge_module.parameters()
    )


def test_metaqa_scores_candidates_by_e_km_except_for_the_lm_alone_which_has_no_module():
    from finetune_metaqa import candidate_embeddings

    args = parse_metaqa(["--output_dir", "x", "--method", "lm_gnn", "lm"])
    assert args.candidate_embeddings == "knowledge_module"  # the default, chosen on validation
    assert candidate_embeddings(args, "lm_gnn") == "knowledge_module" and candidate_embeddings(args, "lm") == "memory"
    memory = parse_metaqa(["--output_dir", "x", "--method", "lm_gnn", "--candidate_embeddings", "memory"])
    assert candidate_embeddings(memory, "lm_gnn") == "memory"


def test_metaqa_loss_ignores_questions_without_an_answer_among_their_candidates():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.3, 0.1, 0.2]], requires_grad=True)
    answer_mask = torch.tensor([[False, True, True], [False, False, False]])
    loss = answer_loss(logits, answer_mask)
    expected = torch.logsumexp(logits[0], 0) - torch.logsumexp(logits[0, 1:], 0)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.equal(logits.grad[1], torch.zeros(3))
    none = answer_loss(logits, torch.zeros_like(answer_mask))
    assert none.item() == 0.0 and none.requires_grad


@pytest.mark.parametrize("script", [entity_classification, fewrel, metaqa])
def test_jaket_without_a_pretrained_model_is_refused_before_anything_loads(script):
    with pytest.raises(ValueError, match="--method jaket needs --model_name_or_path"):
        script([])  # the default method is jaket; before, this failed on loading a tokenizer from None
    with pytest.raises(ValueError, match="--method lm_mlm needs --mlm_control_path"):
        script(["--method", "lm_mlm"])
    if script is entity_classification:
        with pytest.raises(ValueError, match="--method lm_gnn_m_category needs --category_control_path, the output"):
            script(["--method", "lm_gnn_m_category"])
    # the control needs its own folder only
    parse = {entity_classification: parse_entity_classification, fewrel: parse_fewrel, metaqa: parse_metaqa}[script]
    assert parse(["--method", "lm_mlm", "--mlm_control_path", "control"]).model_name_or_path is None


@pytest.mark.data
def test_damaged_weights_are_named(pretrained, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(pretrained[0], folder)
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=f"{weights} is not a readable safetensors file"):
        load_model("jaket", JaketForEntityClassification, str(folder), None, num_labels=45)
    weights.write_bytes(whole)
    (folder / "optimizer.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=f"{folder / 'optimizer.bin'} is empty"):
        load_model("jaket", JaketForEntityClassification, str(folder), None, num_labels=45)


@pytest.mark.scripts
@pytest.mark.data
def test_metaqa_fine_tunes_on_a_k_hop_folder(tmp_path, pretrained, tiny_bert_checkpoint):
    from test_metaqa import CHAIN, write_metaqa

    questions = "who wrote films sharing a director with [M1]\tP2\nwho directed [M2]\tP1\n"
    data = write_metaqa(tmp_path / "metaqa", kb=CHAIN, question=questions, hops_folders=("3-hop",))
    [record] = metaqa(
        common(tmp_path, str(tmp_path / "cache"), "lm_gnn_m", pretrained, tiny_bert_checkpoint)
        + ["--data_dir", str(data), "--hops", "3", *QUICK]
    )
    assert record["setting"] == "3-hop KG-Full" and record["test_questions"] == 2
    assert record["hits@1"] <= record["hits@1_reachable"] == record["hits@1"]  # both answers are within 3 hops
    data = write_metaqa(tmp_path / "one", kb=CHAIN, question=questions.splitlines()[0] + "\n", hops_folders=("3-hop",))
    with pytest.raises(ValueError, match="1 training question with an answer within 3 hops: carving a validation"):
        metaqa(
            common(tmp_path, str(tmp_path / "cache"), "lm_gnn_m", pretrained, tiny_bert_checkpoint)
            + ["--data_dir", str(data), "--hops", "3"]
        )
    with pytest.raises(ValueError, match="--hops must be >= 1, got 0"):
        metaqa(
            common(tmp_path, str(tmp_path / "cache"), "lm_gnn_m", pretrained, tiny_bert_checkpoint) + ["--hops", "0"]
        )


@pytest.mark.data
def test_description_memories_are_cached_under_a_key_of_what_they_depend_on(tmp_path, monkeypatch, pretrained):
    from transformers import AutoTokenizer

    folder = str(pretrained[0])
    model = load_model("jaket", JaketForEntityClassification, folder, None, num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    graph = dog_and_cat()

    def tables(memory):
        return memory.entity_embeddings, memory.relation_embeddings

    computed = tables(initial_memory("jaket", model, tokenizer, graph, cache_dir=tmp_path))
    assert len(list(tmp_path.glob("memory-*/entity_memory.safetensors"))) == 1

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached memory was recomputed")

    monkeypatch.setattr(EntityContextMemory, "refresh", must_not_run)
    cached = tables(initial_memory("jaket", model, tokenizer, graph, cache_dir=tmp_path))
    for ours, theirs in zip(cached, computed):
        assert torch.equal(ours, theirs)
    monkeypatch.undo()

    with torch.no_grad():  # LM1 changed (another model): another key, computed again
        model.jaket.lm1[0].output.dense.weight.add_(0.01)
    changed = tables(initial_memory("jaket", model, tokenizer, graph, cache_dir=tmp_path))
    assert len(list(tmp_path.glob("memory-*/entity_memory.safetensors"))) == 2
    assert not torch.equal(changed[0], computed[0])
    model.jaket.lm2[0].output.dense.weight.data.add_(0.01)  # LM2 does not encode descriptions: same key
    initial_memory("jaket", model, tokenizer, graph, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("memory-*/entity_memory.safetensors"))) == 2

    # a damaged cache (truncated, then NaN rows, then another graph's rows) is computed again, never used
    newest = max(tmp_path.glob("memory-*/entity_memory.safetensors"), key=lambda path: path.stat().st_mtime)
    state = load_file(newest)
    newest.write_bytes(newest.read_bytes()[:-7])
    torch.testing.assert_close(
        tables(initial_memory("jaket", model, tokenizer, graph, cache_dir=tmp_path))[0], changed[0]
    )
    for damaged in (torch.full_like(changed[0], float("nan")), changed[0][:1]):
        save_file({**state, "entity_embeddings": damaged}, newest)
        again = tables(initial_memory("jaket", model, tokenizer, graph, cache_dir=tmp_path))
        torch.testing.assert_close(again[0], changed[0])
        assert torch.equal(load_file(newest)["entity_embeddings"], again[0])  # and written back whole


def test_validation_is_carved_from_the_training_labels_the_same_for_every_method():
    from jaket_training.finetuning import carve_validation

    entities, labels = list(range(100, 110)), [i % 3 for i in range(10)]
    (train, train_labels), (validation, validation_labels) = carve_validation(entities, labels, 0.2, seed=1)
    assert len(validation) == 2 and sorted(train + validation) == entities
    assert all(labels[e - 100] == label for e, label in zip(train + validation, train_labels + validation_labels))
    assert carve_validation(entities, labels, 0.2, seed=1)[1] == (validation, validation_labels)
    assert len(carve_validation(entities[:2], labels[:2], 0.2, seed=1)[1][0]) == 1  # at least one on each side
    with pytest.raises(ValueError, match="1 training example: carving a validation split"):
        carve_validation(entities[:1], labels[:1], 0.2, seed=1)


def test_every_fraction_gets_the_step_budget_up_to_the_epoch_cap():
    from jaket_training.finetuning import budget_steps

    assert budget_steps(2353, 64, 200, 100) == 200  # 100%: about 5 epochs
    assert budget_steps(94, 64, 200, 100) == 200  # 5%: 100 epochs of 2 batches
    assert budget_steps(94, 64, 200, 10) == 20  # the cap binds


def test_the_head_learns_at_its_own_rate(tmp_path):
    from transformers import TrainingArguments

    from jaket_training.finetuning import HeadRateTrainer

    model = JaketForSequenceClassification(tiny_config(num_labels=3))
    trainer = HeadRateTrainer(
        model=model,
        args=TrainingArguments(str(tmp_path), learning_rate=2e-5, use_cpu=True, report_to="none"),
        head_learning_rate=1e-3,
    )
    rates = {id(p): group["lr"] for group in trainer.create_optimizer().param_groups for p in group["params"]}
    assert {rates[id(p)] for n, p in model.named_parameters() if n.startswith("classifier.")} == {1e-3}
    assert {rates[id(p)] for n, p in model.named_parameters() if not n.startswith("classifier.")} == {2e-5}
    sgd = HeadRateTrainer(
        model=model,
        args=TrainingArguments(str(tmp_path), optim="sgd", use_cpu=True, report_to="none"),
        head_learning_rate=1e-3,
    )
    assert isinstance(sgd.create_optimizer(), torch.optim.SGD)  # --optim still chooses the optimizer


@pytest.mark.data
def test_settings_are_chosen_on_validation_from_the_grid(tmp_path, datasets_cache, pretrained, tiny_bert_checkpoint):
    flags = common(tmp_path, datasets_cache, "gnn", pretrained, tiny_bert_checkpoint)
    [record] = entity_classification(
        flags
        + ["--fractions", "5", "--step_budget", "4", "--learning_rate_grid", "0.5", "1", "--num_evaluations", "2"]
    )
    chosen = record["chosen"]["5%"]
    assert chosen["learning_rate"] in (5e-4, 1e-3) and chosen["step"] in (2, 4) and chosen["steps"] == 4


@pytest.fixture(scope="module")
def fewrel_instances(datasets_cache):
    import datasets_scripts as ds
    from conftest import DATA_DIR

    return ds.load("fewrel", DATA_DIR / "fewrel", config_name="instances", cache_dir=datasets_cache)


@pytest.mark.data
def test_fewrel_graph_joins_entities_by_the_meta_train_instances_only(fewrel_instances, caplog):
    from finetune_fewrel import entity_graph

    from conftest import DATA_DIR
    from datasets_scripts.common import load_json

    names = load_json(DATA_DIR / "fewrel" / "pid2name.json")
    graph = entity_graph(fewrel_instances, "meta_train", names)
    train = {
        (r["mentions"][0]["entity"], r["relation"], r["mentions"][1]["entity"]) for r in fewrel_instances["train"]
    }
    test_relations = set(fewrel_instances["test"]["relation"][:])
    assert graph.num_triples == 2 * len(train) and graph.num_relations == 2 * 6  # both directions, 6 relations
    assert not test_relations & set(graph.relation_ids)
    heads, tails = graph.targets.tolist(), graph.neighbours.tolist()
    stored = {
        (graph.entity_ids[h], graph.relation_ids[r], graph.entity_ids[t])
        for h, r, t in zip(heads, graph.edge_types.tolist(), tails)
        if r < 6
    }
    assert stored == train
    p = graph.relation_ids[0]
    assert graph.relation_descriptions[0] == f"{names[p][0]}: {names[p][1]}"
    # relations that are no Wikidata property (a FewRel-format folder of one's own): described by their ids, said
    unnamed = {q: v for q, v in names.items() if q != p}
    from transformers.utils import logging

    logging.enable_propagation()
    try:
        graph = entity_graph(fewrel_instances, "meta_train", unnamed)
    finally:
        logging.disable_propagation()
    assert graph.relation_names[0] == graph.relation_descriptions[0] == p
    assert f"1 meta-train relations have no name and description in pid2name.json ({p})" in caplog.text
    isolated = entity_graph(fewrel_instances, "none")
    assert isolated.num_triples == 0 and isolated.entity_ids == graph.entity_ids


@pytest.mark.data
def test_fewrel_user_kg_drops_meta_test_relations_and_describes_its_entities(
    fewrel_instances, tmp_path, datasets_cache
):
    from finetune_fewrel import entity_graph

    import datasets_scripts as ds

    train_row, test_row = fewrel_instances["train"][0], fewrel_instances["test"][0]
    a, b = (m["entity"] for m in train_row["mentions"])
    (tmp_path / "entities.tsv").write_text(f"id\tname\tdescription\n{a}\tA\tA: the first\nQ1\tfar\tfar: a neighbour\n")
    (tmp_path / "relations.tsv").write_text(
        f"id\tname\tdescription\nP1\tnear\tnear: close to\n"
        f"{test_row['relation']}\tanswer\tanswer: a meta-test relation\n"
    )
    (tmp_path / "triples.tsv").write_text(f"head\trelation\ttail\n{a}\tP1\tQ1\n{a}\t{test_row['relation']}\tQ1\n")
    kg = ds.load("user_kg", tmp_path, cache_dir=datasets_cache)
    graph = entity_graph(fewrel_instances, "user", user_kg=kg)
    assert graph.num_triples == 2  # P1 both ways; the meta-test relation's triple is gone
    assert graph.entity_descriptions[graph.entity_index[a]] == "A: the first"
    assert (
        graph.entity_descriptions[graph.entity_index[b]]
        == train_row["text"][train_row["mentions"][1]["start"] : train_row["mentions"][1]["end"]]
    )
    assert "Q1" in graph.entity_index
    (tmp_path / "entities.tsv").write_text("id\tname\tdescription\ndog\tdog\tdog: a dog\ncat\tcat\tcat: a cat\n")
    (tmp_path / "triples.tsv").write_text("head\trelation\ttail\ndog\tP1\tcat\n")
    kg = ds.load("user_kg", tmp_path, cache_dir=datasets_cache)
    with pytest.raises(ValueError, match="none of the 1 triples of your graph .* your graph's ids are 'dog', 'cat'"):
        entity_graph(fewrel_instances, "user", user_kg=kg)  # it trained FewRel on 0 triples of the graph


def test_fewrel_episode_scores_only_its_own_classes():
    """A 10-way run validates on meta-train episodes of 6 relations: no empty class may win by scoring 0."""
    from finetune_fewrel import class_scores

    labels = torch.tensor([0, 0, 1, 1, 2, 2])  # 3 classes x 2 shots
    margins = torch.tensor([[-3.0, -1.0, -2.0, -2.0, -5.0, -9.0], [-4.0, -4.0, -1.0, -1.5, -1.0, -1.0]])
    scores = class_scores(margins, labels)
    assert scores.shape == (2, 3)
    assert torch.allclose(scores, torch.tensor([[-2.0, -2.0, -7.0], [-4.0, -1.25, -1.0]]))
    assert scores.argmax(dim=1).tolist() == [0, 2]  # the first by index among ties, as argmax does


@pytest.mark.parametrize("tokenizer_name", ["bert_tokenizer", "roberta_tokenizer"])
def test_fewrel_pairs_are_the_tokenizer_s_sequence_pairs_with_both_sentences_mentions(tokenizer_name, request):
    from finetune_fewrel import encode_pairs

    tokenizer = request.getfixturevalue(tokenizer_name)
    graph = KnowledgeGraph.from_records(
        [{"id": key, "name": key, "description": key} for key in ("Q1", "Q2", "Q3")],
        [{"id": "P1", "name": "p", "description": "p"}],
        [{"head": "Q1", "relation": "P1", "tail": "Q2"}],
    )
    query = {"text": "Paris is in France.", "mentions": [{"start": 0, "end": 5, "entity": "Q1"}]}
    # head and tail overlap in the support: the first in (start, end) order is kept
    support = {
        "text": "The Seine flows through Paris.",
        "mentions": [
            {"start": 4, "end": 9, "entity": "Q3"},
            {"start": 24, "end": 29, "entity": "Q1"},
            {"start": 24, "end": 28, "entity": "Q2"},
        ],
    }
    encoding = encode_pairs(tokenizer, graph, [query], [support], max_length=64)
    expected = tokenizer(query["text"], support["text"])
    assert encoding["input_ids"][0] == expected["input_ids"]  # the tokenizer's own pair, no hand-made separator
    if "token_type_ids" in expected:
        assert encoding["token_type_ids"][0] == expected["token_type_ids"]
    words = [
        tokenizer.decode(encoding["input_ids"][0][start : end + 1]).strip().lower()
        for start, end in zip(encoding["mention_starts"][0], encoding["mention_ends"][0])
    ]
    assert words == ["paris", "seine", "paris"] and encoding["mention_entity_ids"] == [[0, 2, 1]]
    bare = encode_pairs(tokenizer, graph, [query], [support], max_length=64, use_mentions=False)  # the LM's inputs
    assert bare["input_ids"] == encoding["input_ids"] and bare["mention_starts"] == [[]]


def test_fewrel_pairs_never_see_the_edges_between_their_own_entities(bert_tokenizer):
    from jaket_training.finetuning import DataCollatorWithSubgraph

    # 0 - 1 (both in the first pair), 0 - 2, 2 - 3 (both in the second), both directions
    heads, tails = [0, 0, 2], [1, 2, 3]
    graph = KnowledgeGraph(heads + tails, [0, 0, 0, 1, 1, 1], tails + heads, 4, 2)
    features = [
        {
            "input_ids": [101, 5, 6, 102],
            "attention_mask": [1] * 4,
            "mention_entity_ids": ids,
            "mention_starts": [1, 2],
            "mention_ends": [1, 2],
        }
        for ids in ([0, 1], [2, 3])
    ]
    batch = DataCollatorWithSubgraph(bert_tokenizer.pad_token_id, graph, hide_pair_edges=True)(features)
    ends = batch["subgraph_entity_ids"][batch["edge_index"]].t().tolist()
    assert sorted(map(tuple, ends)) == [(0, 2), (2, 0)]
    every = DataCollatorWithSubgraph(bert_tokenizer.pad_token_id, graph)(features)  # text classification hides nothing
    assert len(every["edge_type"]) == 6


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning_rate=-1e-3"], r"--learning_rate must be > 0, got -0.001"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be >= 1, got 0"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be >= 1, got 0"),
        (["--max_steps", "-5"], r"--max_steps must be >= 1, or -1 \(the epochs decide\), got -5"),
        (["--adam_beta1", "1.5"], r"--adam_beta1 must be in \[0, 1\), got 1.5"),
        (["--step_budget", "0"], "--step_budget must be positive, got 0"),
        (["--validation_share", "1"], r"--validation_share must be in \(0, 1\), got 1.0"),
    ],
)
def test_fine_tuning_flags_out_of_range_are_refused_at_parse_time(flags, message, tmp_path):
    from finetune_entity_classification import parse_args

    with pytest.raises(ValueError, match=message):
        parse_args(["--method", "gnn", "--output_dir", str(tmp_path), *flags])


@pytest.mark.parametrize(
    "script, flags, message",
    [
        ("finetune_fewrel", ["--n_way", "1"], "--n_way must be >= 2, got 1"),
        ("finetune_fewrel", ["--k_shot", "0"], "--k_shot must be >= 1, got 0"),
        ("finetune_fewrel", ["--test_episodes", "0"], "--test_episodes must be >= 1, got 0"),
        (
            "finetune_fewrel",
            ["--num_test_relations", "3"],
            r"--num_test_relations \(3\) must be at least --n_way \(5\)",
        ),
        ("finetune_fewrel", ["--fanouts", "10", "-1"], r"--fanouts must be >= 0 each, got \[10, -1\]"),
        ("finetune_metaqa", ["--max_train_candidates", "1"], "--max_train_candidates must be >= 2, got 1"),
        ("finetune_metaqa", ["--max_test_questions", "0"], "--max_test_questions must be >= 1, got 0"),
        ("finetune_entity_classification", ["--description_length", "0"], "--description_length must be >= 4, got 0"),
        ("finetune_entity_classification", ["--lm_learning_rate", "0"], "--lm_learning_rate must be > 0, got 0.0"),
        ("finetune_text_classification", ["--max_seq_length", "2"], "--max_seq_length must be >= 8, got 2"),
    ],
)
def test_each_script_s_own_flags_are_checked_at_parse_time(script, flags, message, tmp_path):
    import importlib

    parse_args = importlib.import_module(script).parse_args
    files = [f"--{name}_file=x.jsonl" for name in ("train", "validation", "test")] + ["--kg_dir", "kg"]
    extra = files if script == "finetune_text_classification" else []
    with pytest.raises(ValueError, match=message):
        parse_args(["--method", "lm", "--output_dir", str(tmp_path), *extra, *flags])


def test_an_encoding_s_fingerprint_changes_with_each_thing_it_depends_on(bert_tokenizer, tiny_roberta_checkpoint):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from jaket_training.data import encoding_fingerprint

    text = Dataset.from_dict({"text": ["a dog barks"]})
    graph = KnowledgeGraph([0], [0], [1], 2, 1, entity_names=["dog", "cat"])
    first = encoding_fingerprint(text, bert_tokenizer, graph, 64)
    assert encoding_fingerprint(Dataset.from_dict({"text": ["a dog barks"]}), bert_tokenizer, graph, 64) == first
    others = [
        encoding_fingerprint(Dataset.from_dict({"text": ["a cat meows"]}), bert_tokenizer, graph, 64),
        encoding_fingerprint(text, AutoTokenizer.from_pretrained(tiny_roberta_checkpoint), graph, 64),
        encoding_fingerprint(
            text, bert_tokenizer, KnowledgeGraph([0], [0], [1], 2, 1, entity_names=["dog", "cow"]), 64
        ),
        encoding_fingerprint(text, bert_tokenizer, graph, 32),
    ]
    assert len({first, *others}) == 5


@pytest.mark.parametrize("script", [entity_classification, fewrel, metaqa])
def test_a_pretrained_folder_that_does_not_exist_is_named(script, tmp_path):
    """It was an HFValidationError about repo ids, raised while loading."""
    missing = str(tmp_path / "outputs" / "no-such-run")
    with pytest.raises(ValueError, match=f"--model_name_or_path {missing}: no such folder"):
        script(["--model_name_or_path", missing])
    with pytest.raises(ValueError, match="--mlm_control_path ./nowhere: no such folder"):
        script(["--method", "lm_mlm", "--mlm_control_path", "./nowhere"])


@pytest.mark.data
def test_settings_are_chosen_on_the_builder_s_validation_split_unless_carving_is_asked(tmp_path, datasets_cache):
    from finetune_entity_classification import heldout_graph, labelled_splits, parse_args

    flags = ["--method", "gnn", "--dataset_cache_dir", datasets_cache, "--output_dir", str(tmp_path)]
    args = parse_args([*flags, "--fractions", "100", "5"])
    graph = heldout_graph(args.data_dir, args.dataset_cache_dir)
    splits = labelled_splits(args, graph)
    assert splits[100]["validation"] == splits[5]["validation"] and len(splits[5]["validation"][0]) == 2353
    assert len(splits[5]["train"][0]) == round(0.05 * 2353)  # every training label of the fraction is trained on
    assert not set(splits[100]["train"][0]) & set(splits[100]["validation"][0])
    carved = labelled_splits(parse_args([*flags, "--fractions", "5", "--validation_split", "carved"]), graph)[5]
    assert len(carved["validation"][0]) == 24 and len(carved["train"][0]) == round(0.05 * 2353) - 24
    assert set(carved["validation"][0]) <= set(splits[5]["train"][0])  # carved from the training labels


def test_a_memory_cache_miss_tokenizes_the_descriptions_once(tmp_path, monkeypatch, bert_tokenizer):
    from modeling_jaket import tokenization_jaket

    calls = []
    encode = tokenization_jaket.encode_descriptions
    monkeypatch.setattr(tokenization_jaket, "encode_descriptions", lambda *a, **k: calls.append(1) or encode(*a, **k))
    model = JaketForEntityClassification(tiny_config(num_labels=3, vocab_size=bert_tokenizer.vocab_size))
    graph = dog_and_cat()
    missed = initial_memory("lm_gnn_m", model, bert_tokenizer, graph, cache_dir=tmp_path)
    assert len(calls) == 2  # entities and relations, once each: the cache key and LM1 read the same encoding
    hit = initial_memory("lm_gnn_m", model, bert_tokenizer, graph, cache_dir=tmp_path)
    assert len(calls) == 4 and torch.equal(hit.entity_embeddings, missed.entity_embeddings)
    fresh = EntityContextMemory.from_descriptions(model, bert_tokenizer, graph)  # tokenizing itself
    assert torch.equal(fresh.entity_embeddings, missed.entity_embeddings)
