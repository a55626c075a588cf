import pytest

import datasets_scripts as ds
from conftest import DATA_DIR


@pytest.fixture(scope="module")
def full(datasets_cache):
    return ds.load("entity_classification", DATA_DIR, config_name="fraction-100", cache_dir=datasets_cache)


@pytest.mark.data
def test_heldout_synsets_split_20_20_60(full, datasets_cache):
    sizes = {name: len(split) for name, split in full.items()}
    total = sum(sizes.values())
    assert abs(total - 11_766) <= 1
    assert abs(sizes["train"] / total - 0.2) < 0.001 and abs(sizes["test"] / total - 0.6) < 0.001
    ids = [set(split["id"][:]) for split in full.values()]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    kg = ds.load("wordnet_semcor", DATA_DIR, config_name="entities", cache_dir=datasets_cache)["train"]
    heldout = {i for i, p in zip(kg["id"][:], kg["part"][:]) if p == "heldout"}
    assert set().union(*ids) == heldout
    assert full["train"].features["category"].num_classes == 45


@pytest.mark.data
@pytest.mark.parametrize("percent", [20, 5])
def test_training_fractions_shrink_only_train(full, datasets_cache, percent):
    part = ds.load("entity_classification", DATA_DIR, config_name=f"fraction-{percent}", cache_dir=datasets_cache)
    assert len(part["train"]) == round(len(full["train"]) * percent / 100)
    assert set(part["train"]["id"][:]) <= set(full["train"]["id"][:])
    assert part["test"]["id"][:] == full["test"]["id"][:]


def test_bad_fraction(tmp_path):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        ds.load("entity_classification", DATA_DIR, config_name="fraction-5", cache_dir=str(tmp_path), fraction=0.0)
