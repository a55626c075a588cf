"""Benchmark 9: the pre-training input pipeline at the paper's per-GPU share, against what a GPU consumes.

One loader worker (one process, one thread, as PyTorch runs its DataLoader workers) builds batches of
`DataCollatorForJaketPreTraining`: 128 texts x 512 tokens (the paper's 1,024 texts a step over 8 GPUs) with
`--mentions_per_text` linked mentions each, over a synthetic graph of the paper's shape (3.66M entities, 20M triples,
822 relations, skewed degrees; no real data of that size is on this machine). What a GPU consumes is written out as
arithmetic: RoBERTa-base's training FLOPs per step over an H100's dense bf16 rate at 40% utilisation.

    python -m bench.bench_input_pipeline [--entities 3660000 --triples 20000000 --fanouts 10 10]
"""

import argparse
import statistics
import time

import torch
from transformers import AutoTokenizer

from bench.common import peak_rss_mib, report
from jaket_training.data import default_backbone
from modeling_jaket import KnowledgeGraph
from modeling_jaket.graph import DEFAULT_FANOUTS
from tokenization import DataCollatorForJaketPreTraining

# RoBERTa-base: 12 layers, hidden 768, 512 tokens. Training FLOPs per token: 6 x the non-embedding parameters
# (12 x (4 d^2 + 8 d^2)) plus attention's scores and weighted sums (12 T d a layer, forward and backward).
LAYERS, HIDDEN, TOKENS, TEXTS_PER_GPU = 12, 768, 512, 128
PARAMETERS = LAYERS * 12 * HIDDEN**2
FLOPS_PER_TOKEN = 6 * PARAMETERS + 12 * LAYERS * TOKENS * HIDDEN
H100_BF16_DENSE = 989e12  # FLOP/s, SXM
UTILISATION = 0.4
CORES_PER_GPU = 112 // 8  # a DGX H100: 2 x 56 cores for 8 GPUs


def skewed(count: int, bound: int, generator) -> torch.Tensor:
    """`count` ids in [0, bound), the low ones far more frequent (a few hubs, a long tail), as in Wikidata."""
    return (torch.rand(count, generator=generator) ** 3 * bound).long()


def synthetic_graph(entities: int, triples: int, relations: int, categories: int, generator) -> KnowledgeGraph:
    heads, tails = skewed(triples, entities, generator), torch.randint(entities, (triples,), generator=generator)
    return KnowledgeGraph(
        heads,
        torch.randint(relations, (triples,), generator=generator),
        tails,
        entities,
        relations,
        entity_categories=torch.randint(categories, (entities,), generator=generator),
    )


def synthetic_texts(count: int, mentions: int, tokenizer, entities: int, generator) -> list[dict]:
    """Texts of TOKENS token ids with `mentions` two-token mentions each, at distinct positions."""
    special = set(tokenizer.all_special_ids)
    vocabulary = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    features = []
    for _ in range(count):
        ids = vocabulary[torch.randint(vocabulary.numel(), (TOKENS,), generator=generator)]
        ids[0], ids[-1] = tokenizer.cls_token_id, tokenizer.sep_token_id
        starts = 1 + 2 * torch.randperm((TOKENS - 3) // 2, generator=generator)[:mentions].sort().values
        features.append(
            {
                "input_ids": ids.tolist(),
                "attention_mask": [1] * TOKENS,
                "mention_entity_ids": skewed(mentions, entities, generator).tolist(),
                "mention_starts": starts.tolist(),
                "mention_ends": (starts + 1).tolist(),
            }
        )
    return features


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=3_660_000)
    parser.add_argument("--triples", type=int, default=20_000_000)
    parser.add_argument("--relations", type=int, default=822)
    parser.add_argument("--mentions_per_text", type=int, default=16)
    parser.add_argument("--num_roots", type=int, default=16)
    parser.add_argument("--fanouts", type=int, nargs="+", default=list(DEFAULT_FANOUTS))
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    graph = synthetic_graph(args.entities, args.triples, args.relations, 1000, generator)
    graph_seconds = time.perf_counter() - start
    tokenizer = AutoTokenizer.from_pretrained(default_backbone())
    features = synthetic_texts(TEXTS_PER_GPU * 2, args.mentions_per_text, tokenizer, args.entities, generator)
    collator = DataCollatorForJaketPreTraining(
        tokenizer, graph, num_roots=args.num_roots, fanouts=tuple(args.fanouts), seed=0
    )
    times, sizes = [], []
    for index in range(args.batches + 1):  # the first is warm-up
        collator.set_epoch(index)
        batch = features[(index % 2) * TEXTS_PER_GPU : (index % 2 + 1) * TEXTS_PER_GPU]
        begin = time.perf_counter()
        inputs = collator(batch)
        if index:
            times.append(time.perf_counter() - begin)
            sizes.append((inputs["subgraph_entity_ids"].numel(), inputs["edge_type"].numel()))
    seconds = statistics.median(times)
    gpu_steps_per_second = UTILISATION * H100_BF16_DENSE / (FLOPS_PER_TOKEN * TOKENS * TEXTS_PER_GPU)
    workers = CORES_PER_GPU - 1
    report(
        "input_pipeline",
        entities=args.entities,
        triples=args.triples,
        texts=TEXTS_PER_GPU,
        tokens=TOKENS,
        mentions_per_text=args.mentions_per_text,
        num_roots=args.num_roots,
        fanouts=args.fanouts,
        graph_build_seconds=round(graph_seconds, 1),
        subgraph_entities=statistics.median(s[0] for s in sizes),
        subgraph_edges=statistics.median(s[1] for s in sizes),
        seconds_per_batch=round(seconds, 3),
        batches_per_second_per_worker=round(1 / seconds, 2),
        gpu_steps_per_second=round(gpu_steps_per_second, 1),
        workers_per_gpu=workers,
        production_over_demand=round(workers / seconds / gpu_steps_per_second, 2),
        peak_rss_mib=round(peak_rss_mib()),
    )


if __name__ == "__main__":
    main()
