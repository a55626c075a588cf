"""JaketProcessor and MentionFinder on a small hand-made graph: every input JaketModel.forward takes, from text."""

import pytest
import torch
from transformers import AutoProcessor, AutoTokenizer

from conftest import tiny_config
from modeling_jaket import (
    EntityContextMemory,
    JaketForPreTraining,
    JaketModel,
    JaketProcessor,
    KnowledgeGraph,
    MentionFinder,
    link_mentions,
)
from tokenization import encode_descriptions

NAMES = ["dog", "canine", "carnivore", "dog", "cat"]
DESCRIPTIONS = [
    "dog: a domesticated canine",
    "canine: a mammal of the dog family",
    "carnivore: a mammal that eats meat",
    "dog: a dull unattractive person",
    "cat: a feline mammal",
]
ALIASES = [["domestic dog"], ["canid"], [], ["frump"], ["true cat"]]
KEYS = ["Q144", "Q1", "Q2", "Q3", "Q146"]
GRAPH_INPUTS = ("subgraph_entity_ids", "edge_index", "edge_type", "entity_init_embeddings", "relation_embeddings")


@pytest.fixture(scope="module")
def parts(minilm_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    graph = KnowledgeGraph(
        [0, 1, 3, 4],
        [0, 0, 0, 0],
        [1, 2, 1, 2],
        num_entities=5,
        num_relations=1,
        entity_names=NAMES,
        entity_descriptions=DESCRIPTIONS,
        relation_names=["is a"],
        relation_descriptions=["is a: is a kind of"],
        entity_aliases=ALIASES,
        entity_ids=KEYS,
    )
    torch.manual_seed(0)
    config = tiny_config(vocab_size=tokenizer.vocab_size, num_entity_categories=3, num_relation_types=2)
    model = JaketForPreTraining(config).eval()
    memory = EntityContextMemory(5, 1, config.hidden_size)
    memory.refresh(
        model,
        encode_descriptions(tokenizer, NAMES, DESCRIPTIONS),
        encode_descriptions(tokenizer, ["is a"], ["is a: is a kind of"]),
    )
    return tokenizer, graph, memory, model


@pytest.fixture
def processor(parts):
    tokenizer, graph, memory, _ = parts
    return JaketProcessor(tokenizer, graph, memory)


def test_mention_finder_takes_the_longest_name_or_alias_and_lists_named_entities_first(parts):
    finder = MentionFinder(parts[1])
    text = "A Domestic Dog, a canid and a dog."
    assert finder.find(text) == [(2, 14, [0]), (18, 23, [1]), (30, 33, [0, 3])]
    assert [text[s:e] for s, e, _ in finder.find(text)] == ["Domestic Dog", "canid", "dog"]
    assert finder.candidates("frump") == [3] and finder.candidates("unicorn") == []


def test_processor_returns_every_input_of_the_forward(parts, processor):
    inputs = processor("The canine barked.", entity_spans=[(4, 10)], entities=["canine"])
    assert set(inputs) == {
        "input_ids",
        "attention_mask",
        "mention_entity_ids",
        "mention_starts",
        "mention_ends",
    } | set(GRAPH_INPUTS)
    assert inputs["mention_entity_ids"].tolist() == [[1]]
    assert inputs["subgraph_entity_ids"][0] == 1  # the seeds come first
    assert torch.equal(inputs["entity_init_embeddings"], parts[2].lookup(inputs["subgraph_entity_ids"]))
    output = parts[3](**inputs)
    assert output.entity_embeddings.shape == (inputs["subgraph_entity_ids"].numel(), parts[3].config.hidden_size)
    text_only = processor("The canine barked.", entity_spans=[(4, 10)], entities=["canine"], return_graph_inputs=False)
    assert set(text_only) == set(inputs) - set(GRAPH_INPUTS)
    assert all(torch.equal(text_only[k], inputs[k]) for k in text_only)


def test_an_entity_is_an_id_a_key_or_a_name_or_alias_of_one_entity(processor):
    text, span = "The canine barked.", [(4, 10)]
    by = [processor(text, entity_spans=span, entities=[e])["mention_entity_ids"] for e in (1, "Q1", "canine", "canid")]
    assert all(torch.equal(ids, by[0]) for ids in by)
    with pytest.raises(ValueError, match=r"'dog' names 2 entities"):
        processor("A dog.", entity_spans=[(2, 5)], entities=["dog"])
    with pytest.raises(ValueError, match=r"entity 0: 'unicorn' names no entity"):
        processor("A dog.", entity_spans=[(2, 5)], entities=["unicorn"])
    with pytest.raises(ValueError, match=r"entity id 9 is outside \[0, 5\)"):
        processor("A dog.", entity_spans=[(2, 5)], entities=[9])


def test_link_mentions_chooses_among_each_name_s_candidates_and_the_processor_takes_its_output(parts, processor):
    texts = ["A dog and a cat.", "No entity here."]
    linked = link_mentions(parts[3], processor, texts)
    assert [(start, end) for start, end, _ in linked[0]] == [(2, 5), (12, 15)] and linked[1] == []
    assert linked[0][0][2] in (0, 3) and linked[0][1][2] == 4  # "dog": one of its two senses; "cat"
    inputs = processor(
        texts,
        entity_spans=[[(s, e) for s, e, _ in row] for row in linked],
        entities=[[entity for *_, entity in row] for row in linked],
    )
    assert inputs["mention_entity_ids"].tolist() == [[linked[0][0][2], 4], [-1, -1]]
    with pytest.raises(ValueError, match="span 0: 'A' is no name or alias"):
        link_mentions(parts[3], processor, ["A dog."], entity_spans=[[(0, 1)]])
    for model in ("model", JaketModel(tiny_config())):  # AttributeErrors about device and jaket
        with pytest.raises(ValueError, match=f"needs a JaketForPreTraining .* got {type(model).__name__}"):
            link_mentions(model, processor, ["A dog."])


def test_without_entities_the_processor_gives_the_text_inputs_and_which_spans_it_kept(processor):
    with pytest.raises(ValueError, match=r"entities were not given: pass entities=, or link the mentions first"):
        processor("A dog.")
    inputs = processor(["A dog and a cat.", "A cat."], return_graph_inputs=False)  # spans found by name
    assert set(inputs) == {"input_ids", "attention_mask", "mention_starts", "mention_ends", "mention_indices"}
    assert inputs["mention_indices"].tolist() == [[0, 1], [0, -1]]
    cut = processor("A dog and a cat.", entity_spans=[(12, 15), (2, 5)], max_length=4, return_graph_inputs=False)
    assert cut["mention_indices"].tolist() == [[1]]  # span 1 ("dog") is first in text and the only one kept


def test_batched_call_equals_one_call_per_text_in_its_text_inputs(processor):
    texts, spans, entities = ["A canid.", "The cat and the dog."], [[(2, 7)], [(4, 7), (16, 19)]], [["Q1"], [4, 0]]
    batch = processor(texts, entity_spans=spans, entities=entities)
    for i, text in enumerate(texts):
        one = processor(text, entity_spans=spans[i], entities=entities[i])
        width = one["input_ids"].shape[1]
        assert torch.equal(batch["input_ids"][i, :width], one["input_ids"][0])
        mentions = len(spans[i])
        assert torch.equal(batch["mention_entity_ids"][i, :mentions], one["mention_entity_ids"][0])
        assert torch.equal(batch["mention_starts"][i, :mentions], one["mention_starts"][0])


def test_bad_calls_name_what_is_wrong(processor):
    with pytest.raises(ValueError, match="example 0: text is empty"):
        processor("  ", entity_spans=[], entities=[])
    with pytest.raises(ValueError, match="1 entity_spans but 2 entities"):
        processor("A dog.", entity_spans=[(2, 5)], entities=[0, 1])
    with pytest.raises(ValueError, match="without entity_spans"):
        processor("A dog.", entities=[0])
    with pytest.raises(ValueError, match=r"span 0: \(2,\) is not"):
        processor("A dog.", entity_spans=[(2,)], entities=[0])
    with pytest.raises(ValueError, match="entity_spans has 1 lists for 2 texts"):
        processor(["A dog.", "A cat."], entity_spans=[[(2, 5)]], entities=[[0], [4]])
    with pytest.raises(ValueError, match="no memory"):
        JaketProcessor(processor.tokenizer, processor.graph)("A cat.", entity_spans=[(2, 5)], entities=[4])
    with pytest.raises(ValueError, match="text must be a string or a list of strings, got NoneType"):
        processor(None)
    with pytest.raises(ValueError, match="example 1: text must be a string, got int"):
        processor(["A dog.", 3])
    with pytest.raises(ValueError, match=r"span 0: 2 is not \(start, end\) characters; entity_spans is a list"):
        processor("A dog.", entity_spans=(2, 5), entities=[0])  # a TypeError about len()


def test_save_and_auto_processor_load_give_the_same_inputs(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert (tmp_path / "graph" / "graph.json").is_file() and (tmp_path / "entity_memory.safetensors").is_file()
    assert loaded.graph.entity_aliases == ALIASES and loaded.fanouts == processor.fanouts
    call = dict(text="The dog and a canid.", entity_spans=[(4, 7), (14, 19)], entities=["Q144", 1])
    expected, got = processor(**call), loaded(**call)
    assert set(expected) == set(got) and all(torch.equal(expected[k], got[k]) for k in expected)


def test_a_processor_saved_without_graph_and_memory_loads_for_text_alone(tmp_path, parts):
    JaketProcessor(parts[0]).save_pretrained(tmp_path)  # what a text-only baseline's folder holds
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert loaded.graph is None and loaded.memory is None
    inputs = loaded(["A dog.", "Two cats."], entity_spans=[[], []], entities=[[], []])
    assert inputs["input_ids"].shape[0] == 2 and "subgraph_entity_ids" not in inputs
    with pytest.raises(ValueError, match="this JaketProcessor has no graph"):
        loaded("A dog.")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fanouts": 5}, r"fanouts must be a list of neighbour counts, one a hop, got 5"),  # was a TypeError
        ({"fanouts": [-1, 2]}, r"fanouts must be integers in \[0, 2\*\*31\) .* got \[-1, 2\]"),
        ({"seed": "abc"}, r"seed must be an integer in \[-2\*\*63, 2\*\*64\) .* got 'abc'"),  # was accepted
        ({"max_length": -5}, r"max_length must be an integer in \[3, 2\*\*31\) .* got -5"),  # was an OverflowError
        ({"max_length": 0}, r"max_length must be an integer in \[3, 2\*\*31\) .* got 0"),  # was "no truncation"
        ({"max_length": "abc"}, r"max_length must be an integer in \[3, 2\*\*31\) .* got 'abc'"),
    ],
)
def test_a_saved_processor_s_bad_setting_names_the_file_and_field(tmp_path, processor, change, message):
    import json

    processor.save_pretrained(tmp_path)
    path = tmp_path / "processor_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=r"processor_config.json: " + message):
        AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    with pytest.raises(ValueError, match=message):  # the same rule when the processor is built in code
        JaketProcessor(processor.tokenizer, **change)


