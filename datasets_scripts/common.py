"""What every builder shares: the knowledge-graph and linked-text schemas, locating the source files, reading
(possibly compressed) files line by line with errors that name the file and line, and counting dropped mentions."""

import bz2
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
from transformers.utils import logging

from modeling_jaket.hub import DuplicateKeyError, without_duplicate_keys

logger = logging.get_logger(__name__)

ENTITY_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "name": datasets.Value("string"),
        "description": datasets.Value("string"),
        "category": datasets.ClassLabel(names=["placeholder"]),  # replaced by each builder's category names
        "part": datasets.Value("string"),
        "aliases": datasets.List(datasets.Value("string")),  # other names, matched as the name is
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


@dataclass
class SourceConfig(datasets.BuilderConfig):
    """What every builder's config shares. `source_fingerprint` is set by `load()` from the size and modification
    time of every file under `data_dir`: datasets names the prepared cache after the config's fields, so a changed
    source file gives a new cache instead of the stale one."""

    source_fingerprint: str = ""


def source_fingerprint(data_dir) -> str:
    """A digest of (relative path, size, modification time) of every file under `data_dir` ("" without one)."""
    if not data_dir or not Path(data_dir).is_dir():
        return ""
    digest = hashlib.sha256()
    root = Path(data_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


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


def open_binary(path: str | os.PathLike):
    """Open a file for reading bytes, transparently decompressing `.gz` and `.bz2` (Wikidata dumps) as a stream."""
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


# What reading a damaged compressed file raises: EOFError when it is cut short, gzip.BadGzipFile, zlib.error or
# bz2's OSError when it is corrupt.
DAMAGED = (EOFError, OSError, zlib.error)


def _damaged(path, where: str, error: Exception) -> DataFormatError:
    what = (
        "the compressed file ends too early (truncated?)" if isinstance(error, EOFError) else f"unreadable ({error})"
    )
    return DataFormatError(f"{path}, {where}: {what}")


def read_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for each line; fails on an empty file, on bytes that are not
    UTF-8 and on a damaged compressed stream, naming the file and the line."""
    number = 0
    with open_binary(path) as f:
        lines = iter(f)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                break
            except DAMAGED as error:
                raise _damaged(path, f"line {number + 1}", error) from None
            number += 1
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                bad = f"byte {raw[error.start]:#04x} at column {error.start + 1}"
                raise format_error(path, number, f"not UTF-8 ({bad})") from None
    if number == 0:
        raise DataFormatError(f"{path} is empty")


def load_json(path: str | os.PathLike):
    """A whole JSON file; a syntax error or a byte that is not UTF-8 names the file and line. A key that appears
    twice in one object (JSON would keep the last value and drop the first silently) is an error too."""
    with open_binary(path) as f:
        try:
            raw = f.read()
        except DAMAGED as error:
            raise _damaged(path, "reading", error) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise format_error(path, line, f"not UTF-8 (byte {raw[error.start]:#04x} at offset {error.start})") from None
    try:
        return json.loads(text, object_pairs_hook=without_duplicate_keys)
    except json.JSONDecodeError as error:
        raise format_error(path, error.lineno, f"not valid JSON ({error.msg})") from None
    except DuplicateKeyError as error:
        raise DataFormatError(f"{path}: key {error.args[0]!r} appears more than once in one object") from None


def parse_json_line(path, number: int, line: str):
    """One line's JSON value; a syntax error, a key given twice in one object (JSON would keep the last value and
    drop the first unseen) or nesting too deep is a `DataFormatError` naming the file and line."""
    try:
        return json.loads(line, object_pairs_hook=without_duplicate_keys)
    except json.JSONDecodeError as error:
        raise format_error(path, number, f"not valid JSON ({error.msg})") from None
    except DuplicateKeyError as error:
        raise format_error(path, number, f"key {error.args[0]!r} appears twice in one object") from None
    except RecursionError:
        raise format_error(path, number, "JSON nested too deeply") from None


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
