"""Held-out evaluation of pre-training (examples/jaket_examples/evaluation.py)."""

import torch
from jaket_examples.evaluation import PretrainingEvaluation, prepare_heldout_sentences, prepare_outside_graph
from jaket_examples.pretraining import PretrainingInputs

from modeling_jaket import EntityContextMemory, JaketForPreTraining, KnowledgeGraph

from conftest import tiny_config


ENTITIES = ["dog-n", "canine-n", "bark-v", "cat-n"]
ROWS = [
    {"text": "a dog barks at a cat", "mentions": [
        {"start": 2, "end": 5, "entity": "dog-n", "lemma": "dog"},
        {"start": 6, "end": 11, "entity": "bark-v", "lemma": "bark"},
        {"start": 17, "end": 20, "entity": "cat-n", "lemma": "cat"}]},
    {"text": "the canine sleeps", "mentions": [{"start": 4, "end": 10, "entity": "canine-n", "lemma": "canine"},
                                            {"start": 11, "end": 17, "entity": "sleep-v", "lemma": "sleep"}]},
]  # fmt: skip
# dog has two senses, its true one first; bark two, the true one second; cat and canine one each
SENSES = {("dog", "n"): ["dog-n", "frump-n"], ("bark", "v"): ["bay-v", "bark-v"], ("cat", "n"): ["cat-n"],
          ("canine", "n"): ["canine-n"]}  # fmt: skip
DESCRIPTIONS = {"frump-n": ("frump", "frump: a dull unattractive person"), "bay-v": ("bay", "bay: to howl")}


def graph():
    return KnowledgeGraph([0, 1, 3], [0, 0, 1], [1, 0, 0], 4, 2, entity_categories=[0, 0, 1, 0],
                          entity_ids=ENTITIES, entity_names=["dog", "canine", "bark", "cat"],
                          entity_descriptions=["dog: a canine", "canine: a dog", "bark: to woof", "cat: a feline"])  # fmt: skip


def test_removed_mentions_keep_their_senses_and_the_evaluation_scores_them(bert_tokenizer):
    kg = graph()
    build = PretrainingInputs(bert_tokenizer, kg, entity_mask_probability=1.0, num_roots=2, num_neighbour_negatives=1,
                              num_random_negatives=2)  # fmt: skip
    sentences = prepare_heldout_sentences(ROWS, bert_tokenizer, kg, build, SENSES, batch_size=2)
    # every linked mention is removed; "sleep" links no graph entity; only dog and bark have two senses
    assert sorted(sentences.senses) == sorted([(["dog-n", "frump-n"], "dog-n"), (["bay-v", "bark-v"], "bark-v")])
    (inputs, sense_rows), = sentences.batches
    assert sense_rows.shape == inputs["masked_entity_starts"].shape == (2, 3)
    assert int((sense_rows >= 0).sum()) == 2 and sense_rows[0, 0] >= 0 and sense_rows[0, 1] >= 0  # dog, bark

    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(bert_tokenizer), num_entity_categories=2, num_relation_types=2)
    model = JaketForPreTraining(config)
    memory = EntityContextMemory(4, 2, config.hidden_size)
    memory.refresh(model, *[{"input_ids": [[101, 2000 + i, 102] for i in range(n)], "mention_starts": [1] * n,
                             "mention_ends": [1] * n} for n in (4, 2)])  # fmt: skip
    outside = prepare_outside_graph(kg, bert_tokenizer, num_entities=4, num_pairs=2)
    evaluation = PretrainingEvaluation(sentences, outside, DESCRIPTIONS, kg, bert_tokenizer)
    results = evaluation(model.train(), memory, torch.device("cpu"))
    assert model.training  # restored
    assert results["heldout_masked_entities"] == 4 and results["wsd_mentions"] == 2
    assert results["wsd_most_frequent_sense_hits_at_1"] == 0.5  # dog's first sense is right, bark's is not
    assert results["outside_entities"] == 4 and results["outside_held_edges"] == 1
    for key in ("heldout_masked_token_accuracy", "heldout_masked_entity_hits_at_1", "wsd_hits_at_1",
                "outside_category_accuracy", "outside_relation_type_accuracy"):  # fmt: skip
        assert 0.0 <= results[key] <= 1.0, key
    assert evaluation(model, memory, torch.device("cpu")) == results  # fixed masks: the same figures twice
