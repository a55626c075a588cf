import gzip
import json
from pathlib import Path

import pytest

import datasets_scripts as ds
from conftest import DATA_DIR
from datasets_scripts.common import DataFormatError
from datasets_scripts.wordnet import find_wordnet, read_wordnet, split_heldout


@pytest.fixture(scope="module")
def kg(datasets_cache):
    return ds.load("wordnet_semcor", DATA_DIR, cache_dir=datasets_cache)


@pytest.fixture(scope="module")
def semcor(datasets_cache):
    return ds.load("wordnet_semcor", DATA_DIR, config_name="text", cache_dir=datasets_cache)["train"]


@pytest.mark.data
def test_kg_counts_match_wordnet(kg):
    entities = kg["entities"]
    ids = entities["id"][:]
    assert len(entities) == 117_659 and len(set(ids)) == 117_659
    assert entities.features["category"].num_classes == 45
    assert entities.features["category"].names[:2] == ["adj.all", "adj.pert"]
    assert len(kg["relations"]) == 26
    # 377,592 pointers in the files; distinct at synset level (lexical pointers between the same synsets coincide)
    triples = kg["triples"].to_pandas()
    assert 360_000 < len(triples) <= 377_592
    assert set(triples["head"]) <= set(ids) and set(triples["tail"]) <= set(ids)
    dog = entities[ids.index("02084071-n")]
    assert dog["name"] == "dog" and dog["description"].startswith("dog, domestic dog, Canis familiaris: a member")
    assert entities.features["category"].int2str(dog["category"]) == "noun.animal"


@pytest.mark.data
def test_heldout_part_is_seeded_and_about_a_tenth(kg, datasets_cache):
    parts = kg["entities"]["part"][:]
    assert abs(parts.count("heldout") - 11_766) <= 1
    wordnet = read_wordnet(find_wordnet(DATA_DIR))
    assert split_heldout(wordnet, 0.1, 0) == [p == "heldout" for p in parts]  # the same seed, the same split
    other = ds.load("wordnet_semcor", DATA_DIR, config_name="entities", cache_dir=datasets_cache, split_seed=1)
    assert other["train"]["part"][:] != parts
    # grown as regions, so the held-out graph keeps edges of its own
    heldout = {i for i, p in zip(kg["entities"]["id"][:], parts) if p == "heldout"}
    triples = kg["triples"].to_pandas()
    internal = (triples["head"].isin(heldout) & triples["tail"].isin(heldout)).sum()
    assert internal > len(heldout)  # more than one edge per held-out synset


@pytest.mark.data
def test_semcor_sentences_link_pretraining_synsets_only(semcor, kg):
    assert len(semcor) == 37_176
    part = dict(zip(kg["entities"]["id"], kg["entities"]["part"]))
    first = semcor[0]
    assert first["id"] == "brown1/br-a01/1" and first["text"].startswith("The Fulton County Grand Jury said")
    spans = [first["text"][m["start"] : m["end"]] for m in first["mentions"]]
    assert spans[:3] == ["Fulton County Grand Jury", "Friday", "investigation"]
    mentions = [m for row in semcor.select(range(2000)) for m in row["mentions"]]
    assert all(part[m["entity"]] == "pretrain" for m in mentions)
    assert len(mentions) > 10_000


@pytest.mark.data
def test_gloss_examples_are_the_text_without_semcor(datasets_cache):
    text = ds.load("wordnet_semcor", DATA_DIR / "wordnet-3.0", config_name="text", cache_dir=datasets_cache)["train"]
    assert len(text) > 40_000
    row = next(r for r in text if r["mentions"])
    mention = row["text"][row["mentions"][0]["start"] : row["mentions"][0]["end"]]
    assert mention and row["id"].startswith(row["mentions"][0]["entity"])


LEXNAMES = "00\tadj.all\t3\n01\tnoun.Tops\t1\n"
NOUN = (
    "  1 This software and database is being provided to you, the LICENSEE  \n"
    '00001740 01 n 01 entity 0 001 ~ 00001930 n 0000 | that which is perceived; "an entity exists"  \n'
    "00001930 01 n 01 physical_entity 0 001 @ 00001740 n 0000 | an entity that has physical existence  \n"
)


def write_wordnet(folder, noun=NOUN, lexnames=LEXNAMES):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lexnames").write_text(lexnames)
    (folder / "data.noun").write_text(noun)
    for name in ("data.verb", "data.adj", "data.adv"):
        (folder / name).write_text("  1 license header only\n")
    return folder


def test_a_small_wordnet_builds(tmp_path):
    kg = ds.load(
        "wordnet_semcor", write_wordnet(tmp_path / "wn"), cache_dir=str(tmp_path / "cache"), heldout_fraction=0.5
    )
    assert kg["entities"]["id"] == ["00001740-n", "00001930-n"] and len(kg["triples"]) == 2


