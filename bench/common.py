"""Shared by the benchmarks: timing (median of repeats, after warm-up), the machine's description, and one JSON line
per result so that bench/README.md's figures can be traced to a run."""

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch


def median_seconds(function, repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    return f"{device}, {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(benchmark: str, **figures) -> dict:
    record = {"benchmark": benchmark, **figures, "machine": machine(), "date": datetime.date.today().isoformat()}
    print(json.dumps(record), flush=True)
    return record


def run_isolated(module: str, *args: str) -> dict:
    """Run `python -m bench.<module> args` in a fresh process (so peak memory is its own); return its last record."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.{module} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def pretraining_setup(max_entities=5000, max_texts=2000, batch_size=16, seed=0, backbone=None):
    """The embedded default's data and model, as examples/pretrain.py builds them: (model, tokenizer, graph, memory,
    descriptions, batches of pre-training inputs)."""
    from transformers import AutoTokenizer

    from jaket_training.data import (
        default_backbone,
        default_data_dir,
        load_pretraining_data,
        tokenize_linked_text,
    )
    from modeling_jaket import EntityContextMemory, JaketForPreTraining
    from modeling_jaket.tokenization_jaket import description_inputs
    from tokenization import DataCollatorForJaketPreTraining

    backbone = backbone or default_backbone()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    data = load_pretraining_data(
        "wordnet_semcor", default_data_dir(), max_entities=max_entities, max_text_samples=max_texts
    )
    graph, text = data.graph, data.text
    dataset = tokenize_linked_text(text, tokenizer, graph, 128).with_format("python")
    model = JaketForPreTraining.from_backbone(
        backbone, num_entity_categories=len(graph.category_names), num_relation_types=graph.num_relations
    )
    descriptions = description_inputs(tokenizer, graph)
    memory = EntityContextMemory(graph.num_entities, graph.num_relations, model.config.hidden_size)
    memory.refresh(model, *descriptions)
    collate = DataCollatorForJaketPreTraining(tokenizer, graph)
    generator = torch.Generator().manual_seed(seed)
    batches = [
        collate.build(collate.pad([dataset[i] for i in range(start, start + batch_size)]), generator)
        for start in range(0, batch_size * 8, batch_size)
    ]
    return model, tokenizer, graph, memory, descriptions, batches
