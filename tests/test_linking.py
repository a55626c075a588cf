"""Entity linking with the masked-entity head (modeling_jaket/linking.py)."""

import pytest
import torch

from conftest import tiny_config
from modeling_jaket import EntityContextMemory, JaketForPreTraining, link_entities
from modeling_jaket.linking import candidate_embeddings, score_candidates
from modeling_jaket.modeling_jaket import span_mean
from tokenization import encode_descriptions


@pytest.fixture
def model(bert_tokenizer):
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(bert_tokenizer), num_entity_categories=3, num_relation_types=2)
    return JaketForPreTraining(config).eval()


TEXT = "She walked the dog to the park."
SPAN = (15, 18)  # "dog"


def test_candidates_are_ranked_by_the_masked_entity_score(model, bert_tokenizer):
    memory = EntityContextMemory(4, 1, model.config.hidden_size)
    memory.entity_embeddings.normal_()
    candidates = [3, ("dog", "dog: a domesticated canine"), "a dull unattractive person", 0]
    ranked = link_entities(model, bert_tokenizer, TEXT, SPAN, candidates, memory)

    # the same score by hand: g of the mention's mean start/end output of LM2, against each embedding
    encoding = bert_tokenizer(TEXT, return_tensors="pt")
    hidden = model.jaket(**encoding).last_hidden_state
    query = model.masked_entity_head(span_mean(hidden, torch.tensor([[4]]), torch.tensor([[4]])))[0, 0]
    described = encode_descriptions(
        bert_tokenizer, ["dog", ""], ["dog: a domesticated canine", "a dull unattractive person"]
    )
    table = torch.cat(
        [memory.entity_embeddings[[3]], EntityContextMemory.compute(model, described), memory.entity_embeddings[[0]]]
    )
    expected = (table @ query).tolist()
    assert bert_tokenizer.convert_ids_to_tokens(encoding["input_ids"][0, 4].item()) == "dog"
    assert sorted(expected, reverse=True) == pytest.approx([score for _, score in ranked], rel=1e-5)
    assert {repr(c) for c, _ in ranked} == {repr(c) for c in candidates}
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)


@pytest.mark.parametrize(
    "candidates, memory, message",
    [
        ([], None, "at least one candidate"),
        ([1], None, "pass the memory"),
        ([7], EntityContextMemory(4, 1, 32), "outside the memory"),
        ([True], EntityContextMemory(4, 1, 32), "give an entity id"),
        ([("dog",)], None, "give an entity id"),
    ],
)
def test_bad_candidates_are_named(model, bert_tokenizer, candidates, memory, message):
    with pytest.raises(ValueError, match=message):
        candidate_embeddings(model, bert_tokenizer, candidates, memory)


def test_a_span_outside_the_text_is_named(model, bert_tokenizer):
    with pytest.raises(ValueError, match="out of range"):
        link_entities(model, bert_tokenizer, TEXT, (40, 45), ["a canine"])


def test_each_mention_scores_its_own_candidates_against_its_own_query():
    """score_candidates, which the pipeline and the evaluation rank by: mentions row-major, padding (-1) skipped."""
    memory = EntityContextMemory(5, 1, 4)
    memory.entity_embeddings.normal_()
    queries = torch.randn(2, 3, 4)
    starts = torch.tensor([[1, -1, -1], [2, 5, -1]])
    candidates = [[0, 3], [4], [1, 2, 0]]
    scores = score_candidates(queries, starts, candidates, memory)
    table = memory.entity_embeddings
    assert [len(row) for row in scores] == [1, 2]
    torch.testing.assert_close(scores[0][0], table[[0, 3]] @ queries[0, 0])
    torch.testing.assert_close(scores[1][0], table[[4]] @ queries[1, 0])
    torch.testing.assert_close(scores[1][1], table[[1, 2, 0]] @ queries[1, 1])
    with pytest.raises(ValueError, match="got candidates for 2 mentions, but the batch has 3"):
        score_candidates(queries, starts, candidates[:2], memory)
