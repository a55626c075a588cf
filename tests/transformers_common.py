"""transformers' own common tests (`ModelTesterMixin`, `ConfigTester`, `PipelineTesterMixin`), taken from the source
distribution of the installed transformers release: fetched from the package registry on first use, cached, and
imported as one package with our stand-ins for the helper modules the sdist lacks (`transformers_stand_ins/`).
Nothing of transformers' test code lives in this repository."""

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

COMMON_FILES = ("test_modeling_common.py", "test_configuration_common.py", "test_pipeline_mixin.py")
STAND_INS = Path(__file__).resolve().parent / "transformers_stand_ins"
CACHE = Path(os.environ.get("JAKET_TEST_CACHE", Path.home() / ".cache" / "jaket-tests"))


def _fetch(version: str, target: Path) -> None:
    """transformers' sdist from the package registry; its common test files into `target`."""
    with tempfile.TemporaryDirectory() as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        command += ["--no-binary", ":all:", "--no-build-isolation", "-d", download, f"transformers=={version}"]
        fetched = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if fetched.returncode != 0:
            raise RuntimeError(f"could not fetch transformers=={version}'s sdist: {fetched.stderr[-2000:]}")
        (archive,) = Path(download).glob("transformers-*.tar.gz")
        with tarfile.open(archive) as sdist:
            for name in COMMON_FILES:
                member = sdist.extractfile(f"transformers-{version}/tests/{name}")
                (target / name).write_bytes(member.read())


def common_tests():
    """The package holding transformers' common test modules for the installed release (fetched once)."""
    version = transformers.__version__
    package = "transformers_common_tests_" + version.replace(".", "_")
    folder = CACHE / package
    if not (folder / "__init__.py").exists():
        staging = Path(tempfile.mkdtemp(dir=CACHE.mkdir(parents=True, exist_ok=True) or CACHE))
        shutil.copytree(STAND_INS, staging, dirs_exist_ok=True)
        _fetch(version, staging)
        (staging / "__init__.py").write_text(f'"""transformers {version}\'s common tests, with stand-ins."""\n')
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # whole or not at all, so that a failed fetch is retried
    if package not in sys.modules:  # imported from its folder, as a package (its modules import each other)
        spec = importlib.util.spec_from_file_location(
            package, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        sys.modules[package] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[package])
    return sys.modules[package]
