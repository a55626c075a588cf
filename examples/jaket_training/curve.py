"""Pre-training's records beside the model: the held-out figures over its steps (a JSON history and a PNG curve),
the logged training figures (losses, learning rates, refreshes) and each process's final fingerprints."""

import hashlib
import json
from pathlib import Path

HISTORY_NAME, CURVE_NAME = "eval_history.json", "eval_curve.png"
TRAIN_HISTORY_NAME, FINGERPRINTS_NAME = "train_history.json", "fingerprints.json"
# the figures drawn, each with its floor (dashed, same colour)
CURVES = {
    "heldout_masked_token_accuracy": None,
    "heldout_masked_entity_hits_at_1": "heldout_masked_entity_string_match_hits_at_1",
    "wsd_hits_at_1": "wsd_most_frequent_sense_hits_at_1",
    "outside_category_accuracy": "outside_category_majority_accuracy",
    "outside_relation_type_accuracy": "outside_relation_type_majority_accuracy",
}


def record_evaluation(output_dir: Path, results: dict) -> list[dict]:
    """Append `results` (with its `step`) to `<output_dir>/eval_history.json` and redraw `eval_curve.png`."""
    history = append_entry(Path(output_dir) / HISTORY_NAME, results)
    plot_history(history, Path(output_dir) / CURVE_NAME)
    return history


def append_entry(path: Path, entry: dict) -> list[dict]:
    """Append `entry` (with its `step`) to the JSON list at `path`; a resumed run drops what came after its step."""
    history = json.loads(path.read_text()) if path.is_file() else []
    history = [kept for kept in history if kept["step"] < entry["step"]] + [entry]
    path.write_text(json.dumps(history, indent=2) + "\n")
    return history


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(11, 5))
    steps = [entry["step"] for entry in history]
    for (key, floor), colour in zip(CURVES.items(), pyplot.rcParams["axes.prop_cycle"].by_key()["color"]):
        if key in history[-1]:
            axes.plot(steps, [100 * entry[key] for entry in history], marker="o", color=colour, label=key)
        if floor and floor in history[-1]:
            axes.plot(steps, [100 * entry[floor] for entry in history], linestyle="--", color=colour, label=floor)
    axes.set(xlabel="pre-training step", ylabel="%", title="held-out figures (dashed: each one's floor)")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # beside the curves, not over them
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def fingerprint(tensors) -> str:
    """A short digest of the tensors' values (as float32): equal runs give equal fingerprints."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
