"""Where a saved part of a model lies: a local folder, or a Hub repo (downloaded once, then read from the cache)."""

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
