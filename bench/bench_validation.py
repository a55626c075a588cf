"""Benchmark 8: what the input validation (`modeling_jaket/validation.py`, on by default) costs a pre-training step
on the embedded default's data: the validation call alone (median of many calls, on every batch) against a whole
step without it (forward + backward + AdamW, `config.validate_inputs=False`). Timing whole steps with the checks
on and off instead drowns them in the steps' own spread (+-5% between runs here).

    python -m bench.bench_validation
"""

import argparse
import statistics
import time

import torch

from bench.common import median_seconds, pretraining_setup, report
from jaket_training.pretraining import to_model_inputs
from modeling_jaket.validation import validate_model_inputs

CHECKED = (
    "input_ids",
    "attention_mask",
    "mention_entity_ids",
    "mention_starts",
    "mention_ends",
    "subgraph_entity_ids",
    "edge_index",
    "edge_type",
    "entity_init_embeddings",
    "relation_embeddings",
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10, help="whole steps timed")
    args = parser.parse_args()
    model, _, _, memory, _, batches = pretraining_setup(batch_size=args.batch_size)
    model.train()
    model.config.validate_inputs = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = [to_model_inputs(batch, memory, "cpu") for batch in batches]
    position = {"i": 0}

    def step():
        position["i"] = (position["i"] + 1) % len(inputs)
        model(**inputs[position["i"]]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step_seconds = median_seconds(step, args.repeats)
    calls = []
    for batch in inputs:
        checked = {key: batch[key] for key in CHECKED if key in batch}
        start = time.perf_counter()
        validate_model_inputs(model.config, **checked)
        calls.append(time.perf_counter() - start)
    validation_seconds = statistics.median(calls)
    report(
        "input_validation_cost",
        batch_size=args.batch_size,
        step_seconds_unvalidated=step_seconds,
        validation_seconds=validation_seconds,
        cost_fraction=validation_seconds / step_seconds,
    )


if __name__ == "__main__":
    main()
