import json
import os
import subprocess
import sys

import pytest
import torch

from modeling_jaket import JaketForPreTraining, JaketForSequenceClassification, JaketModel

from conftest import tiny_config


LOAD_AND_RUN = """
import sys, torch
from transformers import AutoModel, AutoModelForPreTraining
auto = {"AutoModel": AutoModel, "AutoModelForPreTraining": AutoModelForPreTraining}[sys.argv[2]]
model = auto.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
inputs = torch.load(sys.argv[3])
with torch.no_grad():
    output = model(**inputs)
torch.save({k: v for k, v in output.items() if torch.is_tensor(v)}, sys.argv[4])
print(type(model).__name__)
"""


def run_fresh_process(folder, auto_class, inputs, tmp_path):
    torch.save(inputs, tmp_path / "inputs.pt")
    script = tmp_path / "load.py"
    script.write_text(LOAD_AND_RUN)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    # run outside the repository, so that only the code saved beside the weights can be imported
    result = subprocess.run(
        [sys.executable, str(script), str(folder), auto_class, str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1], torch.load(tmp_path / "out.pt")


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
    assert {"config.json", "model.safetensors", "configuration_jaket.py", "modeling_jaket.py", "knowledge_module.py"} <= files
    assert not any(f.endswith((".bin", ".pt")) for f in files)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_jaket.JaketModel"
    assert auto_map["AutoModelForPreTraining"] == "modeling_jaket.JaketForPreTraining"


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
    name, output = run_fresh_process(tmp_path / "model", auto_class, inputs, tmp_path)
    assert name == model_class.__name__
    for key in compared:
        torch.testing.assert_close(output[key], expected[key], rtol=0, atol=0)


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
