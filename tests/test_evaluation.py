"""Held-out evaluation of pre-training (examples/jaket_training/evaluation.py)."""

import pytest
import torch

from conftest import COUNTED_OVER, assert_share_of, tiny_config
from jaket_training.evaluation import (
    PretrainingEvaluation,
    majority_share,
    prepare_heldout_sentences,
    prepare_outside_graph,
    sense_log_prior,
    string_match_hits,
)
from modeling_jaket import EntityContextMemory, JaketForPreTraining, KnowledgeGraph
from tokenization import DataCollatorForJaketPreTraining

ENTITIES = ["dog-n", "canine-n", "bark-v", "cat-n"]
ROWS = [
    {
        "text": "a dog barks at a cat",
        "mentions": [
            {"start": 2, "end": 5, "entity": "dog-n", "lemma": "dog"},
            {"start": 6, "end": 11, "entity": "bark-v", "lemma": "bark"},
            {"start": 17, "end": 20, "entity": "cat-n", "lemma": "cat"},
        ],
    },
    {
        "text": "the canine sleeps",
        "mentions": [
            {"start": 4, "end": 10, "entity": "canine-n", "lemma": "canine"},
            {"start": 11, "end": 17, "entity": "sleep-v", "lemma": "sleep"},
        ],
    },
]
# dog has two senses, its true one first; bark two, the true one second; cat and canine one each
SENSES = {
    ("dog", "n"): ["dog-n", "frump-n"],
    ("bark", "v"): ["bay-v", "bark-v"],
    ("cat", "n"): ["cat-n"],
    ("canine", "n"): ["canine-n"],
}
DESCRIPTIONS = {
    "frump-n": ("frump", "frump: a dull unattractive person"),
    "bay-v": ("bay", "bay: to howl"),
    "dog-n": ("dog", "dog: a canine"),
    "bark-v": ("bark", "bark: to woof"),
}


def graph():
    return KnowledgeGraph(
        [0, 1, 3],
        [0, 0, 1],
        [1, 0, 0],
        4,
        2,
        entity_categories=[0, 0, 1, 0],
        entity_ids=ENTITIES,
        entity_names=["dog", "canine", "bark", "cat"],
        entity_descriptions=["dog: a canine", "canine: a dog", "bark: to woof", "cat: a feline"],
    )


def test_removed_mentions_keep_their_senses_and_the_evaluation_scores_them(bert_tokenizer):
    kg = graph()
    build = DataCollatorForJaketPreTraining(
        bert_tokenizer, kg, entity_mask_probability=1.0, num_roots=2, num_neighbour_negatives=1, num_random_negatives=2
    )
    sentences = prepare_heldout_sentences(ROWS, bert_tokenizer, kg, build, SENSES, batch_size=2)
    # every linked mention is removed; "sleep" links no graph entity; only dog and bark have two senses
    assert sorted(sentences.senses) == sorted([(["dog-n", "frump-n"], "dog-n"), (["bay-v", "bark-v"], "bark-v")])
    ((inputs, sense_rows),) = sentences.batches
    assert sense_rows.shape == inputs["masked_entity_starts"].shape == (2, 3)
    assert int((sense_rows >= 0).sum()) == 2 and sense_rows[0, 0] >= 0 and sense_rows[0, 1] >= 0  # dog, bark

    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(bert_tokenizer), num_entity_categories=2, num_relation_types=2)
    model = JaketForPreTraining(config)
    memory = EntityContextMemory(4, 2, config.hidden_size)
    memory.refresh(
        model,
        *[
            {"input_ids": [[101, 2000 + i, 102] for i in range(n)], "mention_starts": [1] * n, "mention_ends": [1] * n}
            for n in (4, 2)
        ],
    )
    outside = prepare_outside_graph(kg, bert_tokenizer, num_entities=4, num_pairs=2)
    evaluation = PretrainingEvaluation(sentences, outside, DESCRIPTIONS, bert_tokenizer)
    results = evaluation(model.train(), memory, torch.device("cpu"))
    assert model.training  # restored
    assert results["heldout_masked_entities"] == 4 and results["wsd_mentions"] == 2
    assert results["wsd_most_frequent_sense_hits_at_1"] == 0.5  # dog's first sense is right, bark's is not
    assert results["outside_entities"] == 4 and results["outside_held_edges"] == 1
    assert results["outside_category_majority_accuracy"] == 0.75  # categories 0, 0, 1, 0
    assert results["outside_relation_type_majority_accuracy"] == 1.0  # one held edge
    for key, count in COUNTED_OVER.items():
        if key in results:
            assert_share_of(results[key], results[count])
    assert evaluation(model, memory, torch.device("cpu")) == results  # fixed masks: the same figures twice
    assert "wsd_prior_hits_at_1" not in results  # no sense counts given


