"""What every Datasets builder says of itself (version, citation, license, homepage), and `load(streaming=True)`
giving the rows that preparing gives."""

from pathlib import Path

import pytest

import datasets_scripts as ds
from conftest import DATA_DIR

EXAMPLE_KG = Path(__file__).resolve().parents[1] / "examples" / "example_kg"
# a config whose `_info` is cheap to build, and the data it reads
CHEAP = {
    "wordnet_semcor": ("relations", DATA_DIR),
    "wikipedia_wikidata": ("relations", None),
    "fewrel": ("instances", DATA_DIR / "fewrel"),
    "metaqa": ("relations", DATA_DIR / "metaqa"),
    "entity_classification": ("fraction-100", DATA_DIR),  # its categories are WordNet's lexicographer files
    "user_kg": ("entities", EXAMPLE_KG),
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.data) if name == "entity_classification" else name
        for name in sorted(CHEAP)
    ],
)
def test_every_builder_states_its_version_citation_license_and_homepage(name, tmp_path):
    assert set(CHEAP) == set(ds.BUILDERS)
    builder_class = ds.BUILDERS[name]
    config_name, data_dir = CHEAP[name]
    builder = builder_class(config_name=config_name, data_dir=data_dir and str(data_dir), cache_dir=str(tmp_path))
    assert builder_class.VERSION is not None and str(builder.config.version) == str(builder_class.VERSION) != "0.0.0"
    assert builder.info.citation.lstrip().startswith("@") and builder.info.citation.count("title") >= 1
    assert builder.info.license and builder.info.homepage.startswith("https://")


@pytest.mark.parametrize(
    "name, data_dir, config_name",
    [
        ("user_kg", EXAMPLE_KG, "kg"),
        pytest.param("fewrel", DATA_DIR / "fewrel", "instances", marks=pytest.mark.data),
        pytest.param("wordnet_semcor", DATA_DIR, "relations", marks=pytest.mark.data),
        pytest.param("metaqa", DATA_DIR / "metaqa", "entities", marks=pytest.mark.data),
    ],
)
def test_streaming_gives_the_rows_that_preparing_gives(name, data_dir, config_name, tmp_path):
    prepared = ds.load(name, data_dir, config_name, cache_dir=str(tmp_path / "prepared"))
    streamed = ds.load(name, data_dir, config_name, cache_dir=str(tmp_path / "streamed"), streaming=True)
    assert sorted(streamed) == sorted(prepared)
    for split in prepared:
        rows = list(streamed[split])
        assert len(rows) == len(prepared[split]) > 0
        assert rows == list(prepared[split]), split
    assert not list((tmp_path / "streamed").rglob("*.arrow"))  # nothing was written
