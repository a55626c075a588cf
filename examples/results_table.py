"""Print the results the fine-tuning scripts wrote (`results-*.json` under the given folders) as Markdown tables,
one per task, methods in the paper's order, mean ± standard deviation over seeds where there are several.

    python examples/results_table.py outputs/default
"""

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

METHOD_ORDER = [
    "gnn",
    "lm",
    "lm_gnn",
    "lm_gnn_m",
    "lm_mlm",
    "jaket",
    "jaket_zero_shot",
    "lm_gnn_m_category",
    "jaket_from_head",
]
METHOD_NAMES = {
    "gnn": "GNN",
    "lm": "LM",
    "lm_gnn": "LM+GNN",
    "lm_gnn_m": "LM+GNN+M",
    "jaket": "JAKET",
    "jaket_zero_shot": "JAKET's category head, no fine-tuning",
    "jaket_from_head": "JAKET, classifier from its category head",
    "lm_mlm": "LM+GNN+M, LM continued with MLM alone (control)",
    "lm_gnn_m_category": "LM+GNN+M, knowledge module and head pre-trained with L_c alone (control)",
}


def collect(folders):
    """{task: {(method, column): [value per seed]}} from every results file under `folders`."""
    table = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        for path in sorted(Path(folder).rglob("results-*.json")):
            record = json.loads(path.read_text())
            method = record["method"]
            if record["task"] == "entity_classification":
                for fraction, accuracy in record["accuracy"].items():
                    table["Entity classification, unseen KG (accuracy)"][(method, fraction)].append(accuracy)
            elif record["task"] == "fewrel":
                if record.get("kg") == "none" and method != "lm":  # the knowledge module saw isolated entities
                    method += " (no KG)"
                table["FewRel (accuracy)"][(method, record["setting"])].append(record["accuracy"])
            elif record["task"] == "metaqa":
                table["MetaQA (hits@1, all / reachable)"][(method, record["setting"])].append(
                    (record["hits@1"], record["hits@1_reachable"])
                )
    return table


def cell(values):
    if isinstance(values[0], tuple):
        return " / ".join(cell([v[i] for v in values]) for i in range(2))
    values = [100 * v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} (n={len(values)})"


def render(table) -> str:
    lines = []
    for task, cells in table.items():
        columns = sorted({column for _, column in cells}, key=lambda c: (len(c), c), reverse=True)
        methods = sorted({key[0] for key in cells}, key=lambda m: (METHOD_ORDER.index(m.split(" (")[0]), m))
        lines += [f"### {task}", "", "| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for method in methods:
            row = [cell(cells[(method, c)]) if (method, c) in cells else "–" for c in columns]
            base, _, kind = method.partition(" (")
            lines.append(f"| {METHOD_NAMES[base]}{' (' + kind if kind else ''} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    table = collect(args.folders)
    if not table:
        raise SystemExit(f"no results-*.json under {args.folders}")
    text = render(table)
    print(text)
    return text


if __name__ == "__main__":
    main()
