"""Reading source files (datasets_scripts/common.py): every broken file is named with the place that is wrong."""

import bz2
import gzip

import pytest

import datasets_scripts as ds
from conftest import DATA_DIR
from datasets_scripts.common import DataFormatError, load_json, read_lines

LINES = "".join(f"line {i}\n" for i in range(1, 3001))


@pytest.mark.parametrize("suffix, compress", [("", bytes), (".gz", gzip.compress), (".bz2", bz2.compress)])
def test_a_byte_that_is_not_utf8_names_file_and_line(tmp_path, suffix, compress):
    raw = LINES.encode().replace(b"line 2500\n", b"line 25\xff0\n")
    path = tmp_path / f"data.txt{suffix}"
    path.write_bytes(compress(raw))
    with pytest.raises(DataFormatError, match=rf"data.txt{suffix}, line 2500: not UTF-8 \(byte 0xff at column 8\)"):
        list(read_lines(path))


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_a_truncated_compressed_file_is_named(tmp_path, suffix, compress):
    path = tmp_path / f"dump.json{suffix}"
    path.write_bytes(compress(LINES.encode())[:-20])
    with pytest.raises(DataFormatError, match=rf"dump.json{suffix}, line \d+: the compressed file ends too early"):
        list(read_lines(path))
    with pytest.raises(DataFormatError, match=rf"dump.json{suffix}, reading: the compressed file ends too early"):
        load_json(path)


def test_json_names_bad_bytes_and_duplicate_keys(tmp_path):
    path = tmp_path / "val_wiki.json"
    path.write_bytes(b'{"P1": [],\n "P2": ["\xfe"]}')
    with pytest.raises(DataFormatError, match=r"val_wiki.json, line 2: not UTF-8 \(byte 0xfe at offset 20\)"):
        load_json(path)
    path.write_text('{"P1": [1], "P2": [2], "P1": [3]}')
    with pytest.raises(DataFormatError, match="key 'P1' appears more than once"):
        load_json(path)


@pytest.mark.data
def test_a_non_utf8_wordnet_file_fails_the_build_naming_it(tmp_path):
    folder = tmp_path / "wordnet"
    folder.mkdir()
    for source in (DATA_DIR / "wordnet-3.0").iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    noun = folder / "data.noun"
    lines = noun.read_bytes().split(b"\n")
    lines[1000] = lines[1000].replace(b" | ", b" | \xff", 1)
    noun.write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"data.noun, line 1001: not UTF-8"):
        ds.load("wordnet_semcor", folder, cache_dir=str(tmp_path / "cache"))
