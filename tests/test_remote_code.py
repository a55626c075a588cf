import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from packaging.version import Version
from test_packaging import requirements
from transformers.dynamic_module_utils import get_relative_imports

import modeling_jaket
from conftest import tiny_config
from modeling_jaket import JaketForPreTraining, JaketForSequenceClassification, JaketModel

ROOT = Path(__file__).resolve().parents[1]


LOAD_AND_RUN = """
import sys, torch, transformers
from transformers import AutoModel, AutoModelForPreTraining
auto = {"AutoModel": AutoModel, "AutoModelForPreTraining": AutoModelForPreTraining}[sys.argv[2]]
model = auto.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
inputs = torch.load(sys.argv[3])
with torch.no_grad():
    output = model(**inputs)
torch.save(dict(output.items()), sys.argv[4])
print(type(model).__name__, transformers.__version__)
"""


def run_fresh_process(folder, auto_class, inputs, tmp_path, python_path=None):
    """Load `folder` with `auto_class` in a new interpreter (imports searched in `python_path` first), run it on
    `inputs`; (class name, transformers version, the output's fields)."""
    torch.save(inputs, tmp_path / "inputs.pt")
    script = tmp_path / "load.py"
    script.write_text(LOAD_AND_RUN)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(python_path), env.get("PYTHONPATH", "")])
    # run outside the repository, so that only the code saved beside the weights can be imported
    result = subprocess.run(
        [sys.executable, str(script), str(folder), auto_class, str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    name, version = result.stdout.strip().splitlines()[-1].split()
    return name, version, torch.load(tmp_path / "out.pt")


def model_inputs():
    return dict(
        input_ids=torch.tensor([[0, 17, 45, 99, 2], [0, 5, 6, 2, 1]]),
        attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
        mention_entity_ids=torch.tensor([[7], [3]]),
        mention_starts=torch.tensor([[1], [2]]),
        mention_ends=torch.tensor([[2], [2]]),
        subgraph_entity_ids=torch.tensor([3, 7, 8]),
        edge_index=torch.tensor([[1, 2, 0], [0, 0, 1]]),
        edge_type=torch.tensor([0, 1, 1]),
        entity_init_embeddings=torch.randn(3, 32),
        relation_embeddings=torch.randn(2, 32),
    )


def test_save_pretrained_writes_code_and_safetensors_only(tmp_path):
    JaketModel(tiny_config()).save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {
        "config.json",
        "model.safetensors",
        "configuration_jaket.py",
        "modeling_jaket.py",
        "knowledge_module.py",
    } <= files
    assert not any(f.endswith((".bin", ".pt")) for f in files)
    # docs/install.md: every module of the package but __init__.py, so the processor and pipelines run from the folder
    package = {path.name for path in Path(modeling_jaket.__file__).parent.glob("*.py")} - {"__init__.py"}
    assert {f for f in files if f.endswith(".py")} == package
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_jaket.JaketModel"
    assert auto_map["AutoModelForPreTraining"] == "modeling_jaket.JaketForPreTraining"


@pytest.mark.scripts
@pytest.mark.parametrize(
    "model_class, auto_class, compared",
    [
        (JaketModel, "AutoModel", ("last_hidden_state", "entity_embeddings")),
        (JaketForPreTraining, "AutoModelForPreTraining", ("logits", "entity_category_logits")),
    ],
)
def test_trust_remote_code_round_trip_gives_identical_outputs(tmp_path, model_class, auto_class, compared):
    torch.manual_seed(0)
    model = model_class(tiny_config()).eval()
    model.save_pretrained(tmp_path / "model")
    inputs = model_inputs()
    with torch.no_grad():
        expected = model(**inputs)
    name, _, output = run_fresh_process(tmp_path / "model", auto_class, inputs, tmp_path)
    assert name == model_class.__name__
    for key in compared:
        torch.testing.assert_close(output[key], expected[key], rtol=0, atol=0)


def modeling_closure() -> set[str]:
    pending, seen = ["modeling_jaket"], set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += get_relative_imports(ROOT / "modeling_jaket" / f"{name}.py")
    return {f"{name}.py" for name in seen}


def test_a_remote_code_model_takes_the_processing_code_from_where_it_came_from(tmp_path, monkeypatch):
    """Loaded through `trust_remote_code`, the model's module folder holds only the modeling code: `save_pretrained`
    takes the processor's and the pipelines' code from the model's origin, and names the file an origin lacks
    before writing anything."""
    import modeling_jaket.modeling_jaket as module

    JaketForPreTraining(tiny_config()).save_pretrained(tmp_path / "origin")
    module_folder = tmp_path / "modules"  # what transformers copies: the modeling file and what it imports
    module_folder.mkdir()
    for name in modeling_closure():
        shutil.copy(ROOT / "modeling_jaket" / name, module_folder)
    assert not (module_folder / "processing_jaket.py").exists()
    monkeypatch.setattr(module, "__file__", str(module_folder / "modeling_jaket.py"))
    model = JaketForPreTraining(tiny_config())
    model.config._name_or_path = str(tmp_path / "origin")
    model.save_pretrained(tmp_path / "again")
    for name in ("processing_jaket.py", "pipeline_jaket.py", "linking.py", "collator.py"):
        assert (tmp_path / "again" / name).read_bytes() == (ROOT / "modeling_jaket" / name).read_bytes(), name
    (tmp_path / "origin" / "collator.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"no code file at .*origin/collator\.py"):
        model.save_pretrained(tmp_path / "partial")
    assert not (tmp_path / "partial").exists()


def test_a_head_with_pipelines_saved_without_its_processor_says_what_to_add(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        JaketForPreTraining(tiny_config()).save_pretrained(tmp_path / "alone")
    assert "holds no processor, which its pipelines (entity-linking, entity-classification) need" in caplog.text
    assert "pass processor= to save_pretrained" in caplog.text
    assert "custom_pipelines" not in JaketForPreTraining(tiny_config()).config.to_dict()  # in the saved file only
    assert "entity-linking" in json.loads((tmp_path / "alone" / "config.json").read_text())["custom_pipelines"]


@pytest.mark.scripts
def test_each_saved_head_loads_as_itself_through_automodel(tmp_path):
    """`JaketModel` and `JaketForEntityClassification` both answer to `AutoModel` (transformers has no Auto class
    for entity classification, and the entity-classification pipeline loads its head through `AutoModel`): a saved
    folder's config names the class that was saved, so each loads as itself, in a fresh process, with its outputs."""
    from modeling_jaket import JaketForEntityClassification

    torch.manual_seed(0)
    inputs = model_inputs()
    for model_class, field in ((JaketModel, "entity_embeddings"), (JaketForEntityClassification, "logits")):
        model = model_class(tiny_config(num_labels=3)).eval()
        folder = tmp_path / model_class.__name__
        model.save_pretrained(folder)
        assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"] == (
            f"modeling_jaket.{model_class.__name__}"
        )
        with torch.no_grad():
            expected = model(**inputs)[field]
        name, _, output = run_fresh_process(folder, "AutoModel", inputs, tmp_path / model_class.__name__)
        assert name == model_class.__name__
        torch.testing.assert_close(output[field], expected, rtol=0, atol=0)


def test_in_process_auto_classes_resolve_to_jaket(tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

    JaketModel(tiny_config()).save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "jaket"
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "JaketModel"
    for auto_class, expected in (
        (AutoModelForPreTraining, JaketForPreTraining),
        (AutoModelForSequenceClassification, JaketForSequenceClassification),
    ):
        assert type(auto_class.from_config(tiny_config())) is expected


def saved_code_files():
    """The modules `save_pretrained` copies beside the weights: the config's and models' files and, recursively,
    everything they import relatively."""
    folder = ROOT / "modeling_jaket"
    pending, seen = ["configuration_jaket", "modeling_jaket", "processing_jaket", "pipeline_jaket"], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y, and from . import x
                pending += [node.module] if node.module else [alias.name for alias in node.names]
    return sorted(folder / f"{name}.py" for name in seen)


# What the saved code may import from transformers, module by module (None: any name): the top-level package
# (`initialization` there is v5's weight-initialisation module, which skips weights already loaded from a
# checkpoint), and the modules its documentation presents to model authors.
PUBLIC_TRANSFORMERS = {
    "transformers": None,
    "transformers.modeling_outputs": None,
    "transformers.utils": {"logging"},
    # what transformers' own save_pretrained (and Pipeline.save_pretrained) calls to copy custom code
    "transformers.dynamic_module_utils": {"custom_object_save", "get_relative_imports"},
}


def test_saved_code_imports_only_public_transformers_modules(tmp_path):
    files = saved_code_files()
    JaketForPreTraining(tiny_config()).save_pretrained(tmp_path)
    assert {path.name for path in files} <= set(os.listdir(tmp_path))  # these are what a published model carries
    imports = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                imports.append((path.name, node.lineno, node.module, {alias.name for alias in node.names}))
            elif isinstance(node, ast.Import):
                imports += [(path.name, node.lineno, alias.name, set()) for alias in node.names]
    used = {module for _, _, module, _ in imports if module.startswith("transformers")}
    assert {"transformers", "transformers.utils"} <= used  # the walk sees the imports at all
    for name, line, module, names in imports:
        if module.startswith("transformers"):
            assert module in PUBLIC_TRANSFORMERS, f"{name}:{line} imports {module}, outside transformers' public API"
            allowed = PUBLIC_TRANSFORMERS[module]
            assert allowed is None or names <= allowed, f"{name}:{line} imports {names - allowed} from {module}"


def oldest_transformers() -> str:
    (transformers,) = [requirement for requirement in requirements()[0] if requirement.name == "transformers"]
    (lower,) = [spec.version for spec in transformers.specifier if spec.operator == ">="]
    return lower


@pytest.mark.scripts
def test_saved_model_loads_under_the_oldest_transformers_in_range(tmp_path, tmp_path_factory):
    """The declared range's lower bound, installed from the package registry beside the tested set, loads a model
    saved under the tested release through `trust_remote_code` and gives the same outputs, hidden states and
    attention maps."""
    oldest = oldest_transformers()
    target = tmp_path_factory.mktemp(f"transformers-{oldest}")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(target),
            f"transformers=={oldest}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, f"could not install transformers=={oldest}: {install.stderr[-2000:]}"
    torch.manual_seed(0)
    model = JaketForPreTraining(tiny_config()).eval()
    model.save_pretrained(tmp_path / "model")
    inputs = {**model_inputs(), "output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        expected = model(**inputs)
    name, version, output = run_fresh_process(tmp_path / "model", "AutoModelForPreTraining", inputs, tmp_path, target)
    assert name == "JaketForPreTraining" and Version(version) == Version(oldest)
    for key in ("logits", "entity_category_logits", "entity_embeddings", "hidden_states", "attentions"):
        torch.testing.assert_close(output[key], expected[key])


def test_a_damaged_weights_file_is_named(tmp_path):
    JaketForPreTraining(tiny_config()).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(OSError, match=r"damaged weights \['model.safetensors'\]"):
        JaketForPreTraining.from_pretrained(tmp_path)
