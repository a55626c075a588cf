"""One pre-training step's inputs (examples/jaket_examples/pretraining.py), down to the loss they give."""

import pytest
import torch
from jaket_examples.pretraining import PretrainingInputs, to_model_inputs

from modeling_jaket import EntityContextMemory, JaketForPreTraining, KnowledgeGraph
from tokenization import DataCollatorWithMentions, tokenize_with_mentions

from conftest import tiny_config


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
        inputs = PretrainingInputs(bert_tokenizer, graph, entity_mask_probability=entity_mask_probability,
                                   num_roots=2, num_neighbour_negatives=2, num_random_negatives=3)  # fmt: skip
        return inputs(batch, torch.Generator().manual_seed(0))

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
        inputs = PretrainingInputs(bert_tokenizer, graph, num_roots=4, num_relation_pairs=3)(
            batch, torch.Generator().manual_seed(seed)
        )
        held = {frozenset(pair) for pair in zip(inputs["relation_head_index"].tolist(), inputs["relation_tail_index"].tolist())}
        visible = {frozenset(pair) for pair in inputs["edge_index"].t().tolist()}
        assert len(held) == 3 and not held & visible


def test_relation_embeddings_reach_the_knowledge_module_only_when_asked(step_inputs):
    inputs = step_inputs(0.0)
    memory = EntityContextMemory(3, 2, 8)
    memory.relation_embeddings.normal_()
    assert not to_model_inputs(inputs, memory, torch.device("cpu"))["relation_embeddings"].any()  # §3.5
    with_relations = to_model_inputs(inputs, memory, torch.device("cpu"), relation_embeddings=True)
    torch.testing.assert_close(with_relations["relation_embeddings"], memory.relation_embeddings)
