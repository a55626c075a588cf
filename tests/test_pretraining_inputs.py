"""One pre-training step's inputs (examples/jaket_training/pretraining.py), down to the loss they give."""

from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from jaket_training.data import surface_forms
from jaket_training.pretraining import LOSS_INPUTS, select_losses, to_model_inputs
from modeling_jaket import EntityContextMemory, JaketForPreTraining, KnowledgeGraph
from tokenization import (
    DataCollatorForJaketPreTraining,
    DataCollatorWithMentions,
    confusable_entities,
    tokenize_with_mentions,
)

TEXTS = ["a dog barks at a cat", "the cat sleeps"]
MENTIONS = [[(2, 5, 0), (17, 20, 1)], [(4, 7, 1)]]  # dog, cat; cat


@pytest.fixture
def step_inputs(bert_tokenizer):
    graph = KnowledgeGraph([0, 1, 2], [0, 1, 0], [1, 2, 0], 3, 2, entity_categories=[0, 1, 2])
    encoding = tokenize_with_mentions(bert_tokenizer, TEXTS, MENTIONS, num_entities=3)
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id)(
        [{k: encoding[k][i] for k in encoding if k != "num_truncated_mentions"} for i in range(len(TEXTS))]
    )

    def build(entity_mask_probability):
        inputs = DataCollatorForJaketPreTraining(
            bert_tokenizer,
            graph,
            entity_mask_probability=entity_mask_probability,
            num_roots=2,
            num_neighbour_negatives=2,
            num_random_negatives=3,
        )
        return inputs.build(batch, torch.Generator().manual_seed(0))

    return build


@pytest.mark.parametrize("entity_mask_probability", [0.0, 1.0])
def test_no_or_all_mentions_removed_give_a_finite_loss(step_inputs, bert_tokenizer, entity_mask_probability):
    inputs = step_inputs(entity_mask_probability)
    removed = int(entity_mask_probability > 0) * 2  # the most mentions a sentence has, all removed, or none
    assert inputs["masked_entity_starts"].shape == (2, removed)
    assert inputs["masked_entity_candidate_ids"].shape == (2, removed, 1 + 2 + 3)
    assert int((inputs["mention_entity_ids"] >= 0).sum()) == (3 if removed == 0 else 0)

    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(bert_tokenizer), num_entity_categories=3, num_relation_types=2)
    model = JaketForPreTraining(config)
    memory = EntityContextMemory(3, 2, config.hidden_size)
    memory.entity_embeddings.normal_()
    memory.relation_embeddings.normal_()
    model_inputs = to_model_inputs(inputs, memory, torch.device("cpu"))
    assert model_inputs["masked_entity_candidate_embeddings"].shape == (2, removed, 6, config.hidden_size)
    outputs = model(**model_inputs)
    assert torch.isfinite(outputs.loss)
    assert (outputs.masked_entity_loss == 0) == (removed == 0)
    assert outputs.masked_entity_logits.shape == (2, removed, 6)


def test_every_edge_between_a_held_pair_is_hidden_in_both_directions(bert_tokenizer):
    # a chain with every edge in both directions (relation 0 one way, its inverse 1 the other), as WordNet has
    heads, tails = list(range(9)), list(range(1, 10))
    graph = KnowledgeGraph(heads + tails, [0] * 9 + [1] * 9, tails + heads, 10, 2)
    encoding = tokenize_with_mentions(bert_tokenizer, TEXTS, [[], []], num_entities=10)
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id)(
        [{k: encoding[k][i] for k in encoding if k != "num_truncated_mentions"} for i in range(len(TEXTS))]
    )
    for seed in range(5):
        inputs = DataCollatorForJaketPreTraining(bert_tokenizer, graph, num_roots=4, num_relation_pairs=3).build(
            batch, torch.Generator().manual_seed(seed)
        )
        held = {
            frozenset(pair)
            for pair in zip(inputs["relation_head_index"].tolist(), inputs["relation_tail_index"].tolist())
        }
        visible = {frozenset(pair) for pair in inputs["edge_index"].t().tolist()}
        assert len(held) == 3 and not held & visible


