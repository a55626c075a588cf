"""Benchmark 12: the memory refresh's extra peak resident memory, as a share of the table, in a process of its own:
a table of `count` x `hidden` in a storage dtype, refreshed twice (the first sets it, the second folds in with the
momentum) by one process or as one of `world` ranks (the other ranks' shares stood in by an all-gather that repeats
this rank's). LM1 is reduced to a mean of token embeddings, so the figure measures the refresh's own buffers.

    python -m bench.bench_refresh_peak [--count 1000000 --hidden 768 --dtypes float32 bfloat16 --worlds 1 2 8]
"""

import argparse
import json
import resource

import torch

from bench.common import report, run_isolated


class Encoder(torch.nn.Module):
    """LM1 reduced to a mean of token embeddings: the refresh's plumbing, not an encoder."""

    def __init__(self, hidden: int):
        super().__init__()
        self.config = type("Config", (), {"hidden_size": hidden, "pad_token_id": 0})()
        self.embeddings = torch.nn.Embedding(50, hidden)

    def encode_descriptions(self, input_ids, attention_mask, starts, ends):
        return self.embeddings(input_ids).mean(dim=1)


def measure(count: int, hidden: int, dtype: str, world: int) -> float:
    """The extra peak of two refreshes over a touched table, over the table's bytes."""
    from modeling_jaket import EntityContextMemory
    from modeling_jaket.memory import MEMORY_DTYPES

    model = Encoder(hidden)
    descriptions = {"input_ids": [[1 + i % 7, 2, 3 + i % 5][: 1 + i % 3] for i in range(count)]}
    descriptions["mention_starts"] = descriptions["mention_ends"] = [-1] * count
    gather = (lambda local: local.repeat(world, 1)) if world > 1 else None
    small = {key: values[:1000] for key, values in descriptions.items()}  # warms the kernels, not the peak
    EntityContextMemory(1000, 1, hidden).refresh(model, small, batch_size=256, shard=(0, world), all_gather=gather)
    memory = EntityContextMemory(count, 1, hidden, dtype=MEMORY_DTYPES[dtype])
    memory.entity_embeddings.fill_(1.0)  # touched, so resident
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    memory.refresh(model, descriptions, batch_size=256, shard=(0, world), all_gather=gather)  # the first: E = E_new
    torch.nn.init.normal_(model.embeddings.weight)
    memory.refresh(model, descriptions, batch_size=256, shard=(0, world), all_gather=gather)  # with momentum
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    return extra / memory.entity_embeddings.nbytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--measure", nargs=4, metavar=("COUNT", "HIDDEN", "DTYPE", "WORLD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        count, hidden, dtype, world = args.measure
        share = measure(int(count), int(hidden), dtype, int(world))
        report("refresh_peak", count=int(count), hidden=int(hidden), dtype=dtype, world=int(world), extra_share=share)
        return
    for dtype in args.dtypes:
        for world in args.worlds:
            measured = (str(args.count), str(args.hidden), dtype, str(world))
            print(json.dumps(run_isolated("bench_refresh_peak", "--measure", *measured)), flush=True)


if __name__ == "__main__":
    main()
