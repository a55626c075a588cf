"""Wikipedia + Wikidata, the paper's pre-training data at full scale.

Sources, both streamed (the dumps may stay compressed):
- Wikidata's JSON dump (https://dumps.wikimedia.org/wikidatawiki/entities/latest-all.json.bz2): one entity a line
  inside a JSON array. Entities are the items with an English Wikipedia page; relations the properties whose
  values link two such items; an entity's category is its first `instance of` (P31) value.
- English Wikipedia's XML dump (https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles.xml.bz2, or
  the parts it is also published in), read with `mwxml` and its wikitext turned into plain text and links with
  `mwparserfromhell` (`wikitext.py`); or, as a second input format, WikiExtractor's `--json --links` output (one
  article a line, links kept as `<a href="Target">anchor</a>`). Links become mentions, resolved by MediaWiki's title
  rules and, in the XML dump, through its redirect pages; each shard logs how many links resolved directly, through a
  redirect, or not at all. An entity's description is the first `description_tokens` (64) words of its page.

The paper's filters are options: `min_neighbours` (5) and `min_mentions` (5). Links to pages that the filters
removed are dropped silently-but-counted as `filtered`; links to pages with no Wikidata item are counted as
missing, and more than `max_dropped_fraction` of those in a shard of the text (one process's Wikipedia files)
fails the build.

Point `data_dir` at a folder with `wikidata.json` (or `.json.bz2` / `.json.gz`, or a folder `wikidata/` of such
parts) and `wikipedia/` (the XML dump, or WikiExtractor's output tree), or set `wikidata_dump` and `wikipedia_dir`.

The graph is prepared once, by two map-reduce passes over `kg_num_proc` processes: the dump in shards (byte ranges of
an uncompressed file at line starts, or one part of a split dump a shard; a single compressed file is read by one
process), then the Wikipedia files (one file or dump part a shard). The result is written beside datasets' cache
(`prepare_wiki_kg`): category names, entities, relations, triples, page titles and redirects in files of their own,
which every config then reads, shard by shard, in `num_proc` processes or as a stream (`streaming=True`); `_info` reads
the category names alone.
"""

import functools
import hashlib
import html
import itertools
import json
import multiprocessing
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

try:  # several times faster on Wikidata's long lines; an extra (pip install 'jaket[fast]')
    from orjson import loads as parse_json
except ImportError:
    parse_json = json.loads
from datasets.utils.tqdm import tqdm

from .common import (
    RELATION_FEATURES,
    TEXT_FEATURES,
    TRIPLE_FEATURES,
    DataFormatError,
    DropCounter,
    SourceConfig,
    entity_features,
    format_error,
    logger,
    open_binary,
    parse_json_line,
    read_lines,
)
from .metadata import WIKI_LICENSE, WIKIDATA_CITATION
from .wikitext import Article, Redirects, dump_articles, normalise_title

WIKIDATA_URL = "https://dumps.wikimedia.org/wikidatawiki/entities/latest-all.json.bz2"
WIKIPEDIA_URL = "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles.xml.bz2"
LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
DUMP_NAMES = ("wikidata.json", "wikidata.json.bz2", "wikidata.json.gz")
DUMP_SUFFIXES = (".json", ".json.bz2", ".json.gz")
ENGLISH_PAGE = '"enwiki"'  # the key of an item's English sitelink
PROPERTY_MARKS = ('"type":"property"', '"type": "property"')  # Wikidata's compact JSON, and json.dumps' default
SHARD_FILES = {"entities": "entities-{:05d}.jsonl", "triples": "triples-{:05d}.tsv"}


@dataclass
class WikipediaWikidataConfig(SourceConfig):
    wikidata_dump: str | None = None
    wikipedia_dir: str | None = None
    min_neighbours: int = 5
    min_mentions: int = 5
    description_tokens: int = 64
    max_dropped_fraction: float = 0.05
    kg_num_proc: int = 1  # processes for the two passes that prepare the graph (`prepare_wiki_kg`)


