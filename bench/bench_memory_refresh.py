"""Benchmark 4: a memory refresh (LM1 over every description, length-sorted batches) in entities per second, against
plain LM1 inference over the same descriptions: the backbone cut to LM1's layers, batches in the given order.

    python -m bench.bench_memory_refresh
"""

import argparse
import time

import torch
from jaket_examples.data import default_backbone, default_data_dir, description_inputs, load_pretraining_data
from transformers import AutoModel, AutoTokenizer

from bench.common import report
from modeling_jaket import EntityContextMemory, JaketModel
from modeling_jaket.memory import pad_batch


def plain_lm1(model, descriptions, batch_size):
    sequences = descriptions["input_ids"]
    with torch.no_grad():
        for begin in range(0, len(sequences), batch_size):
            input_ids, attention_mask = pad_batch(sequences[begin : begin + batch_size], model.config.pad_token_id)
            model(input_ids=input_ids, attention_mask=attention_mask)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max_entities", type=int, default=5000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    backbone = default_backbone()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    graph = load_pretraining_data("wordnet_semcor", default_data_dir(), max_entities=args.max_entities).graph
    descriptions, _ = description_inputs(tokenizer, graph)
    model = JaketModel.from_backbone(backbone)
    lm1 = AutoModel.from_pretrained(backbone, num_hidden_layers=model.config.num_lm1_layers).eval()
    refresh, plain = [], []
    for _ in range(args.repeats):  # interleaved, so that both see the same machine load
        start = time.perf_counter()
        EntityContextMemory.compute(model, descriptions, args.batch_size)
        refresh.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_lm1(lm1, descriptions, args.batch_size)
        plain.append(time.perf_counter() - start)
    refresh_rate, plain_rate = graph.num_entities / sorted(refresh)[len(refresh) // 2], graph.num_entities / sorted(plain)[len(plain) // 2]
    report("memory_refresh", entities=graph.num_entities, refresh_entities_per_second=refresh_rate,
           plain_lm1_entities_per_second=plain_rate, refresh_cost_ratio=plain_rate / refresh_rate)  # fmt: skip


if __name__ == "__main__":
    main()
