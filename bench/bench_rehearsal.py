"""Benchmark 11, the paper-scale rehearsal: Wikipedia + Wikidata pre-training end to end, on synthetic dumps in the
real formats (`bench/synthetic_dumps.py`: a Wikidata JSON dump with Wikidata's line sizes, an enwiki pages-articles
XML dump in parts with long articles and redirect pages) and a tiny random backbone, so that the figures measure the
data and memory plumbing, not the encoder.

1. `pretrain.py --prepare_only`: the graph's two passes, the text, the windows, the descriptions, once.
2. `accelerate launch --num_processes 2 examples/pretrain.py ...` on the prepared folder, twice (once with all the
   entities, once with `--smaller_entities` of them, for the per-entity memory): start-up to the first step (the
   first memory included), step time, refresh time, each rank's peak resident memory.
3. The windows' tokens counted against every article tokenized whole (100% kept at stride 0).

Each figure is extrapolated to the paper's setting (3.66M entities, 8 ranks a node) in the record.

    python -m bench.bench_rehearsal --workdir /tmp/rehearsal [--items 1000000 --english_share 0.2 --steps 30]
"""

import argparse
import datetime
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import report
from bench.synthetic_dumps import write_enwiki_xml, write_wikidata

ROOT = Path(__file__).resolve().parents[1]
PAPER_ENTITIES = 3_660_000
# the time of step 1's log line (a progress bar may share its line)
FIRST_STEP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+ \[RANK 0\] step 1: \{")


def write_sources(folder: Path, args) -> None:
    """The two dumps, unless a complete earlier run left them."""
    if (folder / "complete").is_file():
        return
    rng = random.Random(args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    pages = write_wikidata(folder / "wikidata.json", args.items, args.mean_line_kb, args.english_share, 4.0, rng)
    (folder / "wikipedia").mkdir(exist_ok=True)
    share = -(-len(pages) // args.dump_parts)
    for part in range(args.dump_parts):  # as Wikimedia publishes it: pages-articles1.xml-p1p41242, ...
        path = folder / "wikipedia" / f"enwiki-20261101-pages-articles{part + 1}.xml"
        write_enwiki_xml(path, pages[part * share : (part + 1) * share], args.mean_words, rng, pages)
    (folder / "complete").write_text("")


def tiny_backbone(folder: Path) -> Path:
    """A random BERT of hidden size 64 and 2 layers, with all-MiniLM-L6-v2's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from jaket_training.data import default_backbone

    if not (folder / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(default_backbone())
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=256,
            max_position_embeddings=512,
        )
        BertForMaskedLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def run(command: list[str], log_path: Path) -> tuple[float, str, float]:
    """Run `command`; (seconds, its output, the peak resident memory in MiB of the largest process it started)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed; its output: {log_path}")
    return seconds, result.stdout + result.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def launch_figures(log: str, started: datetime.datetime, output: Path, batch: int) -> dict:
    """What one launch's log and train history say: start-up to the end of step 1, the first memory, the refreshes,
    the median step without a refresh, and each rank's peak resident memory."""
    first_step = datetime.datetime.strptime(FIRST_STEP.search(log).group(1), "%Y-%m-%d %H:%M:%S,%f")
    refreshes = [float(x) for x in re.findall(r"memory refreshed in ([\d.]+) s", log)]
    history = json.loads((output / "train_history.json").read_text())
    refreshed_at = {int(x) for x in re.findall(r"step (\d+): memory refreshed", log)}
    steps = sorted(2 * batch / entry["samples_per_second"] for entry in history if entry["step"] not in refreshed_at)
    return {
        "startup_seconds": round((first_step - started).total_seconds(), 1),
        "first_memory_seconds": float(re.search(r"computed by LM1 in ([\d.]+) s", log).group(1)),
        "refresh_seconds": refreshes,
        "step_seconds_median": round(steps[len(steps) // 2], 3),
        "rank_peak_rss_mib": [int(x) for x in re.findall(r"peak resident memory (\d+) MiB", log)],
        "rank_private_mib": [int(x) for x in re.findall(r"private now (\d+) MiB", log)],
        "rank_clean_mib": [int(x) for x in re.findall(r"of which clean (\d+) MiB", log)],
    }


def count_tokens(prepared: Path, backbone: Path, args) -> dict:
    """Every training article tokenized whole, against the tokens in the windows (less their special tokens)."""
    import datasets
    import pyarrow.compute as pc
    from transformers import AutoTokenizer

    from jaket_training.data import load_flagged_data

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    flags = argparse.Namespace(**json.loads((prepared / "manifest.json").read_text())["flags"])
    flags.dataset_cache_dir, flags.max_eval_samples = str(args.workdir / "cache"), 0
    text = load_flagged_data(flags, str(args.workdir / "sources")).text
    whole = 0
    for begin in range(0, len(text), 2000):
        batch = text[begin : begin + 2000]["text"]
        whole += sum(map(len, tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]))
    windows = datasets.load_from_disk(str(prepared / "windows"))
    in_windows = pc.sum(pc.list_value_length(windows.data.column("input_ids"))).as_py() - 2 * len(windows)
    return {"article_tokens": whole, "window_tokens": in_windows, "tokens_kept": round(in_windows / whole, 6)}


def prepared_folder(prepared: Path, max_entities: int) -> Path:
    """The prepared folder of this rehearsal with `--max_entities max_entities`."""
    for folder in prepared.glob("[!.]*"):  # not a staging folder
        if json.loads((folder / "manifest.json").read_text())["flags"]["max_entities"] == max_entities:
            return folder
    raise FileNotFoundError(f"no folder under {prepared} was prepared with --max_entities {max_entities}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--items", type=int, default=1_000_000, help="Wikidata items")
    parser.add_argument("--english_share", type=float, default=0.2, help="items with an English article")
    parser.add_argument("--mean_line_kb", type=float, default=14.0)
    parser.add_argument("--mean_words", type=int, default=600, help="mean words of an article")
    parser.add_argument("--dump_parts", type=int, default=8)
    parser.add_argument("--num_proc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=8, help="windows of 512 tokens per process and step")
    parser.add_argument("--smaller_entities", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip_token_count", action="store_true", help="leave out step 3 (minutes: every article tokenized again)"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    write_sources(args.workdir / "sources", args)
    print(f"sources ready in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    backbone = tiny_backbone(args.workdir / "backbone")

    def flags(max_entities: int) -> list[str]:
        return [
            "--dataset", "wikipedia_wikidata", "--data_dir", str(args.workdir / "sources"),
            "--backbone", str(backbone), "--dataset_cache_dir", str(args.workdir / "cache"),
            "--prepared_dir", str(args.workdir / "prepared"), "--max_entities", str(max_entities),
            "--max_seq_length", "512", "--report_to", "none", "--seed", str(args.seed),
        ]  # fmt: skip

    records = {}
    for name, max_entities in (("all", 0), ("smaller", args.smaller_entities)):
        seconds, log, peak = run(
            [sys.executable, "examples/pretrain.py", "--prepare_only", *flags(max_entities),
             "--preprocessing_num_workers", str(args.num_proc), "--output_dir", str(args.workdir / "unused")],
            args.workdir / f"prepare-{name}.log",
        )  # fmt: skip
        folder = prepared_folder(args.workdir / "prepared", max_entities)
        manifest = json.loads((folder / "manifest.json").read_text())
        output = args.workdir / f"run-{name}"
        started = datetime.datetime.now()
        launch = [
            sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
            "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no", "examples/pretrain.py",
            *flags(max_entities), "--output_dir", str(output), "--max_train_steps", str(args.steps),
            "--per_device_train_batch_size", str(args.batch_size), "--logging_steps", "1",
            "--memory_refresh_init_interval", str(max(1, args.steps // 3)), "--memory_batch_size", "256",
        ]  # fmt: skip
        launch_seconds, launch_log, _ = run(launch, args.workdir / f"launch-{name}.log")
        records[name] = {
            "prepare_seconds": round(seconds, 1),
            "prepare_stage_seconds": {k: round(v, 1) for k, v in manifest["seconds"].items()},
            # RUSAGE_CHILDREN's peak covers every process started so far: the first preparation's alone is its own
            "largest_process_so_far_rss_mib": round(peak),
            **{k: manifest[k] for k in ("entities", "relations", "triples", "texts", "windows")},
            "launch_seconds": round(launch_seconds, 1),
            **launch_figures(launch_log, started, output, args.batch_size),
        }
        print(json.dumps({name: records[name]}), file=sys.stderr, flush=True)
    tokens = (
        {} if args.skip_token_count else count_tokens(prepared_folder(args.workdir / "prepared", 0), backbone, args)
    )

    full, small = records["all"], records["smaller"]
    table_mib = 64 * 4 / 2**20  # this run's float32 memory table per entity: on a GPU it is not in host memory

    def at_paper_scale(key: str) -> tuple[float, float]:
        """The largest rank's figure, linear in the entities through the two runs: (MiB per entity, GiB at 3.66M)."""
        slope = (max(full[key]) - max(small[key])) / (full["entities"] - small["entities"])
        return slope, (max(full[key]) + slope * (PAPER_ENTITIES - full["entities"])) / 1024

    extrapolated = {}
    for key in ("rank_peak_rss_mib", "rank_private_mib"):
        slope, gib = at_paper_scale(key)
        name = key.removeprefix("rank_").removesuffix("_mib")
        extrapolated[f"{name}_kib_per_entity"] = round(slope * 1024, 2)
        extrapolated[f"{name}_gib_at_paper_scale_cpu"] = round(gib, 2)
        extrapolated[f"{name}_gib_at_paper_scale_gpu_host"] = round(gib - table_mib * PAPER_ENTITIES / 1024, 2)
    report(
        "paper_scale_rehearsal",
        items=args.items,
        articles=full["texts"],
        dump_gib=round((args.workdir / "sources" / "wikidata.json").stat().st_size / 2**30, 2),
        runs=records,
        **tokens,
        **extrapolated,
    )


if __name__ == "__main__":
    main()
