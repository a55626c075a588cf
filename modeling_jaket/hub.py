"""Where a saved part of a model lies (a local folder, or a Hub repo: downloaded once, then read from the cache), and
its JSON files read strictly."""

import json
import os
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)


def resolve_file(name_or_path: str | os.PathLike, filename: str, what: str, subfolder: str = "", **hub_kwargs) -> str:
    """The local path of `filename` (under `subfolder`) in the folder `name_or_path`, or, where no such folder exists,
    in the Hub repo of that id through `huggingface_hub.hf_hub_download` (`hub_kwargs`: revision, token, cache_dir,
    ...). A file that is in neither raises FileNotFoundError naming `what` was looked for and where."""
    if Path(name_or_path).is_dir():
        path = Path(name_or_path, subfolder, filename)
        if not path.is_file():
            raise FileNotFoundError(f"no {what} at {path}")
        return str(path)
    try:
        return hf_hub_download(str(name_or_path), filename, subfolder=subfolder or None, **hub_kwargs)
    except (EntryNotFoundError, RepositoryNotFoundError, LocalEntryNotFoundError, HFValidationError) as error:
        where = f"{name_or_path}/{subfolder}/{filename}" if subfolder else f"{name_or_path}/{filename}"
        raise FileNotFoundError(
            f"no {what} at {where}: {name_or_path} is no local folder, and the Hub repo of that id could not give "
            f"the file ({type(error).__name__})"
        ) from None


class DuplicateKeyError(ValueError):
    pass


def without_duplicate_keys(pairs):
    """`object_pairs_hook` for `json.loads` that raises `DuplicateKeyError` on a key given twice in one object."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def read_json(path: str | os.PathLike):
    """A saved JSON file, or a ValueError naming the file for what `json.load` would report without it (a syntax
    error, with its line; bytes that are not UTF-8; nesting too deep) or let pass silently (a key given twice in
    one object, of which it keeps the last value)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=without_duplicate_keys)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 (byte {error.object[error.start]:#04x} at offset {error.start})"
        ) from None
    except DuplicateKeyError as error:
        raise ValueError(f"{path}: key {error.args[0]!r} appears more than once in one object") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to be read") from None
