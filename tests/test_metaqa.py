import pytest

import datasets_scripts as ds
from conftest import DATA_DIR
from datasets_scripts.common import DataFormatError

METAQA = DATA_DIR / "metaqa"


@pytest.fixture(scope="module")
def kg(datasets_cache):
    return ds.load("metaqa", METAQA, cache_dir=datasets_cache)


@pytest.fixture(scope="module")
def one_hop(datasets_cache):
    return ds.load("metaqa", METAQA, config_name="1-hop", cache_dir=datasets_cache)


@pytest.mark.data
def test_kb_and_question_counts(kg, one_hop, datasets_cache):
    assert len(kg["relations"]) == 9 and len(kg["entities"]) > 40_000
    assert len(kg["triples"]) <= 136_216  # repeated lines of kb.txt count once
    assert (len(one_hop["validation"]), len(one_hop["test"])) == (9_992, 9_947)
    two_hop = ds.load("metaqa", METAQA, config_name="2-hop", cache_dir=datasets_cache)
    assert (len(two_hop["validation"]), len(two_hop["test"])) == (14_872, 14_872)
    reachable = sum(two_hop["test"]["reachable"][:]) / len(two_hop["test"])
    assert 0.85 < reachable < 1.0


@pytest.mark.data
def test_questions_carry_topic_mention_answers_and_candidates(kg, one_hop):
    names = kg["entities"]["name"][:]
    row = one_hop["test"][0]
    assert row["question"] == "what does Grégoire Colin appear in" and row["topic"] == "Grégoire Colin"
    mention = row["mentions"][0]
    assert row["question"][mention["start"] : mention["end"]] == "Grégoire Colin"
    assert row["answers"] == ["Before the Rain"] and row["question_type"] == "actor_to_movie"
    assert "Before the Rain" in {names[c] for c in row["candidates"]} and row["reachable"]
    assert names.index("Grégoire Colin") not in row["candidates"]
    assert sum(one_hop["test"]["reachable"][:]) / len(one_hop["test"]) > 0.999


@pytest.mark.data
def test_descriptions_are_training_questions_or_names_and_state_no_triple(kg, one_hop, datasets_cache):
    entities = kg["entities"]
    training_questions = set(one_hop["validation"]["question"][:]) | set(
        ds.load("metaqa", METAQA, config_name="2-hop", cache_dir=datasets_cache)["validation"]["question"][:]
    )
    row = entities[entities["name"][:].index("Grégoire Colin")]
    assert "Grégoire Colin" in row["description"]
    assert entities.features["category"].int2str(row["category"]) == "person"
    names, descriptions = entities["name"][:], entities["description"][:]
    assert all(d in training_questions or d == n for n, d in zip(names, descriptions))
    assert sum(d in training_questions for d in descriptions) > 10_000
    # no description is a triple in words, which would put an answer's edge in the memory
    relations = [r.replace("_", " ") for r in kg["relations"]["id"][:]]
    assert not any(f" {r} " in d for d in descriptions if d not in training_questions for r in relations)


@pytest.mark.data
def test_half_kg_drops_about_half_the_triples(kg, tmp_path):
    half = ds.load("metaqa", METAQA, config_name="triples", cache_dir=str(tmp_path), kg_setting="half")["train"]
    assert abs(len(half) / len(kg["triples"]) - 0.5) < 0.01
    full = set(zip(kg["triples"]["head"][:], kg["triples"]["relation"][:], kg["triples"]["tail"][:]))
    assert set(zip(half["head"][:], half["relation"][:], half["tail"][:])) <= full


def write_metaqa(
    folder,
    kb="Kismet|directed_by|William Dieterle\n",
    question="who directed [Kismet]\tWilliam Dieterle\n",
    hops_folders=("1-hop", "2-hop"),
):
    for hops in hops_folders:
        (folder / hops).mkdir(parents=True, exist_ok=True)
        for split in ("dev", "test"):
            (folder / hops / f"{split}.txt").write_text(question)
            (folder / hops / f"qa_{split}_qtype.txt").write_text("movie_to_director\n" * question.count("\n"))
    (folder / "kb.txt").write_text(kb)
    relations = [
        "directed by",
        "written by",
        "starred actors",
        "release year",
        "in language",
        "has tags",
        "has genre",
        "has imdb votes",
        "has imdb rating",
    ]
    (folder / "relation2text.txt").write_text("".join(f"{i}\t{r}\n" for i, r in enumerate(relations)))
    return folder


def test_a_small_metaqa_builds(tmp_path):
    questions = ds.load("metaqa", write_metaqa(tmp_path / "m"), config_name="1-hop", cache_dir=str(tmp_path / "c"))
    assert questions["test"][0]["reachable"] and questions["test"][0]["candidates"] == [1]


