"""Benchmark 2: one knowledge-module layer, forward + backward, against torch_geometric's GATConv at the same sizes
(default: 100k entities, 1M edges, hidden 384, 8 heads), and against this layer on torch-scatter's kernels where
torch-scatter is installed. Each variant runs in its own process, so that its peak memory is its own.

    python -m bench.bench_knowledge_module                       # all variants side by side, with ratios
    python -m bench.bench_knowledge_module --variant jaket       # one variant
"""

import argparse
import importlib.util
import json

import torch

from bench.common import median_seconds, peak_rss_mib, report, run_isolated


def graph(num_nodes, num_edges, num_relations, hidden, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(num_nodes, (2, num_edges), generator=generator).to(device)
    edge_type = torch.randint(num_relations, (num_edges,), generator=generator).to(device)
    x = torch.randn(num_nodes, hidden, generator=generator).to(device).requires_grad_()
    relations = torch.randn(num_relations, hidden, generator=generator).to(device).requires_grad_()
    return x, relations, edge_index, edge_type


def layer_step(variant, args, device):
    x, relations, edge_index, edge_type = graph(args.nodes, args.edges, args.relations, args.hidden, device)
    if variant == "pyg":
        from torch_geometric.nn import GATConv

        layer = GATConv(args.hidden, args.hidden // args.heads, heads=args.heads, add_self_loops=False).to(device)

        def step():
            layer(x, edge_index).sum().backward()
    else:
        from modeling_jaket import JaketConfig, knowledge_module

        if variant == "jaket":
            knowledge_module.torch_scatter = None  # torch's own index_add_ / scatter_reduce_
        config = JaketConfig(
            hidden_size=args.hidden, num_attention_heads=args.heads, km_num_heads=args.heads, km_dropout=0.0
        )
        layer = knowledge_module.KnowledgeLayer(config).to(device)

        def step():
            layer(x, relations, edge_index, edge_type).sum().backward()

    def timed():
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    seconds = median_seconds(timed, repeats=args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
    return report(
        "knowledge_module_layer",
        variant=variant,
        nodes=args.nodes,
        edges=args.edges,
        hidden=args.hidden,
        heads=args.heads,
        seconds=seconds,
        peak_memory_mib=round(peak, 1),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=["jaket", "pyg", "scatter"])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--relations", type=int, default=26)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.variant:
        layer_step(args.variant, args, torch.device(args.device))
        return
    variants = ["jaket"]
    variants += ["pyg"] if importlib.util.find_spec("torch_geometric") else []
    variants += ["scatter"] if importlib.util.find_spec("torch_scatter") else []
    sizes = [
        f"--{k}={getattr(args, k)}" for k in ("nodes", "edges", "relations", "hidden", "heads", "repeats", "device")
    ]
    results = {v: run_isolated("bench_knowledge_module", "--variant", v, *sizes) for v in variants}
    for record in results.values():
        print(json.dumps(record))
    for other in variants[1:]:
        report(
            "knowledge_module_layer_ratio",
            baseline=other,
            time_ratio=results[other]["seconds"] / results["jaket"]["seconds"],
            memory_ratio=results[other]["peak_memory_mib"] / results["jaket"]["peak_memory_mib"],
        )
    if len(variants) == 1:
        print("torch_geometric is not installed: pip install torch-geometric==2.8.1 to compare with GATConv")


if __name__ == "__main__":
    main()