def strip_links(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """WikiExtractor text without its link markup, and (start, end, normalised target) of each link's anchor."""
    pieces, links, position, length = [], [], 0, 0
    for match in LINK.finditer(text):
        pieces.append(text[position : match.start()])
        length += match.start() - position
        anchor = html.unescape(match.group(2))
        links.append((length, length + len(anchor), normalise_title(match.group(1))))
        pieces.append(anchor)
        length += len(anchor)
        position = match.end()
    pieces.append(text[position:])
    return "".join(pieces), links


@dataclass(frozen=True)
class DumpShard:
    """The lines of one dump file that start in bytes [begin, end) (`end` None: to the file's end). Only an
    uncompressed file is split into byte ranges; a compressed one is a single shard."""

    path: Path
    begin: int = 0
    end: int | None = None

    def lines(self):
        """(where, line) for each line: `where` is "line N", counted from the shard's first line where the shard
        starts inside the file."""
        if self.begin == 0 and self.end is None:
            yield from ((f"line {number}", line) for number, line in read_lines(self.path))
            return
        with open_binary(self.path) as f:
            f.seek(max(self.begin - 1, 0))
            if self.begin > 0:
                f.readline()  # the end of the line that started before this shard (or the newline just before it)
            number = 0
            while self.end is None or f.tell() < self.end:
                raw = f.readline()
                if not raw:
                    break
                number += 1
                where = f"line {number} of the shard from byte {self.begin}" if self.begin else f"line {number}"
                try:
                    yield where, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as error:
                    raise DataFormatError(f"{self.path}, {where}: not UTF-8 (column {error.start + 1})") from None


def dump_shards(files: list[Path], num_shards: int) -> list[DumpShard]:
    """`num_shards` byte ranges of each uncompressed file (a range boundary falls inside a line: that line belongs to
    the range where it starts); each compressed file whole."""
    shards = []
    for path in files:
        if path.suffix == ".json" and num_shards > 1:
            size = path.stat().st_size
            bounds = [size * i // num_shards for i in range(num_shards)] + [None]
            shards += [DumpShard(path, begin, end) for begin, end in zip(bounds, bounds[1:])]
        else:
            shards.append(DumpShard(path))
    return shards


def _wikidata_entities(shard: DumpShard):
    """Each entity object of a shard of the dump that the graph may need (the array's brackets and trailing commas
    skipped), with where it is. A line that names no English page and is no property is skipped before it is parsed:
    nearly all of Wikidata's lines (over 90%), parsed in full they were most of this pass's time. Only such a line
    that is also malformed goes unnoticed."""
    for where, line in tqdm(shard.lines(), desc=f"reading {shard.path.name}", unit=" lines"):
        if ENGLISH_PAGE not in line and not any(mark in line for mark in PROPERTY_MARKS):
            continue
        line = line.strip().rstrip(",")
        try:
            entity = parse_json(line)
            entity["id"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataFormatError(f"{shard.path}, {where}: not a Wikidata entity ({error})") from None
        if not isinstance(entity["id"], str):
            raise DataFormatError(f"{shard.path}, {where}: an entity id is a string such as Q42, got {entity['id']!r}")
        yield where, entity


def _english_page(entity, path, where) -> str | None:
    """The title of the item's English Wikipedia page, or None. Wikibase writes an empty map as `[]`: an empty list
    is no sitelinks; any other shape is an error, never a page dropped unseen."""
    sitelinks = entity.get("sitelinks")
    if sitelinks is None or sitelinks == []:
        return None
    if not isinstance(sitelinks, dict):
        raise DataFormatError(
            f"{path}, {where}: entity {entity['id']}: sitelinks must be an object, got {type(sitelinks).__name__}"
        )
    enwiki = sitelinks.get("enwiki")
    if enwiki is not None and not (isinstance(enwiki, dict) and isinstance(enwiki.get("title"), str)):
        raise DataFormatError(
            f"{path}, {where}: entity {entity['id']}: sitelinks.enwiki must be an object with a title string, got "
            f"{enwiki!r:.80}"
        )
    return enwiki["title"] if enwiki else None


def _english(entity, field):
    return (entity.get(field) or {}).get("en", {}).get("value")


def _item_claims(entity, path, where):
    """(property, target Q-id) for each statement whose value is an item; a claim that is not a statement object
    names the file, line, entity and property."""
    claims = entity.get("claims") or {}
    if not isinstance(claims, dict):
        raise DataFormatError(
            f"{path}, {where}: entity {entity['id']}: claims must be an object, got {type(claims).__name__}"
        )
    for property_id, statements in claims.items():
        for statement in statements if isinstance(statements, list) else [statements]:
            if not isinstance(statement, dict) or not isinstance(statement.get("mainsnak", {}), dict):
                raise DataFormatError(
                    f"{path}, {where}: entity {entity['id']}, claim {property_id}: not a statement object "
                    f"({statement!r:.60})"
                )
            value = (statement.get("mainsnak", {}).get("datavalue") or {}).get("value")
            if isinstance(value, dict) and value.get("entity-type") == "item" and "id" in value:
                yield property_id, value["id"]


# a pages-articles dump, whole (`...-pages-articles.xml[.bz2]`) or one of its parts as Wikimedia names them
# (`...-pages-articles1.xml-p1p41242.bz2`)
XML_DUMP = re.compile(r"\.xml(-p\d+p\d+)?(\.bz2)?$")


def article_files(folder: Path) -> list[Path]:
    """The Wikipedia source files under `folder`: a `pages-articles` XML dump (one file or the parts Wikimedia splits
    it into, `.xml` or `.xml.bz2`), else WikiExtractor's output tree."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    dumps = [p for p in files if XML_DUMP.search(p.name)]
    if dumps:
        return dumps
    if not files:
        raise DataFormatError(f"{folder}: neither a pages-articles XML dump (.xml, .xml.bz2) nor WikiExtractor output")
    return files


def _extracted_articles(path: Path):
    """WikiExtractor `--json --links` articles of one file (it leaves redirect pages out)."""
    for number, line in read_lines(path):
        article = parse_json_line(path, number, line)
        try:
            title, text, page_id = article["title"], article["text"], str(article["id"])
        except (KeyError, TypeError) as error:
            raise format_error(path, number, f"not a WikiExtractor --json article ({error})") from None
        if not isinstance(title, str) or not isinstance(text, str):
            raise format_error(
                path, number, f"an article's title and text are strings, got {title!r} and {text!r:.40}"
            )
        plain, links = strip_links(text)
        yield Article(normalise_title(title), page_id, plain, links)


def _articles(files: list[Path]):
    """Every `Article` of the files, in order: an XML dump's pages (redirects included), or WikiExtractor's."""
    for path in tqdm(files, desc="reading Wikipedia articles", unit=" files"):
        yield from dump_articles(path) if XML_DUMP.search(path.name) else _extracted_articles(path)


class LinkCounts:
    """How the links of one shard of the text resolved: to a page directly, through a redirect, to no page with a
    Wikidata item (missing), or to another namespace or wiki (left out); logged per shard."""

    def __init__(self):
        self.direct = self.redirected = self.missing = self.other = 0

    def add(self, other: "LinkCounts") -> None:
        for key in ("direct", "redirected", "missing", "other"):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def log(self, where: str) -> None:
        total = self.direct + self.redirected + self.missing
        logger.warning(
            f"{where}: {total} links, {self.direct} resolved to a page, {self.redirected} through a redirect, "
            f"{self.missing} missing ({self.missing / max(total, 1):.2%}); {self.other} into other namespaces or "
            "wikis left out"
        )


def _number(entity_id: str, path, where) -> int:
    """Q42 -> 42, P31 -> 31: the graph is held as integer arrays, not as strings."""
    if not (len(entity_id) > 1 and entity_id[1:].isdigit()):
        raise DataFormatError(f"{path}, {where}: {entity_id!r} is not a Wikidata id (Q or P and digits)")
    return int(entity_id[1:])


@dataclass
class ItemShard:
    """What the Wikidata pass keeps of the items with an English page, as arrays: for item i its Q-number, label,
    page title and `instance of` (0: none), and its item-valued claims (P-number, target Q-number), `claim_counts[i]`
    of them in order."""

    numbers: np.ndarray
    labels: list[str]
    pages: list[str]
    instance_of: np.ndarray
    claim_counts: np.ndarray
    claim_properties: np.ndarray
    claim_targets: np.ndarray
    properties: dict  # P-id -> (label, description), every property entity of the shard
    path: str


def _map(function, shards: list, num_proc: int) -> list:
    """`function` over `shards`, in `num_proc` forked processes (which share what the parent held when forking)."""
    if num_proc <= 1 or len(shards) <= 1:
        return [function(shard) for shard in shards]
    with multiprocessing.get_context("fork").Pool(min(num_proc, len(shards))) as pool:
        return pool.map(function, shards, chunksize=1)


def _extract_items(shard: DumpShard) -> ItemShard:
    """Map step of the Wikidata pass."""
    numbers, labels, pages, instance_of, counts, properties_of_claims, targets = [], [], [], [], [], [], []
    properties, seen = {}, set()
    for where, entity in _wikidata_entities(shard):
        if entity.get("type") == "property":
            properties[entity["id"]] = (_english(entity, "labels") or entity["id"], _english(entity, "descriptions"))
            continue
        page = _english_page(entity, shard.path, where)
        if entity.get("type") != "item" or not page:
            continue
        number = _number(entity["id"], shard.path, where)
        if number in seen:
            raise DataFormatError(f"{shard.path}, {where}: entity {entity['id']} appears a second time in the dump")
        seen.add(number)
        claims = [
            (_number(p, shard.path, where), _number(t, shard.path, where))
            for p, t in _item_claims(entity, shard.path, where)
        ]
        numbers.append(number)
        labels.append(_english(entity, "labels") or page)
        pages.append(page)
        instance_of.append(next((t for p, t in claims if p == 31), 0))
        counts.append(len(claims))
        properties_of_claims += [p for p, _ in claims]
        targets += [t for _, t in claims]
    return ItemShard(
        np.array(numbers, dtype=np.int64),
        labels,
        pages,
        np.array(instance_of, dtype=np.int64),
        np.array(counts, dtype=np.int64),
        np.array(properties_of_claims, dtype=np.int64),
        np.array(targets, dtype=np.int64),
        properties,
        str(shard.path),
    )


_PAGES = {}  # what the Wikipedia pass's processes read: set before they fork


def _read_pages(files: list[Path]) -> tuple[dict, np.ndarray, dict, Counter, LinkCounts]:
    """Map step of the Wikipedia pass: the description of each candidate item's page ({item index: text}), the
    number of links to each item's page, the redirect pages ({title: target}), the links to titles that are no
    item's page (counted by title: a redirect may resolve them once every shard's redirects are known) and the
    shard's link counts."""
    titles, candidates, description_tokens = _PAGES["titles"], _PAGES["candidates"], _PAGES["description_tokens"]
    descriptions, mentions, linked = {}, np.zeros(len(candidates), dtype=np.int64), []
    redirects, unresolved, counts = {}, Counter(), LinkCounts()
    for article in _articles(files):
        if article.redirect is not None:
            redirects[article.title] = article.redirect
            continue
        index = titles.get(article.title)
        if index is not None and candidates[index] and article.text.strip():
            descriptions[index] = " ".join(article.text.split()[:description_tokens])
        counts.other += article.other_links
        for _, _, target in article.links:
            if target in titles:
                linked.append(titles[target])
            else:
                unresolved[target] += 1
        if len(linked) > 1_000_000:
            mentions += np.bincount(linked, minlength=len(candidates))
            linked = []
    counts.direct = int(mentions.sum()) + len(linked)
    return descriptions, mentions + np.bincount(linked, minlength=len(candidates)), redirects, unresolved, counts


@dataclass
class WikiKG:
    """The graph, indexed by item (every item with an English page, in dump order): ids, labels, categories (-1:
    none), the kept ones, their descriptions, and the triples between kept items as index arrays."""

    ids: list[str]
    labels: list[str]
    categories: np.ndarray
    category_names: list[str]
    kept: np.ndarray  # bool per item
    descriptions: dict[int, str]
    heads: np.ndarray
    properties: np.ndarray
    tails: np.ndarray
    relations: list[dict]
    titles: dict[str, int]  # normalised page title -> item index, for every item (kept or filtered)
    redirects: dict[str, str]  # normalised redirect title -> the title of the item page its chain ends at


def read_wiki_kg(
    dumps: list[Path],
    wikipedia: Path,
    min_neighbours: int,
    min_mentions: int,
    description_tokens: int,
    num_proc: int = 1,
) -> WikiKG:
    """Two streaming map-reduce passes (Wikidata, then Wikipedia) that keep only what the graph needs, as arrays."""
    shards = _map(_extract_items, dump_shards(dumps, num_proc), num_proc)
    numbers = np.concatenate([shard.numbers for shard in shards])
    if numbers.size == 0:
        raise DataFormatError(f"{', '.join(map(str, dumps))}: no Wikidata item has an English Wikipedia page")
    order = np.argsort(numbers, kind="stable")
    ordered = numbers[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if repeated.size:  # within a shard it was named with its line already
        where = [shard.path for shard in shards if ordered[repeated[0]] in shard.numbers]
        raise DataFormatError(
            f"{where[-1]}: entity Q{ordered[repeated[0]]} appears a second time in the dump (in two of its shards)"
        )
    labels = [label for shard in shards for label in shard.labels]
    pages = [page for shard in shards for page in shard.pages]
    instance_of = np.concatenate([shard.instance_of for shard in shards])
    property_names = {k: v for shard in shards for k, v in shard.properties.items()}
    counts = np.concatenate([shard.claim_counts for shard in shards])
    claim_properties = np.concatenate([shard.claim_properties for shard in shards])
    claim_targets = np.concatenate([shard.claim_targets for shard in shards])
    del shards

    def index_of(targets):  # item index of each Q-number, -1 where it is no item with a page
        position = np.minimum(np.searchsorted(ordered, targets), ordered.size - 1)
        return np.where(ordered[position] == targets, order[position], -1)

    heads = np.repeat(np.arange(numbers.size), counts)
    tails = index_of(claim_targets)
    keep = (tails >= 0) & (claim_properties != 31)
    triples = np.unique(np.stack([heads[keep], claim_properties[keep], tails[keep]], axis=1), axis=0)
    heads, properties, tails = triples.T
    degree = np.bincount(heads, minlength=numbers.size) + np.bincount(tails, minlength=numbers.size)

    titles = {normalise_title(page): index for index, page in enumerate(pages)}
    del pages
    files = article_files(wikipedia)
    _PAGES.update(titles=titles, candidates=degree >= min_neighbours, description_tokens=description_tokens)
    try:
        parts = _map(_read_pages, [files[i :: max(1, num_proc)] for i in range(max(1, num_proc))], num_proc)
    finally:
        _PAGES.clear()
    descriptions, mentions, redirects, unresolved, counts = (
        {},
        np.zeros(numbers.size, dtype=np.int64),
        {},
        Counter(),
        LinkCounts(),
    )
    for part_descriptions, part_mentions, part_redirects, part_unresolved, part_counts in parts:
        descriptions.update(part_descriptions)
        mentions += part_mentions
        redirects.update(part_redirects)
        unresolved.update(part_unresolved)
        counts.add(part_counts)
    del parts
    redirects = Redirects(redirects)
    for target, count in unresolved.items():  # links to a redirect count for the page it leads to
        index = titles.get(redirects.resolve(target))
        if index is None:
            counts.missing += count
        else:
            mentions[index] += count
            counts.redirected += count
    counts.log(f"{wikipedia} ({len(files)} files)")
    # what the text's links need: each redirect that ends at an item's page, as that page's title
    redirects = {title: end for title in redirects.targets if (end := redirects.resolve(title)) in titles}

    has_description = np.zeros(numbers.size, dtype=bool)
    has_description[list(descriptions)] = True
    kept = has_description & (degree >= min_neighbours) & (mentions >= min_mentions)
    if not kept.any():
        raise DataFormatError(
            f"{', '.join(map(str, dumps))} + {wikipedia}: no entity has a page, >= {min_neighbours} neighbours and "
            f">= {min_mentions} mentions; lower min_neighbours / min_mentions for small data"
        )
    inside = kept[heads] & kept[tails]
    heads, properties, tails = heads[inside], properties[inside], tails[inside]
    descriptions = {index: text for index, text in descriptions.items() if kept[index]}

    # An entity without P31 (instance of) has no category: -1, ClassLabel's "no label", which no loss trains on.
    ids = [f"Q{number}" for number in numbers.tolist()]
    classes = sorted({f"Q{number}" for number in np.unique(instance_of[kept & (instance_of > 0)]).tolist()})
    category_index = {c: i for i, c in enumerate(classes)}
    class_labels = index_of(np.array([int(c[1:]) for c in classes], dtype=np.int64))
    category_names = [f"{c} ({labels[i]})" if i >= 0 else c for c, i in zip(classes, class_labels.tolist())]
    categories = np.array([category_index.get(f"Q{n}", -1) if n else -1 for n in instance_of.tolist()], dtype=np.int64)
    relations = []
    for number in sorted(np.unique(properties).tolist(), key=lambda n: f"P{n}"):
        name, description = property_names.get(f"P{number}", (f"P{number}", None))
        relations.append(
            {"id": f"P{number}", "name": name, "description": f"{name}: {description}" if description else name}
        )
    return WikiKG(
        ids,
        labels,
        categories,
        category_names,
        kept,
        descriptions,
        heads,
        properties,
        tails,
        relations,
        titles,
        redirects,
    )


def sources_key(dumps: list[Path], wikipedia: Path, *settings) -> str:
    """A digest of the sources (each file's path, size and modification time), the settings and this module's code:
    the prepared graph's folder name, so that a changed source or filter prepares again."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in [*dumps, *article_files(wikipedia)]:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(repr(settings).encode())
    return digest.hexdigest()[:16]


def prepare_wiki_kg(
    dumps: list[Path],
    wikipedia: Path,
    min_neighbours: int,
    min_mentions: int,
    description_tokens: int,
    num_proc: int,
    root: Path,
    rows_per_file: int = 100_000,
) -> Path:
    """The graph of `read_wiki_kg`, written once under `root` (a folder named by `sources_key`) as files that the
    builder's configs read shard by shard: `categories.json` (the category names, all that `_info` reads),
    `entities-NNNNN.jsonl` and `triples-NNNNN.tsv` (`rows_per_file` rows each, sorted by id), `relations.jsonl` and
    `titles.jsonl` ([title, Q-id, kept] per page) and `redirects.jsonl` ([redirect title, page title]), for the text's
    links."""
    settings = (min_neighbours, min_mentions, description_tokens)
    folder = Path(root) / sources_key(dumps, wikipedia, *settings)
    if (folder / "categories.json").is_file():
        return folder
    kg = read_wiki_kg(dumps, wikipedia, *settings, num_proc)
    Path(root).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".preparing-"))

    def write_rows(pattern, rows):  # streamed: a new file every rows_per_file rows, at least one
        rows, index = iter(rows), 0
        while True:
            chunk = list(itertools.islice(rows, rows_per_file))
            if chunk or index == 0:
                with open(staging / pattern.format(index), "w", encoding="utf-8") as f:
                    f.writelines(row + "\n" for row in chunk)
            if len(chunk) < rows_per_file:
                return
            index += 1

    entities = sorted(np.flatnonzero(kg.kept).tolist(), key=kg.ids.__getitem__)
    write_rows(
        SHARD_FILES["entities"],
        (
            json.dumps(
                {
                    "id": kg.ids[i],
                    "name": kg.labels[i],
                    "description": kg.descriptions[i],
                    "category": int(kg.categories[i]),
                    "part": "pretrain",
                    "aliases": [],
                }
            )
            for i in entities
        ),
    )
    ids = kg.ids
    write_rows(
        SHARD_FILES["triples"],
        (f"{ids[h]}\tP{p}\t{ids[t]}" for h, p, t in zip(kg.heads.tolist(), kg.properties.tolist(), kg.tails.tolist())),
    )
    with open(staging / "relations.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(relation) + "\n" for relation in kg.relations)
    with open(staging / "titles.jsonl", "w", encoding="utf-8") as f:
        kept = kg.kept.tolist()
        f.writelines(json.dumps([title, ids[i], kept[i]]) + "\n" for title, i in kg.titles.items())
    with open(staging / "redirects.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps([title, end]) + "\n" for title, end in kg.redirects.items())
    (staging / "categories.json").write_text(json.dumps(kg.category_names))  # last: it marks the folder complete
    try:
        staging.rename(folder)
    except OSError:  # another process prepared it first
        shutil.rmtree(staging)
    return folder


@functools.lru_cache(maxsize=2)
def read_titles(folder: Path) -> tuple[dict[str, str], frozenset, dict[str, str]]:
    """The prepared pages: {normalised title: Q-id}, the Q-ids the filters kept, and {redirect title: page title}."""
    titles, kept, redirects = {}, set(), {}
    with open(folder / "titles.jsonl", encoding="utf-8") as f:
        for line in f:
            title, qid, is_kept = json.loads(line)
            titles[title] = qid
            if is_kept:
                kept.add(qid)
    with open(folder / "redirects.jsonl", encoding="utf-8") as f:
        for line in f:
            title, end = json.loads(line)
            redirects[title] = end
    return titles, frozenset(kept), redirects


BUILDER_VERSION = datasets.Version("1.0.0")


class WikipediaWikidata(datasets.GeneratorBasedBuilder):
    """English Wikipedia (its XML dump, or WikiExtractor --json --links) and Wikidata's JSON dump; see the module
    docstring."""

    BUILDER_CONFIG_CLASS = WikipediaWikidataConfig
    VERSION = BUILDER_VERSION
    BUILDER_CONFIGS = [
        WikipediaWikidataConfig(name=n, version=BUILDER_VERSION) for n in ("entities", "relations", "triples", "text")
    ]
    DEFAULT_CONFIG_NAME = "entities"

    def __init__(self, *args, cache_dir=None, **kwargs):
        # the prepared graph lies beside datasets' cache; `_info` (run by the base __init__) reads it
        self._kg_root = Path(cache_dir or datasets.config.HF_DATASETS_CACHE).expanduser() / "wikipedia_wikidata_kg"
        super().__init__(*args, cache_dir=cache_dir, **kwargs)

    def _sources(self) -> tuple[list[Path], Path]:
        root = Path(self.config.data_dir) if self.config.data_dir else None
        dumps = [Path(self.config.wikidata_dump)] if self.config.wikidata_dump else []
        if not dumps and root is not None:
            dumps = [root / name for name in DUMP_NAMES if (root / name).is_file()][:1]
            if not dumps and (root / "wikidata").is_dir():  # a dump split into parts
                dumps = sorted(p for p in (root / "wikidata").iterdir() if p.name.endswith(DUMP_SUFFIXES))
        wikipedia = (
            Path(self.config.wikipedia_dir) if self.config.wikipedia_dir else (root / "wikipedia" if root else None)
        )
        if not dumps or not all(p.is_file() for p in dumps) or wikipedia is None or not wikipedia.is_dir():
            raise FileNotFoundError(
                f"wikipedia_wikidata: need the Wikidata dump ({WIKIDATA_URL}) as <data_dir>/wikidata.json[.bz2|.gz] "
                "(or its parts in <data_dir>/wikidata/) "
                f"and {WIKIPEDIA_URL} (or WikiExtractor --json --links output of it) under <data_dir>/wikipedia/ "
                f"(data_dir={self.config.data_dir})"
            )
        return dumps, wikipedia

    @functools.cached_property
    def prepared(self) -> Path:
        """The folder of the prepared graph (`prepare_wiki_kg`), prepared on first use."""
        c = self.config
        dumps, wikipedia = self._sources()
        return prepare_wiki_kg(
            dumps, wikipedia, c.min_neighbours, c.min_mentions, c.description_tokens, c.kg_num_proc, self._kg_root
        )

    def _info(self):
        features = {
            "entities": lambda: entity_features(json.loads((self.prepared / "categories.json").read_text())),
            "relations": lambda: RELATION_FEATURES,
            "triples": lambda: TRIPLE_FEATURES,
            "text": lambda: TEXT_FEATURES,
        }[self.config.name]()
        return datasets.DatasetInfo(
            description=__doc__,
            features=features,
            citation=WIKIDATA_CITATION,
            license=WIKI_LICENSE,
            homepage=WIKIDATA_URL,
        )

    def _split_generators(self, dl_manager):
        """Shards for `num_proc` and streaming: the prepared files, or the Wikipedia files for the text."""
        name = self.config.name
        if name == "text":
            files = article_files(self._sources()[1])
        elif name == "relations":
            files = [self.prepared / "relations.jsonl"]
        else:
            files = sorted(self.prepared.glob(SHARD_FILES[name].replace("{:05d}", "*")))
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"files": files})]

    def _generate_examples(self, files):
        if self.config.name == "text":
            yield from self._text(files)
            return
        for path in files:
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f):
                    key = f"{path.name}:{number}"
                    if self.config.name == "triples":
                        head, relation, tail = line.rstrip("\n").split("\t")
                        yield key, {"head": head, "relation": relation, "tail": tail}
                    else:
                        yield key, json.loads(line)

    def _text(self, files: list[Path]):
        titles, kept, redirects = read_titles(self.prepared)
        missing = DropCounter(f"{files[0].parent} ({len(files)} files)", self.config.max_dropped_fraction)
        counts, filtered = LinkCounts(), 0
        for article in _articles(files):
            if article.redirect is not None or not article.text.strip():
                continue
            counts.other += article.other_links
            mentions = []
            for start, end, target in article.links:
                qid = titles.get(target)
                if qid is not None:
                    counts.direct += 1
                elif target in redirects:
                    qid = titles[redirects[target]]
                    counts.redirected += 1
                else:
                    counts.missing += 1
                if not missing.keep(qid is not None):
                    continue
                if qid not in kept:
                    filtered += 1
                elif end > start:
                    mentions.append({"start": start, "end": end, "entity": qid})
            yield article.page_id, {"id": article.page_id, "text": article.text, "mentions": mentions}
        counts.log(f"{files[0]} .. {files[-1].name}")
        missing.report()
        logger.warning(f"{files[0].parent}: dropped {filtered} links to entities removed by the filters")