def test_the_training_texts_sense_prior_ranks_senses_alone_and_with_the_head(bert_tokenizer):
    kg = graph()
    build = DataCollatorForJaketPreTraining(
        bert_tokenizer, kg, entity_mask_probability=1.0, num_roots=2, num_neighbour_negatives=1, num_random_negatives=2
    )
    # the training text saw "dog" as frump (wrong here) and "bark" as bark-v (right) a billion times
    counts = {("dog", "frump-n"): 10**9, ("bark", "bark-v"): 10**9}
    sentences = prepare_heldout_sentences(ROWS, bert_tokenizer, kg, build, SENSES, batch_size=2, sense_counts=counts)
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(bert_tokenizer), num_entity_categories=2, num_relation_types=2)
    model = JaketForPreTraining(config)
    memory = EntityContextMemory(4, 2, config.hidden_size)
    results = PretrainingEvaluation(sentences, None, DESCRIPTIONS, bert_tokenizer)(model, memory, torch.device("cpu"))
    assert results["wsd_prior_hits_at_1"] == 0.5
    assert results["wsd_with_prior_hits_at_1"] == 0.5  # a prior this sure outweighs the head


def test_sense_log_prior_is_add_one_smoothed():
    torch.testing.assert_close(sense_log_prior([0, 2]), torch.tensor([0.25, 0.75]).log())


def test_string_match_picks_at_random_among_the_candidates_whose_forms_match_the_mention():
    forms = [{"dog"}, {"dog", "hound"}, {"cat"}]
    assert string_match_hits({"dog"}, [0, 1, 2], forms) == 0.5  # two candidates are called "dog"
    assert string_match_hits({"dogs", "dog"}, [0, 2], forms) == 1.0  # the text or the lemma may match
    assert string_match_hits({"hound"}, [0, 1, 2], forms) == 0.0  # only a negative matches
    assert string_match_hits({"puppy"}, [0, 1, 2], forms) == 1 / 3  # nothing matches: any candidate


def test_the_string_match_floor_is_averaged_over_the_removed_mentions(bert_tokenizer):
    kg = graph()
    # no negatives: the only candidate is the true entity, which every removed mention's name matches
    build = DataCollatorForJaketPreTraining(
        bert_tokenizer, kg, entity_mask_probability=1.0, num_roots=2, num_neighbour_negatives=0, num_random_negatives=0
    )
    assert prepare_heldout_sentences(ROWS, bert_tokenizer, kg, build, SENSES, batch_size=2).string_match_hits == 4
    # with one random negative: a mention whose text or lemma is among the forms of both candidates or of neither
    # gets 1/2, one that matches only the true entity 1; here only "dog" matches anything, and the mention "dog"
    build.num_random_negatives = 1
    forms = [{"dog"}, {"cat"}, {"cat"}, {"cat"}]
    sentences = prepare_heldout_sentences(ROWS, bert_tokenizer, kg, build, SENSES, batch_size=2, forms=forms)
    assert sentences.string_match_hits == 1.0 + 0.5 * 3  # dog: 1 (no other candidate is "dog"); the rest: 1/2


def test_majority_share_is_the_most_frequent_labels_share():
    assert majority_share(torch.tensor([1, 1, 2, 0])) == 0.5
    assert majority_share(torch.tensor([3])) == 1.0


def test_a_resumed_run_continues_the_history_from_its_step(tmp_path):
    from jaket_training.curve import record_evaluation

    figures = {"heldout_masked_entity_hits_at_1": 0.5, "heldout_masked_entity_string_match_hits_at_1": 0.4}
    for step in (100, 200, 300):
        record_evaluation(tmp_path, {"step": step, **figures})
    history = record_evaluation(tmp_path, {"step": 200, **figures, "heldout_masked_entity_hits_at_1": 0.6})
    assert [(e["step"], e["heldout_masked_entity_hits_at_1"]) for e in history] == [(100, 0.5), (200, 0.6)]
    assert (tmp_path / "eval_curve.png").stat().st_size > 1000


def test_fingerprints_tell_runs_apart_by_every_value():
    """What the pre-training tests compare across ranks, resumes and launchers: equal only for equal tensors."""
    from jaket_training.curve import fingerprint

    weights = [torch.arange(6.0).view(2, 3), torch.ones(4)]
    changed = [weights[0].clone(), weights[1].clone()]
    changed[1][3] += 1e-6
    assert fingerprint(weights) == fingerprint([w.clone() for w in weights])
    assert fingerprint(changed) != fingerprint(weights) != fingerprint(weights[:1])
    assert fingerprint([weights[0].to(torch.bfloat16)]) == fingerprint([weights[0]])  # compared as float32


