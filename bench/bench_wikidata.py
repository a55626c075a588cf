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
import math
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report, run_isolated

PROPERTIES = [f"P{i}" for i in range(1, 823)]
ITEM_PROPERTIES = ["P17", "P131", "P279", "P361", "P27", "P106", "P69", "P108", "P463", "P166"]
WORDS = "the of and in a to was is for on as by with he at from his an were are which this be".split()


def statement(prop: str, value: dict, datatype: str, slot: str) -> dict:
    return {
        "mainsnak": {"snaktype": "value", "property": prop, "hash": f"%({slot}h)s", **value},
        "type": "statement",
        "id": f"%(id)s$%({slot}g)s",
        "rank": "normal",
        "references": [
            {
                "hash": f"%({slot}r)s",
                "snaks": {"P248": [{"snaktype": "value", "property": "P248", "datatype": datatype}]},
                "snaks-order": ["P248"],
            }
        ],
    }


def item_value(slot: str) -> dict:
    value = {"entity-type": "item", "numeric-id": f"%({slot}n)s", "id": f"Q%({slot}n)s"}
    return {"datatype": "wikibase-item", "datavalue": {"value": value, "type": "wikibase-entityid"}}


def item_template(properties: list[str]) -> str:
    """An item's JSON line with %(...)s slots for what differs between items (ids, hashes, titles, values)."""

    def label(value):
        return {lang: {"language": lang, "value": value} for lang in ("en", "de", "fr", "es")}

    claims = {
        prop: [statement(prop, item_value(f"c{i}"), "wikibase-item", f"c{i}")] for i, prop in enumerate(properties)
    }
    external = {"datatype": "external-id", "datavalue": {"value": "%(viaf)s", "type": "string"}}
    claims["P214"] = [statement("P214", external, "external-id", "x")]
    time_value = {"time": "+1952-03-11T00:00:00Z", "timezone": 0, "before": 0, "after": 0, "precision": 11}
    claims["P569"] = [
        statement("P569", {"datatype": "time", "datavalue": {"value": time_value, "type": "time"}}, "time", "t")
    ]
    entity = {
        "type": "item",
        "id": "%(id)s",
        "labels": {"pad": "%(more_labels)s", **label("%(title)s")},
        "descriptions": {
            lang: {"language": lang, "value": "synthetic entity number %(index)s"} for lang in ("en", "de")
        },
        "aliases": {"en": [{"language": "en", "value": "E%(index)s"}]},
        "claims": claims,
        "sitelinks": {
            site: {"site": site, "title": "%(title)s", "badges": []} for site in ("enwiki", "dewiki", "frwiki")
        },
        "lastrevid": "%(revision)s",
        "modified": "2026-11-01T00:00:00Z",
    }
    text = json.dumps(entity)
    for slot in [f"c{i}n" for i in range(len(properties))] + ["revision"]:  # numbers, not strings
        text = text.replace(f'"%({slot})s"', f"%({slot})s")
    return text.replace('"pad": "%(more_labels)s", ', "%(more_labels)s")


LABEL = '"l{0:03d}": {{"language": "l{0:03d}", "value": "a label in language {0:03d}"}}'
LABELS = ", ".join(LABEL.format(i) for i in range(4000))  # enough for a 200 KB line; cut to each line's size


def item(index: int, count: int, templates: list[str], rng, size: int, english: bool) -> str:
    """Item `index`, about `size` bytes long: P31 (one of 1,000 classes) and 5 more item claims, 1 external id and 1
    date, with references; labels in as many more languages as the size needs; an English page where `english`."""
    values = {"id": f"Q{index}", "index": index, "title": f"Entity {index}", "revision": rng.getrandbits(30)}
    values["viaf"] = rng.getrandbits(30)
    for slot in ["c0", "c1", "c2", "c3", "c4", "c5", "x", "t"]:
        values[slot + "h"], values[slot + "g"], values[slot + "r"] = (f"{rng.getrandbits(128):032x}" for _ in range(3))
    values["c0n"] = rng.randrange(1, 1000)
    for i in range(1, 6):
        values[f"c{i}n"] = rng.randrange(1, count + 1)
    values["more_labels"] = ""
    line = templates[index % len(templates)] % values
    if not english:  # as a real item without an English page: no "enwiki" site link
        line = line.replace('"enwiki": {"site": "enwiki"', '"eswiki": {"site": "eswiki"')
    if size > len(line):
        cut = LABELS.rfind("}, ", 0, size - len(line))  # at the end of a label
        values["more_labels"] = LABELS[: cut + 1] + ", " if cut > 0 else ""
        line = templates[index % len(templates)] % values
        if not english:
            line = line.replace('"enwiki": {"site": "enwiki"', '"eswiki": {"site": "eswiki"')
    return line


def line_sizes(count: int, mean_kb: float, english_share: float, english_ratio: float, rng):
    """(size in bytes, has an English page) of each item: log-normal sizes (sigma 1) whose mean over all items is
    `mean_kb`, those with an English page `english_ratio` times as long on average."""
    other_mean = mean_kb * 1024 / (1 + (english_ratio - 1) * english_share)
    for _ in range(count):
        english = rng.random() < english_share
        mean = other_mean * (english_ratio if english else 1)
        yield int(rng.lognormvariate(math.log(mean) - 0.5, 1.0)), english


def write_sources(folder: Path, count: int, mean_kb: float, english_share: float, english_ratio: float, seed=0):
    rng = random.Random(seed)
    pages = []
    with open(folder / "wikidata.json", "w", encoding="utf-8") as dump:
        dump.write("[\n")
        for prop in PROPERTIES:
            entity = {
                "type": "property",
                "id": prop,
                "labels": {"en": {"language": "en", "value": f"property {prop}"}},
            }
            dump.write(json.dumps(entity) + ",\n")
        templates = [item_template(["P31", *rng.sample(ITEM_PROPERTIES, 5)]) for _ in range(50)]
        for index, (size, english) in enumerate(line_sizes(count, mean_kb, english_share, english_ratio, rng), 1):
            dump.write(item(index, count, templates, rng, size, english) + (",\n" if index < count else "\n"))
            if english:
                pages.append(index)
        dump.write("]\n")
    folder = folder / "wikipedia" / "AA"
    folder.mkdir(parents=True)
    for begin in range(0, len(pages), 10_000):
        with open(folder / f"wiki_{begin // 10_000:05d}", "w", encoding="utf-8") as f:
            for index in pages[begin : begin + 10_000]:
                words = rng.choices(WORDS, k=75)
                links = [f'<a href="Entity%20{rng.choice(pages)}">entity</a>' for _ in range(5)]
                text = f"Entity {index} " + " ".join(words) + " " + " ".join(links)
                f.write(
                    json.dumps({"id": str(index), "revid": "1", "url": "", "title": f"Entity {index}", "text": text})
                    + "\n"
                )
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
