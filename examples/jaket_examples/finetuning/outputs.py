"""What a fine-tuning run leaves: the model folder (weights, tokenizer, memory, graph, card), the results file that
results_table.py reads, and the upload."""

import json
from pathlib import Path

from modeling_jaket import EntityContextMemory, KnowledgeGraph
from tokenization import JaketProcessor

from ..model_card import Result, write_model_card
from ..push_to_hub import push_folder
from .methods import pretrained_path


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


def save_results(args, name: str, record: dict, metric: str) -> dict:
    """Write `record`, with the `metric` its figures are (`"accuracy"`, `"hits@1"`), to
    `<output_dir>/results-<name>-seed<seed>.json` (what results_table.py reads) and print it."""
    record = {"metric": metric, **record}
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / f"results-{name}-seed{args.seed}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))
    return record
