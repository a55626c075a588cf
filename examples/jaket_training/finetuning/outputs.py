"""What a fine-tuning run leaves: the model folder (weights, tokenizer, memory, graph, card), the results file that
results_table.py reads, the upload, and what `--resume` reads back (the run's settings, each finished method's
results)."""

import json
from pathlib import Path

from transformers.utils import logging

from modeling_jaket import EntityContextMemory, KnowledgeGraph
from tokenization import JaketProcessor

from ..model_card import Result, write_model_card
from ..push_to_hub import push_folder
from .methods import pretrained_path
from .protocol import RUN_RECORD, clear_run

logger = logging.get_logger(__name__)


def save_fine_tuned(
    args,
    method: str,
    folder,
    model,
    tokenizer,
    command: list[str],
    summary: str,
    dataset: str,
    results: list[Result],
    memory: EntityContextMemory | None = None,
    graph: KnowledgeGraph | None = None,
):
    """Save a fine-tuned model where `from_pretrained` finds it, with its tokenizer, the entity context memory it
    read, the graph, and a model card of its results."""
    folder = Path(folder)
    model.save_pretrained(folder)
    JaketProcessor(tokenizer, graph, memory).save_pretrained(folder)  # the tokenizer, the memory, graph/
    base = args.model_name_or_path if method.startswith("jaket") else pretrained_path(args, method) or args.backbone
    name, cls = args.hub_model_id or folder.name, type(model).__name__
    usage = f'from modeling_jaket import {cls}\nmodel = {cls}.from_pretrained("{name}")'
    if memory is not None:
        usage += f'\nmemory = EntityContextMemory.from_pretrained("{name}")  # the E^(0) table it read'
    write_model_card(folder, name, summary, base, [dataset], results, command, usage)


def push_results(args, method: str, repo_id: str | None, folder) -> None:
    """With --push_to_hub, upload `folder` (a fine-tuned model and its card) to the repo created at the start."""
    push_folder(repo_id, folder, args.hub_token, f"{method}, seed {args.seed}")


def results_path(args, name: str) -> Path:
    return Path(args.output_dir) / f"results-{name}-seed{args.seed}.json"


def save_results(args, name: str, record: dict, metric: str) -> dict:
    """Write `record`, with the `metric` its figures are (`"accuracy"`, `"hits@1"`), to
    `<output_dir>/results-<name>-seed<seed>.json` (what results_table.py reads) and print it. Its results safe, what
    its grid runs kept (`<output_dir>/<name>-*-seed<seed>/`: checkpoints and records, see `select_on_validation`) is
    removed."""
    record = {"metric": metric, **record}
    path = results_path(args, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(json.dumps(record))
    for folder in path.parent.glob(f"{name}-*-seed{args.seed}"):
        if (folder / RUN_RECORD).is_file():
            clear_run(folder)
    return record


def finished_results(args, name: str) -> dict | None:
    """With --resume, the record `save_results` wrote for `name` in an earlier run (None if there is none, or
    without --resume): that method is done and is not run again."""
    path = results_path(args, name)
    if not (args.resume and path.is_file()):
        return None
    logger.info(f"{name}: finished before, its results read back from {path}")
    return json.loads(path.read_text())


# flags that may differ between a run and its --resume: which methods run, and the resume itself
FREE_ON_RESUME = {"method", "resume", "logging_dir"}


def start_or_resume(args) -> None:
    """Record the run's settings in `<output_dir>/fine_tuning_settings-seed<seed>.json` (each seed's runs and results
    are its own); with --resume, first check them against the recorded ones, so that no result of other settings is
    read back (`finished_results`, the grid's runs)."""
    settings = json.loads(json.dumps(args.to_dict(), default=str))
    settings = {key: value for key, value in settings.items() if key not in FREE_ON_RESUME}
    path = Path(args.output_dir) / f"fine_tuning_settings-seed{args.seed}.json"
    if args.resume and path.is_file():
        before = json.loads(path.read_text())
        changed = sorted(key for key in settings.keys() | before.keys() if settings.get(key) != before.get(key))
        if changed:
            raise ValueError(
                f"--resume: {path} records other settings ("
                + ", ".join(f"--{key} {before.get(key)!r} then, {settings.get(key)!r} now" for key in changed)
                + "); resume with the flags of the stopped run, or start afresh (another --output_dir, or no --resume)"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