@pytest.mark.parametrize(
    "files, message",
    [
        (
            dict(kb="Kismet|directed_by|William Dieterle\nKismet|directed_by\n"),
            r"kb.txt, line 2: expected 'head\|relation\|tail'",
        ),
        (dict(kb="Kismet|acted|Someone\n"), "kb.txt, line 1"),
        (
            dict(question="who directed Kismet\tWilliam Dieterle\n"),
            r"dev.txt, line 1: expected 'question with \[topic\]",
        ),
        (dict(kb=""), "kb.txt is empty"),
        (  # cut in a tail: it read as a triple with a new entity, "William Diet"
            dict(kb="Kismet|directed_by|William Dieterle\nKismet|written_by|William Diet"),
            r"kb.txt, line 2: 'Kismet\|written_by\|William Diet' ends without a newline, as a file cut short does",
        ),
        (
            dict(question="who directed [Kismet] and [Casablanca]\tWilliam Dieterle\n"),
            r"dev.txt, line 1: the question brackets 2 topics \['Kismet', 'Casablanca'\]; one is expected",
        ),
    ],
)
def test_malformed_metaqa_files_are_named(tmp_path, files, message):
    with pytest.raises(DataFormatError, match=message):
        ds.load("metaqa", write_metaqa(tmp_path / "m", **files), config_name="entities", cache_dir=str(tmp_path / "c"))


def test_questions_whose_topic_is_not_in_the_kb_are_counted_and_fail_past_five_percent(tmp_path, caplog):
    kb = "".join(f"Film {i}|directed_by|Person {i}\n" for i in range(40))
    known = "".join(f"who directed [Film {i}]\tPerson {i}\n" for i in range(40))
    folder = write_metaqa(tmp_path / "few", kb=kb, question=known + "who directed [Nowhere]\tNobody\n")
    for hops in ("1-hop", "2-hop"):
        for split in ("dev", "test"):
            (folder / hops / f"qa_{split}_qtype.txt").write_text("movie_to_director\n" * 41)
    questions = ds.load("metaqa", folder, config_name="1-hop", cache_dir=str(tmp_path / "c1"))["test"]
    assert len(questions) == 41 and questions[40]["mentions"] == [] and questions[40]["candidates"] == []
    assert "dropped 1 of 41 mentions (2.44%)" in caplog.text
    assert "1 of 41 answers are not entities of the knowledge base" in caplog.text  # Nobody

    many = write_metaqa(tmp_path / "many", kb=kb, question=known + "who directed [Nowhere]\tNobody\n" * 5)
    for hops in ("1-hop", "2-hop"):
        for split in ("dev", "test"):
            (many / hops / f"qa_{split}_qtype.txt").write_text("movie_to_director\n" * 45)
    with pytest.raises(DataFormatError, match=r"dropped 5 of 45 mentions \(11.11%\).*more than the 5% allowed"):
        ds.load("metaqa", many, config_name="1-hop", cache_dir=str(tmp_path / "c2"))


def test_a_changed_source_file_is_never_read_back_from_the_cache(tmp_path):
    folder = write_metaqa(
        tmp_path / "m", kb="Kismet|directed_by|William Dieterle\nKismet|written_by|Edward Knoblock\n"
    )
    cache = str(tmp_path / "cache")
    assert len(ds.load("metaqa", folder, config_name="entities", cache_dir=cache)["train"]) == 3
    (folder / "kb.txt").write_text("Kismet|directed_by|William Dieterle\n")  # same cache folder, new content
    assert len(ds.load("metaqa", folder, config_name="entities", cache_dir=cache)["train"]) == 2


# M1 -directed_by- P1 -directed_by- M2 -written_by- P2 -written_by- M3: P1 is 1 hop from M1, M2 2, P2 3, M3 4.
CHAIN = "M1|directed_by|P1\nM2|directed_by|P1\nM2|written_by|P2\nM3|written_by|P2\n"


def test_any_k_hop_folder_loads_with_candidates_within_k_hops(tmp_path):
    folder = write_metaqa(
        tmp_path / "m",
        kb=CHAIN,
        question="who wrote films sharing a director with [M1]\tP2\n",
        hops_folders=("3-hop",),
    )
    entities = ds.load("metaqa", folder, config_name="entities", cache_dir=str(tmp_path / "c"))["train"]
    index = {name: i for i, name in enumerate(entities["name"][:])}
    three = ds.load("metaqa", folder, config_name="3-hop", cache_dir=str(tmp_path / "c"))["test"][0]
    assert sorted(three["candidates"]) == sorted(index[n] for n in ("P1", "M2", "P2")) and three["reachable"]
    # descriptions come from the folders present (here only 3-hop/): M1's is the question naming it
    assert entities[index["M1"]]["description"] == "who wrote films sharing a director with M1"

    with pytest.raises(FileNotFoundError, match=r"4-hop/dev\.txt"):
        ds.load("metaqa", folder, config_name="4-hop", cache_dir=str(tmp_path / "c"))
    write_metaqa(
        folder, kb=CHAIN, question="who wrote films sharing a director with [M1]\tP2\n", hops_folders=("4-hop",)
    )
    four = ds.load("metaqa", folder, config_name="4-hop", cache_dir=str(tmp_path / "c"))["test"][0]
    assert sorted(four["candidates"]) == sorted(index[n] for n in ("P1", "M2", "P2", "M3"))
    assert four["id"] == "4-hop-test-1"
    with pytest.raises(ValueError, match="at least 1 hop, got hops=0"):
        ds.load("metaqa", folder, config_name="0-hop", cache_dir=str(tmp_path / "c"))