def test_a_saved_folder_s_parts_are_checked_against_each_other(tmp_path, processor, caplog):
    import json

    processor.save_pretrained(tmp_path)
    path = tmp_path / "processor_config.json"
    settings = json.loads(path.read_text())
    path.write_text(json.dumps({**settings, "fanout": [3]}))
    with caplog.at_level("WARNING"):
        loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert "unknown setting 'fanout' ignored (did you mean 'fanouts'?)" in caplog.text  # was ignored silently
    assert loaded.fanouts == processor.fanouts
    path.write_text(json.dumps(settings)[:-1] + ', "seed": 5}')
    with pytest.raises(ValueError, match="processor_config.json: key 'seed' appears more than once"):
        AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    path.write_text(json.dumps(settings))
    EntityContextMemory(5, 2, processor.memory.entity_embeddings.shape[1]).save_pretrained(
        tmp_path
    )  # a relation too many
    with pytest.raises(ValueError, match="the graph has 1 relations but the memory 2"):
        AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)


def test_per_call_length_padding_and_tensor_type_as_a_tokenizer_takes_them(processor):
    import numpy as np

    call = dict(text=["The dog and a canid.", "A cat."], entity_spans=[[(4, 7), (14, 19)], [(2, 5)]])
    call["entities"] = [["Q144", 1], [4]]
    tensors = processor(**call)
    for kind, convert in (("np", np.asarray), (None, lambda value: value)):
        other = processor(**call, return_tensors=kind)
        assert set(other) == set(tensors)
        for key in tensors:
            assert isinstance(other[key], np.ndarray if kind == "np" else list), key
            assert np.array_equal(np.asarray(convert(other[key])), tensors[key].numpy()), key
    padded = processor(**call, padding="max_length", max_length=16)
    assert padded["input_ids"].shape == (2, 16) and padded["attention_mask"][:, -1].tolist() == [0, 0]
    assert torch.equal(padded["input_ids"][:, : tensors["input_ids"].shape[1]], tensors["input_ids"])
    short = processor(**call, max_length=4)  # this call only: "The dog" and the start and end tokens
    assert short["input_ids"].shape[1] == 4 and short["mention_entity_ids"].tolist() == [[0], [4]]
    assert processor(**call)["input_ids"].shape == tensors["input_ids"].shape  # the processor's setting is kept
    whole = processor(**call, max_length=4, truncation=False)  # every token and mention, max_length unused
    for key in tensors:
        assert torch.equal(whole[key], tensors[key]), key
    longer = processor(**call, max_length=4, truncation=False, padding="max_length")  # to a multiple of max_length
    assert longer["input_ids"].shape[1] == 4 * -(-tensors["input_ids"].shape[1] // 4)
    for bad, message in (
        (dict(truncation="longest_first"), "truncation must be True or False, got 'longest_first'"),
        (dict(return_tensors="tf"), "return_tensors must be 'pt', 'np' or None, got 'tf'"),
        (dict(padding="do_not_pad"), "padding must be True, 'longest' or 'max_length', got 'do_not_pad'"),
        (dict(max_length=0), r"max_length must be an integer in \[3, 2\*\*31\)"),
    ):
        with pytest.raises(ValueError, match=message):
            processor(**call, **bad)


def test_a_text_pair_s_mentions_follow_the_text_s_as_luke_s_tokenizer_takes_them(processor):
    text, pair = "The dog barked.", "A canid and a cat."
    inputs = processor(
        text, entity_spans=[(4, 7)], entities=[0], text_pair=pair, entity_spans_pair=[(2, 7), (14, 17)],
        entities_pair=["canid", 4],
    )  # fmt: skip
    assert inputs["mention_entity_ids"].tolist() == [[0, 1, 4]]
    expected = processor.tokenizer(text, pair)
    assert inputs["input_ids"][0].tolist() == expected["input_ids"]
    assert inputs["token_type_ids"][0].tolist() == expected["token_type_ids"]  # BERT: the pair is type 1
    assert set(inputs["subgraph_entity_ids"][:3].tolist()) == {0, 1, 4}  # every mentioned entity is a seed
    found = processor(text, text_pair=pair, return_graph_inputs=False)  # spans found by name in both
    assert found["mention_indices"].tolist() == [[0, 1, 2]]
    with pytest.raises(ValueError, match="entity_spans_pair and entities_pair need text_pair"):
        processor(text, entity_spans=[(4, 7)], entities=[0], entity_spans_pair=[(2, 7)])
    with pytest.raises(ValueError, match="text_pair must be a string for one text"):
        processor(text, entity_spans=[(4, 7)], entities=[0], text_pair=[pair])
    with pytest.raises(ValueError, match="example 0: 1 entity_spans_pair but 0 entities_pair"):
        processor(text, entity_spans=[(4, 7)], entities=[0], text_pair=pair, entity_spans_pair=[(2, 7)])
