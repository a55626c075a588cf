"""Wikipedia + Wikidata, the paper's pre-training data at full scale.

Sources, both streamed line by line (the Wikidata dump may stay bz2- or gz-compressed):
- Wikidata's JSON dump (https://dumps.wikimedia.org/wikidatawiki/entities/latest-all.json.bz2): one entity a line
  inside a JSON array. Entities are the items with an English Wikipedia page; relations the properties whose
  values link two such items; an entity's category is its first `instance of` (P31) value.
- English Wikipedia (https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles.xml.bz2) as extracted by
  WikiExtractor with `--json --links`: one article a line, links kept as `<a href="Target">anchor</a>`. Links
  become mentions; an entity's description is the first `description_tokens` (64) words of its page.

The paper's filters are options: `min_neighbours` (5) and `min_mentions` (5). Links to pages that the filters
removed are dropped silently-but-counted as `filtered`; links to pages with no Wikidata item are counted as
missing, and more than `max_dropped_fraction` of those fails the build.

Point `data_dir` at a folder with `wikidata.json` (or `.json.bz2` / `.json.gz`) and `wikipedia/` (WikiExtractor's
output tree), or set `wikidata_dump` and `wikipedia_dir`.
"""

import functools
import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import datasets
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
    read_lines,
)

WIKIDATA_URL = "https://dumps.wikimedia.org/wikidatawiki/entities/latest-all.json.bz2"
WIKIPEDIA_URL = "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles.xml.bz2"
LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
DUMP_NAMES = ("wikidata.json", "wikidata.json.bz2", "wikidata.json.gz")


@dataclass
class WikipediaWikidataConfig(SourceConfig):
    wikidata_dump: str | None = None
    wikipedia_dir: str | None = None
    min_neighbours: int = 5
    min_mentions: int = 5
    description_tokens: int = 64
    max_dropped_fraction: float = 0.05


def normalise_title(title: str) -> str:
    """A link target or page title as Wikipedia resolves it: URL-decoded, `_` as space, no section, first letter
    upper case."""
    title = unquote(html.unescape(title)).replace("_", " ").split("#", 1)[0].strip()
    return title[:1].upper() + title[1:]


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