@pytest.mark.parametrize(
    "noun, message",
    [
        (NOUN.replace("001 ~ 00001930 n 0000", "002 ~ 00001930 n 0000"), r"data.noun, line 2: not a WNDB synset line"),
        (NOUN.replace(" | an entity that", " an entity that"), r"data.noun, line 3: not a WNDB synset line"),
        (NOUN.replace("~ 00001930", "?? 00001930"), r"data.noun, line 2: unknown pointer symbol '\?\?'"),
        (NOUN.replace("01 n 01 physical", "07 n 01 physical"), r"line 3: synset type 'n' / lexicographer file 7"),
        (NOUN.replace("@ 00001740 n", "@ 00009999 n"), "points \\(@\\) at unknown synset 00009999-n"),
        ("", "data.noun is empty"),
    ],
)
def test_malformed_wordnet_names_file_and_line(tmp_path, noun, message):
    with pytest.raises(DataFormatError, match=message):
        ds.load("wordnet_semcor", write_wordnet(tmp_path / "wn", noun=noun), cache_dir=str(tmp_path / "cache"))


def test_missing_wordnet_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m datasets_scripts.download DIR --only wordnet-3.0"):
        ds.load("wordnet_semcor", tmp_path, cache_dir=str(tmp_path / "cache"))


def write_semcor(path, senses_per_line):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, senses in enumerate(senses_per_line):
            f.write(json.dumps({"doc": "d", "sent": i, "tokens": ["an", "entity", "here"], "senses": senses}) + "\n")


def test_semcor_mentions_of_unknown_synsets_are_counted_and_fail_past_five_percent(tmp_path, caplog):
    folder = write_wordnet(tmp_path / "wn")
    good = [[1, "entity", "NN", "entity%1:03:00::", "00001740-n"]]
    path = tmp_path / "semcor.jsonl.gz"
    write_semcor(path, [good] * 30 + [[[1, "x", "NN", "x%1", "99999999-n"]]])  # 1 of 31 unknown: 3%, reported
    text = ds.load(
        "wordnet_semcor",
        folder,
        config_name="text",
        cache_dir=str(tmp_path / "c1"),
        semcor_file=str(path),
        heldout_fraction=0.01,
    )["train"]
    assert len(text) == 31 and text[30]["mentions"] == [] and "dropped 1 of 31 mentions" in caplog.text
    write_semcor(path, [good] * 10 + [[[1, "x", "NN", "x%1", "99999999-n"]]] * 2)  # 2 of 12: fails
    with pytest.raises(DataFormatError, match=r"dropped 2 of 12 mentions \(16.67%\).*more than the 5% allowed"):
        ds.load("wordnet_semcor", folder, config_name="text", cache_dir=str(tmp_path / "c2"), semcor_file=str(path))


def test_malformed_semcor_line_is_named(tmp_path):
    folder = write_wordnet(tmp_path / "wn")
    path = tmp_path / "semcor.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"doc": "d", "sent": 1, "tokens": ["a"], "senses": []}) + "\n{not json\n")
    with pytest.raises(DataFormatError, match=r"semcor.jsonl.gz, line 2: not valid JSON"):
        ds.load("wordnet_semcor", folder, config_name="text", cache_dir=str(tmp_path / "c"), semcor_file=str(path))
    write_semcor(path, [[[7, "entity", "NN", "k", "00001740-n"]]])
    with pytest.raises(DataFormatError, match="line 1: sense .* is not"):
        ds.load("wordnet_semcor", folder, config_name="text", cache_dir=str(tmp_path / "c3"), semcor_file=str(path))
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps({"doc": "d", "sent": 1, "tokens": ["a"], "senses": []}) + "\n" for _ in range(2)))
    with pytest.raises(DataFormatError, match="semcor.jsonl.gz, line 2: sentence d/1 was given before, on line 1"):
        ds.load("wordnet_semcor", folder, config_name="text", cache_dir=str(tmp_path / "c4"), semcor_file=str(path))


def test_load_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset 'wordnet'"):
        ds.load("wordnet")
    with pytest.raises(ValueError, match="has no config 'kb'"):
        ds.load("wordnet_semcor", DATA_DIR, config_name="kb")


@pytest.mark.data
def test_the_prepared_cache_is_named_by_the_builder_version(kg, datasets_cache):
    from datasets_scripts.wordnet_semcor import BUILDER_VERSION

    # a builder that writes something new bumps its version, so an older prepared copy is never read back
    assert str(BUILDER_VERSION) == "1.1.0"
    assert list(Path(datasets_cache).glob(f"wordnet_semcor/entities-*/{BUILDER_VERSION}"))
