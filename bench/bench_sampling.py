"""Benchmarks 5 and 6: subgraph sampling throughput on the full WordNet graph, and how a memory refresh and a training
step's graph work grow with the knowledge graph (1x, 4x, 16x entities), with what the paper's 3.66M-entity,
20M-triple setting would need.

    python -m bench.bench_sampling
"""

import argparse
import time

import torch
from transformers import AutoTokenizer

import datasets_scripts
from bench.common import median_seconds, report
from jaket_training.data import default_backbone, default_data_dir, pretraining_graph
from modeling_jaket import EntityContextMemory, JaketConfig, JaketModel, KnowledgeGraph, KnowledgeModule
from modeling_jaket.graph import DEFAULT_FANOUTS
from modeling_jaket.tokenization_jaket import description_inputs


def sampling(graph: KnowledgeGraph, roots: int, repeats: int):
    generator = torch.Generator().manual_seed(0)
    edges = []

    def sample():
        seeds = graph.sample_roots(roots, generator=generator)
        edges.append(graph.sample_subgraph(seeds, DEFAULT_FANOUTS, generator).edge_type.numel())

    seconds = median_seconds(sample, repeats)
    return seconds, sum(edges) / len(edges)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roots", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--scales", type=int, nargs="+", default=[5000, 20000, 80000])
    parser.add_argument(
        "--gather_max_edges",
        type=int,
        default=JaketConfig().km_gather_max_edges,
        help="km_gather_max_edges: subgraphs of at most this many edges take the gather path (0: always sparse)",
    )
    args = parser.parse_args()
    kg = datasets_scripts.load("wordnet_semcor", default_data_dir())
    full = KnowledgeGraph.from_records(kg["entities"], kg["relations"], kg["triples"])
    seconds, edges = sampling(full, args.roots, args.repeats)
    report(
        "subgraph_sampling",
        entities=full.num_entities,
        triples=full.num_triples,
        roots=args.roots,
        fanouts=list(DEFAULT_FANOUTS),
        edges_per_subgraph=edges,
        seconds=seconds,
        edges_per_second=edges / seconds,
    )

    text = datasets_scripts.load("wordnet_semcor", default_data_dir(), config_name="text")["train"]
    tokenizer = AutoTokenizer.from_pretrained(default_backbone())
    model = JaketModel.from_backbone(default_backbone())
    module = KnowledgeModule(
        JaketConfig(
            hidden_size=model.config.hidden_size,
            num_attention_heads=8,
            km_num_heads=8,
            km_gather_max_edges=args.gather_max_edges,
        )
    ).eval()
    rates = []
    for entities in args.scales:
        graph = pretraining_graph(kg, text, entities)
        descriptions, _ = description_inputs(tokenizer, graph)
        start = time.perf_counter()
        table = EntityContextMemory.compute(model, descriptions, 64)
        refresh = time.perf_counter() - start
        relations = torch.randn(graph.num_relations, table.shape[1])
        generator = torch.Generator().manual_seed(0)

        def graph_step(graph=graph, table=table, relations=relations, generator=generator):
            subgraph = graph.sample_subgraph(
                graph.sample_roots(args.roots, generator=generator), DEFAULT_FANOUTS, generator
            )
            with torch.no_grad():
                module(table[subgraph.entity_ids], relations, subgraph.edge_index, subgraph.edge_type)

        step = median_seconds(graph_step, args.repeats)
        rates.append(graph.num_entities / refresh)
        report(
            "scaling",
            entities=graph.num_entities,
            triples=graph.num_triples,
            refresh_seconds=refresh,
            graph_step_seconds=step,
            gather_max_edges=args.gather_max_edges,
            memory_table_mib=table.numel() * 4 / 2**20,
        )

    rate = sum(rates) / len(rates)
    paper_entities, hidden = 3_660_000, 768
    report(
        "paper_setting_estimate",
        entities=paper_entities,
        triples=20_000_000,
        memory_table_gib_float32=paper_entities * hidden * 4 / 2**30,
        memory_table_gib_bfloat16=paper_entities * hidden * 2 / 2**30,
        csr_gib_int64=(20_000_000 * 2 + paper_entities + 1) * 8 / 2**30,
        refresh_hours_at_measured_rate=paper_entities / rate / 3600,
        measured_entities_per_second=rate,
        note="measured rate is this machine's, with the embedded default's 3-layer, 384-wide LM1; RoBERTa-base's "
        "6-layer, 768-wide LM1 does about 8x the work per description (twice the layers, four times per layer)",
    )


if __name__ == "__main__":
    main()
