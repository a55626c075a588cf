"""Benchmark 4: a memory refresh (LM1 over every description, length-sorted batches) in entities per second, against
what a user would run instead over the same descriptions through the same layers: plain LM1 inference (the
backbone cut to LM1's layers, batches in the given order) and sentence-transformers' `SentenceTransformer.encode`
(which sorts by length too); and the refresh's useful FLOPs per second against this machine's measured float32
matmul rate, so the figure says how close the refresh is to the limit.

    python -m bench.bench_memory_refresh
"""

import argparse
import time

import torch
from transformers import AutoModel, AutoTokenizer

from bench.common import report
from jaket_training.data import default_backbone, default_data_dir, load_pretraining_data
from modeling_jaket import EntityContextMemory, JaketModel
from modeling_jaket.memory import pad_batch
from modeling_jaket.tokenization_jaket import description_inputs


def plain_lm1(model, descriptions, batch_size):
    sequences = descriptions["input_ids"]
    with torch.no_grad():
        for begin in range(0, len(sequences), batch_size):
            input_ids, attention_mask = pad_batch(sequences[begin : begin + batch_size], model.config.pad_token_id)
            model(input_ids=input_ids, attention_mask=attention_mask)


def sentence_transformer_encode(backbone, num_layers, texts, batch_size, max_length):
    """sentence-transformers over the same checkpoint, cut to the same layers and token budget; returns encode()."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(backbone, device="cpu")
    transformer = encoder[0].auto_model
    transformer.encoder.layer = transformer.encoder.layer[:num_layers]
    encoder.max_seq_length = max_length
    return lambda: encoder.encode(texts, batch_size=batch_size, convert_to_tensor=True)


def encoder_flops(config, num_layers, lengths) -> float:
    """Multiply-adds x 2 of `num_layers` BERT layers over sequences of `lengths` tokens (no padding): per token and
    layer 24 h^2 for the projections and feed-forward (intermediate 4h), plus 4 h L for attention's two products."""
    hidden, intermediate = config.hidden_size, config.intermediate_size
    per_token_dense = 2 * (4 * hidden * hidden + 2 * hidden * intermediate)
    return float(sum(num_layers * (per_token_dense * n + 4 * hidden * n * n) for n in lengths))


def matmul_flops_per_second(size=2048, repeats=5) -> float:
    """This machine's float32 matmul rate, on torch's threads: the practical peak for an encoder's dense layers."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(times)[repeats // 2]


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
    encode = sentence_transformer_encode(
        backbone,
        model.config.num_lm1_layers,
        graph.entity_descriptions,
        args.batch_size,
        max(len(ids) for ids in descriptions["input_ids"]),
    )
    runs = {
        "refresh": lambda: EntityContextMemory.compute(model, descriptions, args.batch_size),
        "plain_lm1": lambda: plain_lm1(lm1, descriptions, args.batch_size),
        "sentence_transformers": encode,
    }
    times = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved, so that all see the same machine load
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    rate = {name: graph.num_entities / sorted(t)[len(t) // 2] for name, t in times.items()}
    lengths = [len(ids) for ids in descriptions["input_ids"]]
    flops = encoder_flops(model.config, model.config.num_lm1_layers, lengths)
    refresh_flops_per_second = flops * rate["refresh"] / graph.num_entities
    peak = matmul_flops_per_second()
    report(
        "memory_refresh",
        entities=graph.num_entities,
        refresh_entities_per_second=rate["refresh"],
        plain_lm1_entities_per_second=rate["plain_lm1"],
        sentence_transformers_entities_per_second=rate["sentence_transformers"],
        refresh_speedup_over_plain=rate["refresh"] / rate["plain_lm1"],
        refresh_speedup_over_sentence_transformers=rate["refresh"] / rate["sentence_transformers"],
        refresh_gflops_per_second=refresh_flops_per_second / 1e9,
        matmul_gflops_per_second=peak / 1e9,
        fraction_of_matmul_rate=refresh_flops_per_second / peak,
    )


if __name__ == "__main__":
    main()
