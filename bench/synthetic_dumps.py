"""Synthetic dumps in the real formats, for benchmarks and the paper-scale rehearsal: Wikidata's JSON dump (one entity
a line, line sizes as Wikidata's), English Wikipedia as WikiExtractor `--json --links` writes it, and English
Wikipedia's `pages-articles` XML dump (wikitext with templates, references, headings, links with anchors, lower-case
first letters and section links, and redirect pages that links go through).

Item `i` is `Q<i>`; an item with an English page has the page "Entity <i>", and a redirect to it "Alias of entity <i>".
"""

import html
import json
import math
from pathlib import Path

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


def item(index: int, count: int, templates: list[str], rng, size: int, english: bool, target=None) -> str:
    """Item `index`, about `size` bytes long: P31 (one of 1,000 classes) and 5 more item claims (to `target()`, by
    default any of the `count` items), 1 external id and 1 date, with references; labels in as many more languages as
    the size needs; an English page where `english`."""
    values = {"id": f"Q{index}", "index": index, "title": f"Entity {index}", "revision": rng.getrandbits(30)}
    values["viaf"] = rng.getrandbits(30)
    for slot in ["c0", "c1", "c2", "c3", "c4", "c5", "x", "t"]:
        values[slot + "h"], values[slot + "g"], values[slot + "r"] = (f"{rng.getrandbits(128):032x}" for _ in range(3))
    values["c0n"] = rng.randrange(1, 1000)
    for i in range(1, 6):
        values[f"c{i}n"] = target() if target else rng.randrange(1, count + 1)
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


def write_wikidata(path: Path, count: int, mean_kb: float, english_share: float, english_ratio: float, rng) -> list:
    """A Wikidata JSON dump of the 822 properties and `count` items (`line_sizes`), the claims of an item with an
    English page pointing at other such items (so that the paper's filters keep a graph); returns the numbers of the
    items with an English page."""
    sizes = list(line_sizes(count, mean_kb, english_share, english_ratio, rng))
    pages = [index for index, (_, english) in enumerate(sizes, 1) if english]
    with open(path, "w", encoding="utf-8") as dump:
        dump.write("[\n")
        for prop in PROPERTIES:
            entity = {
                "type": "property",
                "id": prop,
                "labels": {"en": {"language": "en", "value": f"property {prop}"}},
            }
            dump.write(json.dumps(entity) + ",\n")
        templates = [item_template(["P31", *rng.sample(ITEM_PROPERTIES, 5)]) for _ in range(50)]
        for index, (size, english) in enumerate(sizes, 1):
            target = (lambda: rng.choice(pages)) if english and pages else None
            line = item(index, count, templates, rng, size, english, target)
            dump.write(line + (",\n" if index < count else "\n"))
        dump.write("]\n")
    return pages


def write_extracted_pages(folder: Path, pages: list[int], rng) -> None:
    """Each page of 80 words and 5 links, in WikiExtractor `--json --links` files of 10,000 articles."""
    folder.mkdir(parents=True, exist_ok=True)
    for begin in range(0, len(pages), 10_000):
        with open(folder / f"wiki_{begin // 10_000:05d}", "w", encoding="utf-8") as f:
            for index in pages[begin : begin + 10_000]:
                words = rng.choices(WORDS, k=75)
                links = [f'<a href="Entity%20{rng.choice(pages)}">entity</a>' for _ in range(5)]
                text = f"Entity {index} " + " ".join(words) + " " + " ".join(links)
                article = {"id": str(index), "revid": "1", "url": "", "title": f"Entity {index}", "text": text}
                f.write(json.dumps(article) + "\n")


XML_HEAD = (
    '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">\n<siteinfo>'
    "<sitename>Wikipedia</sitename><dbname>enwiki</dbname><base>https://en.wikipedia.org/wiki/Main_Page</base>"
    "<generator>MediaWiki 1.44</generator><case>first-letter</case><namespaces>"
    '<namespace key="0" case="first-letter" /><namespace key="6" case="first-letter">File</namespace>'
    '<namespace key="10" case="first-letter">Template</namespace>'
    '<namespace key="14" case="first-letter">Category</namespace></namespaces></siteinfo>\n'
)


def page_xml(title: str, page_id: int, wikitext: str | None = None, redirect: str | None = None) -> str:
    """One <page> of a pages-articles dump, as MediaWiki exports it."""
    redirect_tag = f'<redirect title="{html.escape(redirect)}" />' if redirect else ""
    text = html.escape(wikitext if wikitext is not None else f"#REDIRECT [[{redirect}]]")
    return (
        f"<page><title>{html.escape(title)}</title><ns>0</ns><id>{page_id}</id>{redirect_tag}<revision>"
        f"<id>{page_id}0</id><timestamp>2026-11-01T00:00:00Z</timestamp><contributor><username>U</username><id>1"
        "</id></contributor><model>wikitext</model><format>text/x-wiki</format>"
        f'<text bytes="{len(text)}" xml:space="preserve">{text}</text><sha1>x</sha1></revision></page>\n'
    )


BOLD = "'''"
LINKS = (  # a link to page j: direct, through its redirect, lower-case first letter, to a section, with underscores
    "[[Entity {j}]]",
    "[[Alias of entity {j}|the {j}]]",
    "[[entity {j}|entity {j}]]",
    "[[Entity {j}#History|its history]]",
    "[[Entity_{j}|''Entity {j}'']]",
)


def article_wikitext(index: int, pages: list[int], words: int, rng) -> str:
    """A long article: an infobox, a lead, sections with headings, a link every 20 words or so (`LINKS`, each kind
    alike), references, a file and a category."""
    pieces = [f"{{{{Infobox thing|name=Entity {index}|type=synthetic}}}}{BOLD}Entity {index}{BOLD} is"]
    for position in range(words):
        if position and position % 150 == 0:
            pieces.append(f"\n\n== Section {position // 150} ==\n")
        if rng.random() < 0.05:
            pieces.append(rng.choice(LINKS).format(j=rng.choice(pages)))
        else:
            pieces.append(rng.choice(WORDS))
        if position % 60 == 59:
            pieces.append(f".<ref>{{{{cite web|url=https://example.org/{index}/{position}}}}}</ref>")
    pieces.append(f".\n[[File:Entity {index}.jpg|thumb|Entity {index}]]\n[[Category:Synthetic entities]]")
    return " ".join(pieces)


def write_enwiki_xml(path: Path, pages: list[int], mean_words: int, rng, link_targets: list[int] | None = None):
    """A pages-articles XML dump (or one part of it): an article per page (log-normal lengths of mean `mean_words`,
    sigma 1) linking to `link_targets` (default: `pages`), then a redirect page "Alias of entity <i>" for each."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(XML_HEAD)
        for index in pages:
            words = max(20, int(rng.lognormvariate(math.log(mean_words) - 0.5, 1.0)))
            f.write(page_xml(f"Entity {index}", index, article_wikitext(index, link_targets or pages, words, rng)))
        for index in pages:
            f.write(page_xml(f"Alias of entity {index}", 10**9 + index, redirect=f"Entity {index}"))
        f.write("</mediawiki>\n")
