"""A knowledge graph of your own: the user_kg builder on the example KG and on broken files, and entity classification
on it in one command."""

import json
import shutil
from pathlib import Path

import pytest

import datasets_scripts as ds
from conftest import assert_share_of
from datasets_scripts import DataFormatError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example_kg"


def test_the_example_kg_loads_as_every_builder_does(tmp_path):
    kg = ds.load("user_kg", EXAMPLE, cache_dir=str(tmp_path))
    assert (len(kg["entities"]), len(kg["relations"]), len(kg["triples"])) == (24, 3, 25)
    names = kg["entities"].features["category"].names
    assert names == ["animal", "place", "plant"]
    dog = kg["entities"][0]
    assert dog["id"] == "dog" and names[dog["category"]] == "animal" and dog["description"].startswith("dog: ")
    assert kg["entities"][23]["category"] == -1  # "canine" has no category: left out of classification
    splits = ds.load("user_kg", EXAMPLE, config_name="fraction-100", cache_dir=str(tmp_path))
    sizes = {name: len(split) for name, split in splits.items()}
    assert sizes == {"train": 5, "validation": 5, "test": 13}  # 23 labelled entities, 20/20/60
    ids = [set(split["id"][:]) for split in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and "canine" not in set().union(*ids)
    five = ds.load("user_kg", EXAMPLE, config_name="fraction-5", cache_dir=str(tmp_path))
    assert len(five["train"]) == 1 and five["test"]["id"][:] == splits["test"]["id"][:]


def test_json_lines_give_the_same_graph(tmp_path):
    folder = tmp_path / "kg"
    folder.mkdir()
    for name in ("entities", "relations", "triples"):
        lines = (EXAMPLE / f"{name}.tsv").read_text().splitlines()
        header = lines[0].split("\t")
        rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    from_json = ds.load("user_kg", folder, cache_dir=str(tmp_path / "c1"))
    from_tsv = ds.load("user_kg", EXAMPLE, cache_dir=str(tmp_path / "c2"))
    for part in ("entities", "relations", "triples"):
        assert from_json[part].to_list() == from_tsv[part].to_list()


def broken(tmp_path, name, text):
    folder = tmp_path / "kg"
    shutil.copytree(EXAMPLE, folder)
    (folder / f"{name}.tsv").write_text(text)
    return folder


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("entities", "id\tname\n", r"entities.tsv, line 1: the header names no \['description'\] column"),
        ("triples", "head\trelation\ttail\n", "triples.tsv has a header but no rows"),
        (
            "entities",
            "id\tname\tdescription\nx\tx\tx: y\nx\tx\tx: z\n",
            "entities.tsv, line 3: id 'x' was given before, on line 2",
        ),
        ("entities", "id\tname\tdescription\nx\tx\n", "entities.tsv, line 2: 2 fields where the header has 3"),
        (
            "entities",
            "id\tname\tdescription\nx\tx\t \n",
            "entities.tsv, line 2: entities need a non-empty string 'description'",
        ),
        (
            "triples",
            "head\trelation\ttail\ndog\tkind_of\tunicorn\n",
            "triples.tsv, line 2: tail 'unicorn' is not among the entities",
        ),
        (
            "triples",
            "head\trelation\ttail\ndog\tloves\tcat\n",
            "triples.tsv, line 2: relation 'loves' is not among the relations",
        ),
        ("relations", "", "relations.tsv is empty"),
    ],
)
def test_broken_files_are_named(tmp_path, name, text, message):
    with pytest.raises(DataFormatError, match=message):
        ds.load("user_kg", broken(tmp_path, name, text), cache_dir=str(tmp_path / "cache"))


