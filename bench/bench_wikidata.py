"""Benchmark 10: preparing Wikipedia + Wikidata (`datasets_scripts.wikipedia_wikidata.prepare_wiki_kg`) on a synthetic
dump in Wikidata's JSON line format: entities per second per process and peak memory, as the dump grows and with
one or more processes; the paper's 3.66M-entity graph's preparation time extrapolated per core.

Each item line has what a real one has (labels, descriptions and aliases in several languages, an `instance of`
claim and item-valued, string and time claims with references, site links; the record gives the dump's size). Line
sizes follow Wikidata's: labels in more languages lengthen each line to a size drawn from a log-normal distribution
(sigma 1) whose mean over the dump is `--mean_line_kb` (14 KB: the July 2022 dump, 1.4 TB uncompressed for about
100 million entities). `--english_share` of the items (6.5%: 6.6 million English articles) have an English page, and
those lines are `--english_size_ratio` times as long as the others on average (4: an assumption, since such items
carry more site links, labels and claims; the split is not published). Each item with an English page has a page of
80 words and 5 links, as WikiExtractor `--json --links` writes it; the other items are read but never parsed.

    python -m bench.bench_wikidata [--entities 200000 1000000 --num_proc 1 2]
"""

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report, run_isolated
from bench.synthetic_dumps import PROPERTIES, write_extracted_pages, write_wikidata


def write_sources(folder: Path, count: int, mean_kb: float, english_share: float, english_ratio: float, seed=0):
    rng = random.Random(seed)
    pages = write_wikidata(folder / "wikidata.json", count, mean_kb, english_share, english_ratio, rng)
    write_extracted_pages(folder / "wikipedia" / "AA", pages, rng)
    return folder


def prepare(folder: str, num_proc: int) -> None:
    """One measurement, in a process of its own: prepare the graph and report time and peak memory."""
    from datasets_scripts.wikipedia_wikidata import prepare_wiki_kg

    folder = Path(folder)
    dump = folder / "wikidata.json"
    start = time.perf_counter()
    prepared = prepare_wiki_kg([dump], folder / "wikipedia", 5, 5, 64, num_proc, folder / f"prepared-{num_proc}")
    seconds = time.perf_counter() - start
    entities = sum(1 for path in prepared.glob("entities-*.jsonl") for _ in open(path))
    count = sum(1 for _ in open(dump, "rb")) - 2 - len(PROPERTIES)
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report(
        "wikidata_preparation",
        dump_entities=count,
        dump_gib=round(dump.stat().st_size / 2**30, 2),
        mean_line_kb=round(dump.stat().st_size / count / 1024, 1),
        kept_entities=entities,
        num_proc=num_proc,
        seconds=round(seconds, 1),
        dump_entities_per_second_per_process=round(count / seconds / num_proc),
        peak_rss_mib_main=round(self_peak),
        peak_rss_mib_worker=round(child_peak),
        paper_kg_hours_per_core=round(3.66e6 / (count / seconds / num_proc) / 3600, 2),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--num_proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mean_line_kb", type=float, default=14.0, help="mean size of a dump line")
    parser.add_argument("--english_share", type=float, default=0.065, help="items with an English page")
    parser.add_argument(
        "--english_size_ratio", type=float, default=4.0, help="how much longer their lines are, on average"
    )
    parser.add_argument("--measure", nargs=2, metavar=("FOLDER", "NUM_PROC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        prepare(args.measure[0], int(args.measure[1]))
        return
    for count in args.entities:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write_sources(Path(folder), count, args.mean_line_kb, args.english_share, args.english_size_ratio)
            print(f"{count} entities written in {time.perf_counter() - start:.0f} s", file=sys.stderr)
            for num_proc in args.num_proc:
                print(json.dumps(run_isolated("bench_wikidata", "--measure", folder, str(num_proc))), flush=True)


if __name__ == "__main__":
    main()
