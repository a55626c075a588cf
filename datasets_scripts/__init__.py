"""Hugging Face Datasets builders for JAKET's data: one builder a file, and `load()` to prepare and read them.

datasets 4+ no longer runs loading scripts through `datasets.load_dataset`; these builders are classes, instantiated
directly and prepared with `download_and_prepare()`, which is what `load()` does.
"""

import hashlib
from pathlib import Path

import datasets

from .common import DataFormatError, source_fingerprint
from .entity_classification import EntityClassification
from .fewrel import FewRel
from .fewrel import parse_config_name as parse_fewrel_config_name
from .metaqa import MetaQA
from .metaqa import parse_config_name as parse_metaqa_config_name
from .user_kg import UserKG
from .wikipedia_wikidata import WikipediaWikidata
from .wordnet_semcor import WordNetSemcor

BUILDERS = {
    "wordnet_semcor": WordNetSemcor,
    "wikipedia_wikidata": WikipediaWikidata,
    "fewrel": FewRel,
    "metaqa": MetaQA,
    "entity_classification": EntityClassification,
    "user_kg": UserKG,
}
# Names that assemble several configs of one builder into one DatasetDict, keyed by config name.
KG_CONFIGS = ("entities", "relations", "triples")


def load(
    name: str,
    data_dir=None,
    config_name: str = "kg",
    cache_dir=None,
    num_proc: int | None = None,
    streaming: bool = False,
    **config,
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Prepare builder `name` from the source files in `data_dir` and return its data.

    `config_name="kg"` (the default) returns `entities`, `relations` and `triples` together for the builders that
    have a knowledge graph, and the default config's splits for the others (`fewrel`, `entity_classification`);
    any other config name returns that config's splits. `num_proc` processes prepare each config (datasets'
    `download_and_prepare(num_proc=...)`, one shard of the source files each). `streaming=True` writes no Arrow
    cache: the splits are `IterableDataset`s read from the sources as they are iterated (docs/data.md: what a
    builder still reads whole first). Extra keyword arguments set the builder config's fields.
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(BUILDERS)}")
    builder_class = BUILDERS[name]
    names = [c.name for c in builder_class.BUILDER_CONFIGS]
    if config_name == "kg" and all(kg in names for kg in KG_CONFIGS):
        parts = {
            kg: _prepare(builder_class, kg, data_dir, cache_dir, config, num_proc, streaming)["train"]
            for kg in KG_CONFIGS
        }
        return (datasets.IterableDatasetDict if streaming else datasets.DatasetDict)(parts)
    if config_name == "kg" and builder_class.DEFAULT_CONFIG_NAME not in KG_CONFIGS:
        config_name = builder_class.DEFAULT_CONFIG_NAME
    parse = {"fewrel": parse_fewrel_config_name, "metaqa": parse_metaqa_config_name}.get(name)
    if parse is not None:  # any N-way K-shot FewRel, any k-hop MetaQA, not only the named configs
        config_name, fields = parse(config_name)
        config = {**fields, **config}
    if config_name not in names:
        raise ValueError(f"{name} has no config {config_name!r}; choose one of {names}")
    return _prepare(builder_class, config_name, data_dir, cache_dir, config, num_proc, streaming)


# The folders of the data directory the builders read (docs/data.md: where each comes from, and its format).
DATA_FOLDERS = {
    "wordnet-3.0": "data.noun",
    "semcor-3.0": "semcor3.0.sentences.jsonl.gz",
    "fewrel": "val_wiki.json",
    "metaqa": "kb.txt",
}


def check_data_dir(data_dir, folders=tuple(DATA_FOLDERS)) -> None:
    """Stop at once, naming what is missing and how to get it, where `data_dir` lacks one of `folders`."""
    missing = [
        f"{name}/{DATA_FOLDERS[name]}" for name in folders if not Path(data_dir, name, DATA_FOLDERS[name]).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"the data folder {data_dir} lacks {', '.join(missing)}: fetch it with `python -m "
            f"datasets_scripts.download {data_dir}`, or point $JAKET_DATA_DIR (or --data_dir) at a folder holding "
            "wordnet-3.0/, semcor-3.0/, fewrel/ and metaqa/ (docs/data.md)"
        )


def code_hash() -> str:
    """A digest of this package's code: datasets names the prepared cache after it, so that a builder whose code
    changed (a new column, a fixed reader) prepares its data again instead of reading a cache of the old schema."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _prepare(builder_class, config_name, data_dir, cache_dir, config, num_proc=None, streaming=False):
    config = {"source_fingerprint": source_fingerprint(data_dir), **config}
    builder = builder_class(
        config_name=config_name,
        data_dir=str(data_dir) if data_dir else None,
        cache_dir=cache_dir,
        hash=code_hash(),
        **config,
    )
    if streaming:
        return builder.as_streaming_dataset()
    try:
        builder.download_and_prepare(num_proc=num_proc)
    except datasets.exceptions.DatasetGenerationError as error:
        # datasets wraps whatever a generator raised; the builders' own errors already say what is wrong and where
        if isinstance(error.__cause__, (DataFormatError, ValueError, FileNotFoundError)):
            raise error.__cause__ from None
        raise
    return builder.as_dataset()


__all__ = ["BUILDERS", "DATA_FOLDERS", "DataFormatError", "check_data_dir", "load"]
