"""What every builder shares: the knowledge-graph and linked-text schemas, locating the source files, reading
(possibly compressed) files line by line with errors that name the file and line, and counting dropped mentions."""

import bz2
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

import datasets
from transformers.utils import logging


logger = logging.get_logger(__name__)

ENTITY_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "name": datasets.Value("string"),
        "description": datasets.Value("string"),
        "category": datasets.ClassLabel(names=["placeholder"]),  # replaced by each builder's category names
        "part": datasets.Value("string"),
    }
)
RELATION_FEATURES = datasets.Features(
    {"id": datasets.Value("string"), "name": datasets.Value("string"), "description": datasets.Value("string")}
)
TRIPLE_FEATURES = datasets.Features(
    {"head": datasets.Value("string"), "relation": datasets.Value("string"), "tail": datasets.Value("string")}
)
MENTION_FEATURE = datasets.List(
    {"start": datasets.Value("int32"), "end": datasets.Value("int32"), "entity": datasets.Value("string")}
)
TEXT_FEATURES = datasets.Features(
    {"id": datasets.Value("string"), "text": datasets.Value("string"), "mentions": MENTION_FEATURE}
)


def entity_features(category_names: list[str]) -> datasets.Features:
    features = ENTITY_FEATURES.copy()
    features["category"] = datasets.ClassLabel(names=category_names)
    return features


class DataFormatError(ValueError):
    """A source file that does not follow its format; the message names the file and the line."""


def locate(
    data_dir: str | os.PathLike | None,
    name: str,
    url: str,
    files: dict[str, str],
    dl_manager: datasets.DownloadManager | None = None,
    download_urls: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Paths of the source `files` ({key: relative path}) under `data_dir`.

    Without `data_dir`, sources that are plain files (`download_urls`) are downloaded from their official location
    through `dl_manager`; offline (`HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE`), or for sources that need manual steps,
    it fails at once and says which files to place where.
    """
    if data_dir is None:
        if download_urls and dl_manager is not None and not datasets.config.HF_HUB_OFFLINE:
            return {key: Path(path) for key, path in dl_manager.download(download_urls).items()}
        listing = "\n".join(f"  {relative}" for relative in files.values())
        raise FileNotFoundError(
            f"{name}: no data_dir given{' and offline' if download_urls else ''}. Download the source files from "
            f"{url} and pass data_dir=<folder> holding:\n{listing}"
        )
    root = Path(data_dir)
    paths = {key: root / relative for key, relative in files.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: missing source files under {root} (download them from {url}): {missing}")
    return paths


def open_text(path: str | os.PathLike):
    """Open a text file, transparently decompressing `.gz` and `.bz2` (Wikidata dumps) as a stream."""
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for each line; fails on an empty file."""
    empty = True
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            empty = False
            yield number, line.rstrip("\n")
    if empty:
        raise DataFormatError(f"{path} is empty")


def load_json(path: str | os.PathLike):
    """A whole JSON file; a syntax error names the file and line."""
    with open_text(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as error:
            raise format_error(path, error.lineno, f"not valid JSON ({error.msg})") from None


def format_error(path, line_number: int, what: str) -> DataFormatError:
    return DataFormatError(f"{path}, line {line_number}: {what}")


class DropCounter:
    """Counts mentions of entities missing from the knowledge graph. They are dropped, reported when the builder
    finishes, and the build fails when more than `max_fraction` of all mentions were dropped."""

    def __init__(self, source: str, max_fraction: float = 0.05):
        self.source = source
        self.max_fraction = max_fraction
        self.kept = 0
        self.dropped = 0

    def keep(self, known: bool) -> bool:
        if known:
            self.kept += 1
        else:
            self.dropped += 1
        return known

    def report(self) -> None:
        total = self.kept + self.dropped
        if total == 0:
            raise DataFormatError(f"{self.source}: no mentions at all")
        fraction = self.dropped / total
        message = (
            f"{self.source}: dropped {self.dropped} of {total} mentions ({fraction:.2%}) whose entity is not in the "
            "knowledge graph"
        )
        if fraction > self.max_fraction:
            raise DataFormatError(f"{message}, more than the {self.max_fraction:.0%} allowed")
        if self.dropped:
            logger.warning(message)