def test_relation_embeddings_reach_the_knowledge_module_only_when_asked(step_inputs):
    inputs = step_inputs(0.0)
    memory = EntityContextMemory(3, 2, 8)
    memory.relation_embeddings.normal_()
    assert not to_model_inputs(inputs, memory, torch.device("cpu"))["relation_embeddings"].any()  # §3.5
    with_relations = to_model_inputs(inputs, memory, torch.device("cpu"), relation_embeddings=True)
    torch.testing.assert_close(with_relations["relation_embeddings"], memory.relation_embeddings)


def test_surface_forms_come_from_names_mention_spans_and_lemmas():
    graph = KnowledgeGraph(
        [], [], [], 3, 1, entity_names=["bank", "bank", "river_bank"], entity_ids=["b1", "b2", "rb"]
    )
    text = {
        "text": ["Banks of the river"],
        "mentions": [
            [
                {"start": 0, "end": 5, "entity": "b2", "lemma": "bank"},
                {"start": 13, "end": 18, "entity": "zz", "lemma": "river"},
            ]
        ],
    }
    assert surface_forms(graph, text) == [{"bank"}, {"bank", "banks"}, {"river bank"}]  # "zz" is not in the graph


def test_confusable_entities_join_every_two_entities_of_a_form_and_cap_large_forms():
    confusables = confusable_entities([{"bank"}, {"bank", "shore"}, {"shore"}, {"river"}])
    pairs = set(zip(confusables.targets.tolist(), confusables.neighbours.tolist()))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1)}
    capped = confusable_entities([{"set"}] * 6, max_per_form=2)
    assert capped.degree().tolist() == [2] * 6 and capped.num_triples == 12


def test_hard_negatives_are_entities_sharing_a_surface_form(bert_tokenizer):
    graph = KnowledgeGraph([0, 1, 2], [0, 1, 0], [1, 2, 0], 40, 2)
    confusables = confusable_entities([{"dog"}, {"cat"}] + [set()] * 37 + [{"dog"}])  # dog: entities 0 and 39
    encoding = tokenize_with_mentions(bert_tokenizer, TEXTS, MENTIONS, num_entities=40)
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id)(
        [{k: encoding[k][i] for k in encoding if k != "num_truncated_mentions"} for i in range(len(TEXTS))]
    )
    build = DataCollatorForJaketPreTraining(
        bert_tokenizer,
        graph,
        entity_mask_probability=1.0,
        num_neighbour_negatives=2,
        num_random_negatives=3,
        num_hard_negatives=1,
        confusables=confusables,
    )
    inputs = build.build(batch, torch.Generator().manual_seed(0))
    candidates, labels = inputs["masked_entity_candidate_ids"], inputs["masked_entity_labels"]
    assert candidates.shape == (2, 2, 1 + 2 + 1 + 3)
    true = candidates[..., 0][labels == 0].tolist()
    hard = candidates[..., 3][labels == 0].tolist()
    assert sorted(true) == [0, 1, 1] and all(h == 39 for t, h in zip(true, hard) if t == 0)
    with pytest.raises(ValueError, match="num_hard_negatives needs `confusables`"):
        DataCollatorForJaketPreTraining(bert_tokenizer, graph, num_hard_negatives=1)
    for setting, message in (  # each was accepted: 1.5 masked everything, -1 roots sampled none
        ({"mlm_probability": 1.5}, r"mlm_probability must be a probability in \[0, 1\], got 1.5"),
        ({"entity_mask_probability": -0.5}, r"entity_mask_probability must be a probability in \[0, 1\], got -0.5"),
        ({"num_roots": -1}, "num_roots must be a non-negative integer, got -1"),
        ({"num_random_negatives": 2.0}, "num_random_negatives must be a non-negative integer, got 2.0"),
        ({"fanouts": (10, -1)}, r"fanouts must be non-negative integers .* got \(10, -1\)"),
    ):
        with pytest.raises(ValueError, match=message):
            DataCollatorForJaketPreTraining(bert_tokenizer, graph, **setting)


