import json

import pytest

import datasets_scripts as ds
from conftest import DATA_DIR
from datasets_scripts.common import DataFormatError

FEWREL = DATA_DIR / "fewrel"


@pytest.fixture(scope="module")
def instances(datasets_cache):
    return ds.load("fewrel", FEWREL, config_name="instances", cache_dir=datasets_cache)


@pytest.mark.data
def test_instances_are_16_relations_of_700_split_by_relation(instances):
    assert len(instances["train"]) + len(instances["test"]) == 16 * 700
    train, test = set(instances["train"]["relation"][:]), set(instances["test"]["relation"][:])
    assert len(train) == 6 and len(test) == 10 and not train & test
    row = instances["train"][0]
    head, tail = row["mentions"]
    assert head["entity"].startswith("Q") and tail["entity"].startswith("Q")
    assert row["text"][head["start"] : head["end"]] and row["relation_name"]


@pytest.mark.data
def test_head_and_tail_spans_are_the_annotated_words(instances):
    raw = json.loads((FEWREL / "val_wiki.json").read_text())
    by_id = {row["id"]: row for row in instances["test"].select(range(300))}
    for row_id, row in by_id.items():
        relation, index = row_id.rsplit("-", 1)
        item = raw[relation][int(index)]
        for mention, key in zip(row["mentions"], ("h", "t")):
            words = [item["tokens"][i] for i in item[key][2][0]]
            assert row["text"][mention["start"] : mention["end"]] == " ".join(words)
            assert mention["entity"] == item[key][1]


@pytest.mark.data
@pytest.mark.parametrize("n_way, k_shot", [(5, 1), (5, 5), (10, 1)])
def test_episodes_have_n_way_k_shot_from_the_split_relations(n_way, k_shot, instances, datasets_cache):
    episodes = ds.load(
        "fewrel",
        FEWREL,
        config_name=f"episodes-{n_way}-{k_shot}",
        cache_dir=datasets_cache,
        train_episodes=5,
        test_episodes=20,
    )
    test_relations = set(instances["test"]["relation"][:])
    for episode in episodes["test"]:
        assert len(set(episode["relations"])) == n_way and set(episode["relations"]) <= test_relations
        assert len(episode["support"]) == n_way * k_shot and len(episode["queries"]) == n_way
        for instance in episode["support"] + episode["queries"]:
            assert episode["relations"][instance["label"]] == instance["relation"]
        assert not {s["id"] for s in episode["support"]} & {q["id"] for q in episode["queries"]}
    assert all(len(e["relations"]) == min(n_way, 6) for e in episodes["train"])


@pytest.mark.data
def test_pair_form_pairs_every_query_with_every_support_instance(datasets_cache):
    pairs = ds.load(
        "fewrel", FEWREL, config_name="pair-5-5", cache_dir=datasets_cache, train_episodes=2, test_episodes=3
    )
    assert len(pairs["test"]) == 3 * 5 * 25
    for row in pairs["test"].select(range(200)):
        assert row["label"] == int(row["query"]["relation"] == row["support"]["relation"])
        assert row["label"] == int(row["query_label"] == row["support_label"])
    assert sum(pairs["test"]["label"][:]) == 3 * 5 * 5


@pytest.mark.data
def test_episodes_are_reproducible_by_seed(tmp_path):
    first = ds.load("fewrel", FEWREL, config_name="episodes-5-1", cache_dir=str(tmp_path / "a"), test_episodes=5)
    again = ds.load("fewrel", FEWREL, config_name="episodes-5-1", cache_dir=str(tmp_path / "b"), test_episodes=5)
    other = ds.load(
        "fewrel", FEWREL, config_name="episodes-5-1", cache_dir=str(tmp_path / "c"), test_episodes=5, seed=1
    )
    assert first["test"]["relations"][:] == again["test"]["relations"][:] != other["test"]["relations"][:]


@pytest.mark.data
def test_too_few_test_relations_for_n_way(tmp_path):
    with pytest.raises(ValueError, match="10-way episodes need 10 meta-test relations"):
        ds.load("fewrel", FEWREL, config_name="episodes-10-1", cache_dir=str(tmp_path), num_test_relations=8)


def test_bad_fewrel_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)fewrel: no data_dir given and offline.*val_wiki.json"):
        ds.load("fewrel")
    (tmp_path / "pid2name.json").write_text('{"P1": ["name", "description"]}')
    (tmp_path / "val_wiki.json").write_text('{"P1": [\n{"tokens": ["a"],\n "h": ["a", "Q1"]}')
    with pytest.raises(DataFormatError, match=r"val_wiki.json, line 3: not valid JSON"):
        ds.load("fewrel", tmp_path, cache_dir=str(tmp_path / "c1"))
    (tmp_path / "val_wiki.json").write_text('{"P1": [{"tokens": ["a"], "h": ["a", "Q1", [[0]]]}], "P2": []}')
    with pytest.raises(DataFormatError, match="instance 0 of relation P1 is malformed"):
        ds.load("fewrel", tmp_path, cache_dir=str(tmp_path / "c2"))


@pytest.mark.data
def test_any_n_way_k_shot_loads_and_nonsense_is_refused(tmp_path):
    episodes = ds.load("fewrel", FEWREL, config_name="episodes-3-2", cache_dir=str(tmp_path), test_episodes=4)["test"]
    assert len(episodes) == 4 and all(len(e["relations"]) == 3 and len(e["support"]) == 6 for e in episodes)
    for config_name, message in (
        ("episodes-0-1", "n_way must be at least 1, got 0"),
        ("pair-5-0", "k_shot must be at least 1, got 0"),
    ):
        with pytest.raises(ValueError, match=message):
            ds.load("fewrel", FEWREL, config_name=config_name, cache_dir=str(tmp_path))


@pytest.mark.data
def test_a_file_of_ten_relations_gets_a_working_split(tmp_path):
    data = json.loads((FEWREL / "val_wiki.json").read_text())
    (tmp_path / "val_wiki.json").write_text(json.dumps({r: data[r][:20] for r in sorted(data)[:10]}))
    (tmp_path / "pid2name.json").write_text((FEWREL / "pid2name.json").read_text())
    split = ds.load("fewrel", tmp_path, config_name="instances", cache_dir=str(tmp_path / "c"))
    assert len(set(split["test"]["relation"][:])) == 7 and len(set(split["train"]["relation"][:])) == 3  # ceil(50/8)
    five_way = ds.load("fewrel", tmp_path, config_name="episodes-5-1", cache_dir=str(tmp_path / "c"), test_episodes=2)
    assert len(five_way["test"]) == 2
    # nine meta-test relations would leave one to meta-train on: PAIR needs pairs of two different relations
    with pytest.raises(ValueError, match="num_test_relations must be in \\[1, 8\\] .* has 10 relations .* needs two"):
        ds.load("fewrel", tmp_path, config_name="instances", cache_dir=str(tmp_path / "c"), num_test_relations=9)