def test_a_builder_is_constructed_from_the_entities_file_alone(tmp_path):
    """The features (the category names) come from the entities file; the triples are read when preparing."""
    from datasets_scripts.user_kg import UserKG

    folder = broken(tmp_path, "triples", "head\trelation\ttail\ndog\tkind_of\tunicorn\n")
    expected = ds.load("user_kg", EXAMPLE, cache_dir=str(tmp_path / "c1"))["entities"].features["category"].names
    builder = UserKG(config_name="entities", data_dir=str(folder), cache_dir=str(tmp_path / "c2"))
    assert builder.info.features["category"].names == expected and len(expected) > 1
    with pytest.raises(DataFormatError, match="tail 'unicorn' is not among the entities"):
        ds.load("user_kg", folder, cache_dir=str(tmp_path / "c3"))


def test_missing_or_doubled_files_are_named(tmp_path):
    folder = tmp_path / "kg"
    shutil.copytree(EXAMPLE, folder)
    (folder / "triples.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="must hold one of triples.jsonl and triples.tsv, it holds neither"):
        ds.load("user_kg", folder, cache_dir=str(tmp_path / "c"))
    (folder / "triples.tsv").write_text("head\trelation\ttail\n")
    (folder / "triples.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="it holds both"):
        ds.load("user_kg", folder, cache_dir=str(tmp_path / "c"))


def test_too_few_labelled_entities_are_refused(tmp_path):
    folder = broken(
        tmp_path,
        "entities",
        "id\tname\tdescription\tcategory\ndog\tdog\tdog: a dog\tanimal\n"
        "wolf\twolf\twolf: a wolf\tplant\ncanine\tcanine\tcanine: a canine\t\n"
        "kind_of\tk\tk: k\t\n",
    )
    (folder / "triples.tsv").write_text("head\trelation\ttail\ndog\tkind_of\tcanine\n")
    with pytest.raises(DataFormatError, match="2 entities have a category; classification needs at least 3"):
        ds.load("user_kg", folder, config_name="fraction-100", cache_dir=str(tmp_path / "c"))


@pytest.mark.scripts
@pytest.mark.data
@pytest.mark.parametrize("method", ["jaket", "lm_gnn_m"])
def test_one_command_fine_tunes_and_tests_entity_classification_on_it(
    method, tmp_path, pretrained, tiny_bert_checkpoint
):
    from finetune_entity_classification import main as entity_classification
    from huggingface_hub import ModelCard

    source = (
        ["--model_name_or_path", str(pretrained[0])] if method == "jaket" else ["--backbone", tiny_bert_checkpoint]
    )
    [record] = entity_classification(
        [
            "--kg_dir",
            str(EXAMPLE),
            "--method",
            method,
            *source,
            "--output_dir",
            str(tmp_path),
            "--dataset_cache_dir",
            str(tmp_path / "cache"),
            "--step_budget",
            "3",
            "--learning_rate_grid",
            "1",
            "--fractions",
            "100",
        ]
    )
    test_size = len(ds.load("user_kg", EXAMPLE, config_name="fraction-100", cache_dir=str(tmp_path / "cache"))["test"])
    assert set(record["accuracy"]) == {"100%"}
    assert_share_of(record["accuracy"]["100%"], test_size)
    assert record["chosen"]["100%"]["steps"] == 3 and record["chosen"]["100%"]["learning_rate"] == 1e-3
    card = ModelCard.load(tmp_path / f"{method}-100-seed42" / "README.md")
    assert card.data.datasets == ["user_kg"] and len(card.data.eval_results) == 1


def test_one_category_is_no_classification_task(tmp_path):
    lines = (EXAMPLE / "entities.tsv").read_text().splitlines()
    rows = [line.rsplit("\t", 1)[0] + ("\tanimal" if line.rsplit("\t", 1)[1] else "\t") for line in lines[1:]]
    folder = broken(tmp_path, "entities", lines[0] + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=r"the entities name 1 categories \(\['animal'\]\); .* at least two"):
        ds.load("user_kg", folder, config_name="fraction-100", cache_dir=str(tmp_path / "c"))


def test_ids_and_categories_are_normalised_and_integer_categories_kept(tmp_path):
    """Spaces around ids and categories go; JSON integer categories are categories (1 and "1" are one); a repeated
    triple is kept once; a repeated header column is refused."""
    folder = tmp_path / "kg"
    folder.mkdir()
    entities = [
        {"id": " dog", "name": "dog", "description": "dog: a dog", "category": 1},
        {"id": "oak ", "name": "oak", "description": "oak: a tree", "category": " 2"},
        {"id": "cat", "name": "cat", "description": "cat: a cat", "category": "1"},
        {"id": "elm", "name": "elm", "description": "elm: a tree", "category": 2},
    ]
    (folder / "entities.jsonl").write_text("".join(json.dumps(row) + "\n" for row in entities))
    (folder / "relations.tsv").write_text("id\tname\tdescription\nnear\tnear\tnear: close to\n")
    (folder / "triples.tsv").write_text("head\trelation\ttail\ndog\tnear\toak\n dog\tnear\toak \ncat\tnear\telm\n")
    kg = ds.load("user_kg", folder, cache_dir=str(tmp_path / "c"))
    assert kg["entities"].features["category"].names == ["1", "2"]
    assert kg["entities"]["id"][:] == ["dog", "oak", "cat", "elm"]
    assert kg["entities"]["category"][:] == [0, 1, 0, 1]
    assert [(t["head"], t["tail"]) for t in kg["triples"]] == [("dog", "oak"), ("cat", "elm")]
    (folder / "relations.tsv").write_text("id\tname\tid\tdescription\nnear\tnear\tnear\tnear: close to\n")
    with pytest.raises(DataFormatError, match=r"relations.tsv, line 1: the header names \['id'\] more than once"):
        ds.load("user_kg", folder, cache_dir=str(tmp_path / "c2"))


def test_a_builder_whose_code_changed_prepares_its_data_again(tmp_path, monkeypatch):
    """datasets names the prepared cache after the builder's code: a cache of an older schema is not read back."""
    cache, original = tmp_path / "cache", ds.code_hash()
    first = ds.load("user_kg", EXAMPLE, cache_dir=str(cache))["entities"]
    monkeypatch.setattr(ds, "code_hash", lambda: "0123456789abcdef")
    again = ds.load("user_kg", EXAMPLE, cache_dir=str(cache))["entities"]
    assert first.to_list() == again.to_list() and "aliases" in again.column_names
    assert {Path(f["filename"]).parent.name for f in again.cache_files} == {"0123456789abcdef"}
    assert {Path(f["filename"]).parent.name for f in first.cache_files} == {original}


def test_aliases_are_a_list_in_json_and_bar_separated_in_tsv(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "kg")
    entities = (tmp_path / "kg" / "entities.tsv").read_text().splitlines()
    header, first, rest = entities[0], entities[1], entities[2:]
    (tmp_path / "kg" / "entities.tsv").write_text(
        "\n".join([header + "\taliases", first + "\tpup | hound |", *[r + "\t" for r in rest]]) + "\n"
    )
    rows = ds.load("user_kg", tmp_path / "kg", cache_dir=str(tmp_path / "cache"))["entities"]
    assert rows[0]["aliases"] == ["pup", "hound"] and rows[1]["aliases"] == []
    (tmp_path / "kg" / "entities.tsv").unlink()
    (tmp_path / "kg" / "entities.jsonl").write_text(
        json.dumps({"id": "x", "name": "x", "description": "x: a thing", "aliases": 3}) + "\n"
    )
    with pytest.raises(DataFormatError, match=r"entities.jsonl, line 1: aliases must be a list of strings"):
        ds.load("user_kg", tmp_path / "kg", cache_dir=str(tmp_path / "cache2"))
    (tmp_path / "kg" / "entities.jsonl").write_text('{"id": "x", "name": "x", "description": "a", "name": "y"}\n')
    with pytest.raises(DataFormatError, match=r"entities.jsonl, line 1: key 'name' appears twice in one object"):
        ds.load("user_kg", tmp_path / "kg", cache_dir=str(tmp_path / "cache3"))  # it kept "y" silently