def test_a_subset_of_losses_keeps_only_what_those_losses_read(step_inputs):
    inputs = step_inputs(0.5)
    category = select_losses(inputs, {"entity_category"})  # the knowledge module alone: no text, no other labels
    assert set(category) == {"subgraph_entity_ids", "edge_index", "edge_type", "entity_category_labels"}
    text_only = select_losses(inputs, {"masked_lm"})  # the language model alone, on the same masked text
    assert set(text_only) == {"input_ids", "attention_mask", "labels"}
    torch.testing.assert_close(text_only["input_ids"], inputs["input_ids"])
    assert select_losses(inputs, set(LOSS_INPUTS)) == inputs
    with pytest.raises(ValueError, match=r"unknown losses \['masked_lm_loss'\]"):
        select_losses(inputs, {"masked_lm_loss"})


def test_the_collator_draws_alike_in_any_worker_and_afresh_each_epoch(bert_tokenizer):
    graph = KnowledgeGraph([0, 1, 2, 3], [0, 1, 0, 1], [1, 2, 3, 0], 4, 2, entity_categories=[0, 1, 2, 0])
    texts = [f"the {animal} met a dog and a cat" for animal in ("cow", "hen", "owl", "ant", "bee", "elk")]
    mentions = [[(4, 7, i % 4), (14, 17, 0), (24, 27, 1)] for i in range(len(texts))]
    encoding = tokenize_with_mentions(bert_tokenizer, texts, mentions, num_entities=4)
    features = [{k: encoding[k][i] for k in encoding} for i in range(len(texts))]
    collator = DataCollatorForJaketPreTraining(bert_tokenizer, graph, entity_mask_probability=0.5, num_roots=2, seed=7)

    def epoch(num_workers, epoch=0):
        collator.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(features, batch_size=2, collate_fn=collator, num_workers=num_workers)
        return list(loader)

    persistent = torch.utils.data.DataLoader(
        features, batch_size=2, collate_fn=collator, num_workers=1, persistent_workers=True
    )
    by_persistent_worker = []
    for number in range(2):  # one worker for both epochs, started with the collator at epoch 0
        collator.set_epoch(number)
        by_persistent_worker.append(list(persistent))

    def same(a, b):
        return (
            all(a[k] is None and b[k] is None or a[k] is not None and torch.equal(a[k], b[k]) for k in a)
            and a.keys() == b.keys()
        )

    in_process, in_workers = epoch(0), epoch(2)
    assert len(in_process) == 3 and all(same(a, b) for a, b in zip(in_process, in_workers))
    assert not same(in_process[0], epoch(0, epoch=1)[0])  # a new epoch masks the same texts anew
    other_rank = DataCollatorForJaketPreTraining(
        bert_tokenizer, graph, entity_mask_probability=0.5, num_roots=2, seed=7, process_index=1
    )
    assert not same(in_process[0], other_rank(features[:2]))
    assert not same(in_process[0], collator(features[:2]))  # the collator is at epoch 1 now
    collator.set_epoch(0)
    assert same(in_process[1], collator(features[2:4]))  # a batch's inputs do not depend on what came before
    assert all(same(a, b) for a, b in zip(in_process, by_persistent_worker[0]))
    # set_epoch reaches a worker that persists across epochs: its second epoch is epoch 1's, not a repeat of 0's
    assert all(same(a, b) for a, b in zip(epoch(0, epoch=1), by_persistent_worker[1]))
    assert not same(by_persistent_worker[0][0], by_persistent_worker[1][0])


@pytest.mark.parametrize("cores, processes, workers", [(16, 8, 1), (16, 1, 4), (112, 8, 4), (2, 1, 1), (2, 2, 0)])
def test_default_workers_are_a_process_share_of_the_cores_less_one(monkeypatch, cores, processes, workers):
    from jaket_training.pretraining import default_num_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_num_workers(processes) == workers


