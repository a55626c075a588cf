"""Without the real data, the tests (and the main job) stop at once, naming what is missing and where to get it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA_DIR
from datasets_scripts import check_data_dir


@pytest.mark.data
def test_check_data_dir_names_each_missing_part(tmp_path):
    check_data_dir(DATA_DIR)  # the real data: nothing missing
    with pytest.raises(
        FileNotFoundError, match=r"lacks fewrel/val_wiki.json: fetch it with `python -m datasets_scripts.download "
    ):
        check_data_dir(tmp_path, folders=("fewrel",))


@pytest.mark.scripts
def test_missing_data_stops_the_data_tests_at_once_and_the_unit_tier_runs_without_it(tmp_path):
    (tmp_path / "fewrel").mkdir()
    (tmp_path / "fewrel" / "val_wiki.json").write_text("{}")

    def run_tests(*arguments):
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments],
            env={**os.environ, "JAKET_DATA_DIR": str(tmp_path)},
            cwd=Path(__file__).parents[1],
            capture_output=True,
            text=True,
            timeout=300,
        )

    result = run_tests("tests/test_fewrel.py")  # its tests read the data
    assert result.returncode == 4, result.stdout[-2000:]
    assert "lacks wordnet-3.0/data.noun, semcor-3.0/semcor3.0.sentences.jsonl.gz, metaqa/kb.txt" in result.stdout
    assert f"python -m datasets_scripts.download {tmp_path}" in result.stdout and " passed" not in result.stdout
    unit = run_tests("tests/test_configuration_jaket.py", "-m", "not data and not scripts")
    assert unit.returncode == 0 and " passed" in unit.stdout, unit.stdout[-2000:]