def test_knowledge_ablations_change_only_what_the_merge_adds(bert_tokenizer):
    from jaket_training.evaluation import ablate_knowledge, merged_positions

    ids = torch.tensor([[3, -1, 5], [7, -1, -1]])
    inputs = {
        "input_ids": torch.zeros(2, 8, dtype=torch.long),
        "mention_entity_ids": ids,
        "mention_starts": torch.tensor([[1, -1, 4], [2, -1, -1]]),
        "mention_ends": torch.tensor([[2, -1, 6], [2, -1, -1]]),
        "masked_entity_starts": torch.tensor([[3], [-1]]),
    }
    covered = merged_positions(inputs)
    assert covered.tolist() == [[i in (1, 2, 4, 5, 6) for i in range(8)], [i == 2 for i in range(8)]]
    generator = torch.Generator().manual_seed(0)
    assert ablate_knowledge(inputs, "merged", generator) is inputs
    zeroed = ablate_knowledge(inputs, "zeroed", generator)
    assert (zeroed["mention_starts"] == -1).all() and (zeroed["mention_entity_ids"] == -1).all()
    assert zeroed["masked_entity_starts"] is inputs["masked_entity_starts"]  # L_e's removed mentions stay
    shuffled = ablate_knowledge(inputs, "shuffled", torch.Generator().manual_seed(1))
    assert sorted(shuffled["mention_entity_ids"][ids >= 0].tolist()) == [3, 5, 7]
    assert torch.equal(shuffled["mention_entity_ids"] >= 0, ids >= 0)
    assert torch.equal(shuffled["mention_starts"], inputs["mention_starts"])
    with pytest.raises(ValueError, match="knowledge ablation must be one of"):
        ablate_knowledge(inputs, "removed", generator)


def test_the_held_out_evaluation_splits_masked_tokens_by_merged_mentions_under_each_ablation(bert_tokenizer):
    kg = graph()
    build = DataCollatorForJaketPreTraining(
        bert_tokenizer, kg, mlm_probability=0.5, entity_mask_probability=0.0, num_roots=2, num_random_negatives=2
    )
    sentences = prepare_heldout_sentences(ROWS, bert_tokenizer, kg, build, SENSES, batch_size=2)
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(bert_tokenizer), num_entity_categories=2, num_relation_types=2)
    model = JaketForPreTraining(config).eval()
    memory = EntityContextMemory(4, 2, config.hidden_size)
    memory.update(torch.randn(4, config.hidden_size), torch.randn(2, config.hidden_size))
    results = {
        ablation: PretrainingEvaluation(sentences, None, DESCRIPTIONS, bert_tokenizer, knowledge_ablation=ablation)(
            model, memory, torch.device("cpu")
        )
        for ablation in ("merged", "zeroed", "shuffled")
    }
    merged = results["merged"]
    assert merged["heldout_masked_tokens_in_mentions"] > 0 and merged["heldout_masked_tokens_outside_mentions"] > 0
    assert (
        merged["heldout_masked_tokens_in_mentions"] + merged["heldout_masked_tokens_outside_mentions"]
        == merged["heldout_masked_tokens"]
    )
    for key, count in COUNTED_OVER.items():
        if key in merged:
            assert_share_of(merged[key], merged[count])
    for ablation in ("zeroed", "shuffled"):  # the same masked tokens, counted alike
        assert all(results[ablation][k] == merged[k] for k in merged if k.startswith("heldout_masked_tokens"))


def test_a_run_of_masked_tokens_alone_is_read_without_merges_as_it_was_trained():
    from jaket_training.evaluation import default_ablation
    from jaket_training.pretraining import select_losses

    assert default_ablation(["masked_lm"]) == "zeroed" and default_ablation(["masked_lm", "masked_entity"]) == "merged"
    step = {"input_ids": 1, "mention_entity_ids": 2, "mention_starts": 3, "mention_ends": 4, "labels": 5}
    assert "mention_entity_ids" not in select_losses(step, {"masked_lm"})  # the control's steps merge nothing


def test_every_run_is_evaluated_on_the_same_masks_and_candidates_whatever_it_trained_with(bert_tokenizer):
    from types import SimpleNamespace

    from jaket_training.evaluation import HELDOUT_TASK, build_evaluation
    from tokenization import confusable_entities

    kg = graph()
    confusables = confusable_entities([{"dog"}, {"dog"}, {"bark"}, {"cat"}])
    args = SimpleNamespace(
        dataset="wikipedia_wikidata",
        losses=["masked_lm", "masked_entity"],
        max_seq_length=32,
        per_device_train_batch_size=2,
        heldout_seed=0,
        relation_embeddings=False,
        memory_batch_size=8,
    )
    data = SimpleNamespace(heldout_text=ROWS * 8, graph=kg, kg=None)  # 32 linked mentions

    def evaluated(**training):
        collator = DataCollatorForJaketPreTraining(bert_tokenizer, kg, confusables=confusables, **training)
        return build_evaluation(args, data, bert_tokenizer, collator, None).sentences

    default = evaluated(**HELDOUT_TASK)
    other = evaluated(
        mlm_probability=0.5,
        entity_mask_probability=1.0,
        num_hard_negatives=0,
        num_random_negatives=9,
        num_roots=3,
        fanouts=(1,),
    )
    assert default.string_match_hits == other.string_match_hits
    for (ours, _), (theirs, _) in zip(default.batches, other.batches, strict=True):
        for key in ("labels", "masked_entity_starts", "masked_entity_candidate_ids", "subgraph_entity_ids"):
            assert torch.equal(ours[key], theirs[key]), key
    removed = sum(int((inputs["masked_entity_starts"] >= 0).sum()) for inputs, _ in default.batches)
    assert 0 < removed < 16  # about 15% of the 32, not all of them as the other run's training removed