def test_memory_dtype_auto_halves_the_table_on_a_gpu_only():
    from jaket_training.pretraining import memory_dtype

    assert memory_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert memory_dtype("auto", torch.device("cpu")) == torch.float32
    assert memory_dtype("float16", torch.device("cpu")) == torch.float16


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").is_file(), reason="Linux's /proc gives private memory")
def test_memory_use_tells_allocated_memory_from_read_file_pages(tmp_path):
    """Benchmark 11 counts a rank's private memory an entity; pages of files only that rank read are private too
    (and reclaimable), so the log gives that clean part apart from what the process allocated and wrote."""
    import mmap
    import os
    import re

    from jaket_training.training_log import memory_use

    def figures():
        private, clean = re.search(r"private now (\d+) MiB, of which clean (\d+) MiB", memory_use()).groups()
        return int(private), int(clean)

    file = tmp_path / "pages.bin"
    with open(file, "wb") as f:
        f.write(b"\1" * (64 << 20))
        os.fsync(f.fileno())  # written back: its cached pages are clean, as a prepared folder's are
    private, clean = figures()
    block = b"\2" * (128 << 20)  # allocated and written: private, not clean
    with_block = figures()
    assert with_block[0] - private >= 120 and with_block[1] - clean < 16
    with open(file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        touched = sum(view[i] for i in range(0, len(view), 4096))  # read, not written: clean pages of a file
        with_file = figures()
    assert touched == (64 << 20) // 4096
    assert with_file[1] - with_block[1] >= 60 and with_file[0] - with_block[0] >= 60  # read pages: clean private
    del block


def test_without_merging_masked_mentions_no_merged_mention_holds_a_masked_token(bert_tokenizer):
    from modeling_jaket.collator import holds_target

    graph = KnowledgeGraph([0, 1, 2], [0, 1, 0], [1, 2, 0], 3, 2, entity_categories=[0, 1, 2])
    encoding = tokenize_with_mentions(bert_tokenizer, TEXTS, MENTIONS, num_entities=3)
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id)(
        [{k: encoding[k][i] for k in encoding} for i in range(len(TEXTS))]
    )
    settings = dict(entity_mask_probability=0.0, mlm_probability=0.5, num_roots=2)
    merged = DataCollatorForJaketPreTraining(bert_tokenizer, graph, **settings).build(
        batch, torch.Generator().manual_seed(3)
    )
    held = DataCollatorForJaketPreTraining(bert_tokenizer, graph, merge_masked_mentions=False, **settings).build(
        batch, torch.Generator().manual_seed(3)
    )
    assert torch.equal(merged["labels"], held["labels"]) and torch.equal(held["input_ids"], merged["input_ids"])
    assert torch.equal(merged["subgraph_entity_ids"], held["subgraph_entity_ids"])  # the same draws, the same graph
    with_target = holds_target(merged["labels"], merged["mention_starts"], merged["mention_ends"])
    assert with_target.any() and not holds_target(held["labels"], held["mention_starts"], held["mention_ends"]).any()
    assert torch.equal(held["mention_starts"] >= 0, (merged["mention_starts"] >= 0) & ~with_target)


def test_category_targets_sampled_leaves_out_entities_that_receive_no_visible_edge(bert_tokenizer):
    # a path 0 <- 1 <- 2 <- 3 <- 4 (each edge also the other way, relation 1), seeds from one mention of entity 0
    heads, tails = [1, 2, 3, 4, 0, 1, 2, 3], [0, 1, 2, 3, 1, 2, 3, 4]
    graph = KnowledgeGraph(heads, [0] * 4 + [1] * 4, tails, 5, 2, entity_categories=[0, 1, 0, 1, 0])
    encoding = tokenize_with_mentions(bert_tokenizer, ["a dog"], [[(2, 5, 0)]], num_entities=5)
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id)([{k: encoding[k][0] for k in encoding}])
    settings = dict(entity_mask_probability=0.0, num_roots=0, fanouts=(2, 2), num_relation_pairs=0)

    def build(targets):
        collator = DataCollatorForJaketPreTraining(bert_tokenizer, graph, category_targets=targets, **settings)
        return collator.build(batch, torch.Generator().manual_seed(0))

    every, sampled = build("all"), build("sampled")
    assert torch.equal(every["subgraph_entity_ids"], sampled["subgraph_entity_ids"])
    entities = every["subgraph_entity_ids"].tolist()
    assert sorted(entities) == [0, 1, 2]  # the seed, its neighbour, and theirs (the last hop: no edges of its own)
    assert (every["entity_category_labels"] >= 0).all()
    receives = set(every["edge_index"][1].tolist())
    assert receives == {entities.index(0), entities.index(1)}
    expected = [label if i in receives else -100 for i, label in enumerate(every["entity_category_labels"].tolist())]
    assert sampled["entity_category_labels"].tolist() == expected
    with pytest.raises(ValueError, match="category_targets must be one of"):
        DataCollatorForJaketPreTraining(bert_tokenizer, graph, category_targets="leaves")