def _wikidata_entities(path: Path):
    """Each entity object of the dump (the array's brackets and trailing commas skipped), with its line number."""
    for number, line in tqdm(read_lines(path), desc=f"reading {path.name}", unit=" lines"):
        line = line.strip().rstrip(",")
        if line in ("[", "]", ""):
            continue
        try:
            entity = json.loads(line)
            entity["id"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise format_error(path, number, f"not a Wikidata entity ({error})") from None
        yield number, entity


def _english(entity, field):
    return (entity.get(field) or {}).get("en", {}).get("value")


def _item_claims(entity, path, number):
    """(property, target Q-id) for each statement whose value is an item; a claim that is not a statement object
    names the file, line, entity and property."""
    claims = entity.get("claims") or {}
    if not isinstance(claims, dict):
        raise format_error(
            path, number, f"entity {entity['id']}: claims must be an object, got {type(claims).__name__}"
        )
    for property_id, statements in claims.items():
        for statement in statements if isinstance(statements, list) else [statements]:
            if not isinstance(statement, dict) or not isinstance(statement.get("mainsnak", {}), dict):
                raise format_error(
                    path,
                    number,
                    f"entity {entity['id']}, claim {property_id}: not a statement object ({statement!r:.60})",
                )
            value = (statement.get("mainsnak", {}).get("datavalue") or {}).get("value")
            if isinstance(value, dict) and value.get("entity-type") == "item" and "id" in value:
                yield property_id, value["id"]


def _articles(folder: Path):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise DataFormatError(f"{folder}: no WikiExtractor output files")
    for path in tqdm(files, desc=f"reading articles under {folder.name}", unit=" files"):
        for number, line in read_lines(path):
            try:
                article = json.loads(line)
                yield path, number, article["title"], article["text"], str(article["id"])
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise format_error(path, number, f"not a WikiExtractor --json article ({error})") from None


@dataclass
class WikiKG:
    entities: list[dict]  # id, name, description, category (index), part
    category_names: list[str]
    relations: list[dict]
    triples: list[tuple[str, str, str]]
    titles: dict[str, str]  # normalised page title -> Q-id, for every item with a page (kept or filtered)
    kept: set[str]


@functools.lru_cache(maxsize=2)
def read_wiki_kg(
    dump: Path, wikipedia: Path, min_neighbours: int, min_mentions: int, description_tokens: int
) -> WikiKG:
    """Two streaming passes (Wikidata, then Wikipedia) that keep only what the graph needs."""
    items, property_names, titles = {}, {}, {}
    for number, entity in _wikidata_entities(dump):
        if entity.get("type") == "property":
            property_names[entity["id"]] = (
                _english(entity, "labels") or entity["id"],
                _english(entity, "descriptions"),
            )
            continue
        page = ((entity.get("sitelinks") or {}).get("enwiki") or {}).get("title")
        if entity.get("type") != "item" or not page:
            continue
        claims = list(_item_claims(entity, dump, number))
        instance_of = next((target for prop, target in claims if prop == "P31"), None)
        if entity["id"] in items:
            raise format_error(dump, number, f"entity {entity['id']} appears a second time in the dump")
        items[entity["id"]] = (_english(entity, "labels") or page, instance_of, claims)
        titles[normalise_title(page)] = entity["id"]
    if not items:
        raise DataFormatError(f"{dump}: no Wikidata item has an English Wikipedia page")

    descriptions, mention_counts = {}, Counter()
    for _, _, title, text, _ in _articles(wikipedia):
        plain, links = strip_links(text)
        qid = titles.get(normalise_title(title))
        if qid is not None and plain.strip():
            descriptions[qid] = " ".join(plain.split()[:description_tokens])
        mention_counts.update(titles[target] for _, _, target in links if target in titles)

    triples = sorted(
        {
            (head, prop, tail)
            for head, (_, _, claims) in items.items()
            for prop, tail in claims
            if tail in items and prop != "P31"
        }
    )
    degree = Counter([h for h, _, _ in triples] + [t for _, _, t in triples])
    kept = {
        q for q in items if q in descriptions and degree[q] >= min_neighbours and mention_counts[q] >= min_mentions
    }
    triples = [triple for triple in triples if triple[0] in kept and triple[2] in kept]
    if not kept:
        raise DataFormatError(
            f"{dump} + {wikipedia}: no entity has a page, >= {min_neighbours} neighbours and >= {min_mentions} "
            "mentions; lower min_neighbours / min_mentions for small data"
        )

    # An entity without P31 (instance of) has no category: -1, ClassLabel's "no label", which no loss trains on.
    classes = sorted({items[q][1] for q in kept if items[q][1]})
    category_index = {c: i for i, c in enumerate(classes)}
    category_names = [f"{c} ({items[c][0]})" if c in items else c for c in classes]
    entities = [
        {
            "id": q,
            "name": items[q][0],
            "description": descriptions[q],
            "category": category_index.get(items[q][1], -1),
            "part": "pretrain",
            "aliases": [],
        }
        for q in sorted(kept)
    ]
    used = sorted({prop for _, prop, _ in triples})
    relations = []
    for prop in used:
        name, description = property_names.get(prop, (prop, None))
        relations.append({"id": prop, "name": name, "description": f"{name}: {description}" if description else name})
    return WikiKG(entities, category_names, relations, triples, titles, kept)


class WikipediaWikidata(datasets.GeneratorBasedBuilder):
    """English Wikipedia (WikiExtractor --json --links) and Wikidata's JSON dump; see the module docstring."""

    BUILDER_CONFIG_CLASS = WikipediaWikidataConfig
    BUILDER_CONFIGS = [WikipediaWikidataConfig(name=n) for n in ("entities", "relations", "triples", "text")]
    DEFAULT_CONFIG_NAME = "entities"

    def _sources(self) -> tuple[Path, Path]:
        root = Path(self.config.data_dir) if self.config.data_dir else None
        dump = Path(self.config.wikidata_dump) if self.config.wikidata_dump else None
        if dump is None and root is not None:
            dump = next((root / name for name in DUMP_NAMES if (root / name).is_file()), None)
        wikipedia = (
            Path(self.config.wikipedia_dir) if self.config.wikipedia_dir else (root / "wikipedia" if root else None)
        )
        if dump is None or not dump.is_file() or wikipedia is None or not wikipedia.is_dir():
            raise FileNotFoundError(
                f"wikipedia_wikidata: need the Wikidata dump ({WIKIDATA_URL}) as <data_dir>/wikidata.json[.bz2|.gz] "
                f"and WikiExtractor --json --links output of {WIKIPEDIA_URL} under <data_dir>/wikipedia/ "
                f"(data_dir={self.config.data_dir})"
            )
        return dump, wikipedia

    def _kg(self) -> WikiKG:
        c = self.config
        return read_wiki_kg(*self._sources(), c.min_neighbours, c.min_mentions, c.description_tokens)

    def _info(self):
        features = {
            "entities": lambda: entity_features(self._kg().category_names),
            "relations": lambda: RELATION_FEATURES,
            "triples": lambda: TRIPLE_FEATURES,
            "text": lambda: TEXT_FEATURES,
        }[self.config.name]()
        return datasets.DatasetInfo(description=__doc__, features=features, homepage=WIKIDATA_URL)

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN)]

    def _generate_examples(self):
        kg = self._kg()
        if self.config.name == "entities":
            yield from enumerate(kg.entities)
        elif self.config.name == "relations":
            yield from ((r["id"], r) for r in kg.relations)
        elif self.config.name == "triples":
            for i, (head, relation, tail) in enumerate(kg.triples):
                yield i, {"head": head, "relation": relation, "tail": tail}
        else:
            yield from self._text(kg)

    def _text(self, kg: WikiKG):
        _, wikipedia = self._sources()
        missing = DropCounter(str(wikipedia), self.config.max_dropped_fraction)
        filtered = 0
        for _path, _number, _title, text, page_id in _articles(wikipedia):
            plain, links = strip_links(text)
            if not plain.strip():
                continue
            mentions = []
            for start, end, target in links:
                qid = kg.titles.get(target)
                if not missing.keep(qid is not None):
                    continue
                if qid not in kg.kept:
                    filtered += 1
                elif end > start:
                    mentions.append({"start": start, "end": end, "entity": qid})
            yield page_id, {"id": page_id, "text": plain, "mentions": mentions}
        missing.report()
        logger.warning(f"{wikipedia}: dropped {filtered} links to entities removed by the filters")
