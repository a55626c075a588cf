"""English Wikipedia's own formats, read with the field's libraries: a `pages-articles` XML dump (`mwxml`), its
wikitext as plain text and links (`mwparserfromhell`), MediaWiki's title rules and its redirect pages.

A link resolves as MediaWiki resolves it: HTML entities and percent-escapes decoded, `_` as a space, runs of spaces as
one, the `#section` dropped, the first letter upper case (the `first-letter` case rule of the main namespace), then
through the dump's redirect pages (a chain followed to its end, a cycle to nowhere)."""

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from .common import DAMAGED, DataFormatError, open_binary

# MediaWiki's canonical English namespaces and their aliases, beside those the dump's siteinfo lists; a link into
# any namespace but the main one is no mention
NAMESPACE_ALIASES = {
    "talk", "user", "user talk", "wikipedia", "wikipedia talk", "file", "file talk", "mediawiki", "template",
    "template talk", "help", "category", "category talk", "portal", "draft", "timedtext", "module", "special",
    "media", "image", "wp", "project", "cat", "book",
}  # fmt: skip
# interwiki prefixes (other projects) and language codes (`fr`, `zh-yue`, `simple`): links to other wikis
INTERWIKI = {
    "wikt", "wiktionary", "commons", "wikisource", "s", "wikiquote", "q", "wikibooks", "b", "wikinews", "n",
    "wikiversity", "v", "wikivoyage", "voy", "species", "d", "wikidata", "meta", "m", "mw", "w", "wikipedia",
    "simple", "phab", "foundation", "wmf", "outreach", "incubator",
}  # fmt: skip
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[a-z]+)*")
# tags whose contents are not running text: references, tables, galleries, formulas, code
SKIPPED_TAGS = {"ref", "references", "table", "gallery", "math", "chem", "score", "syntaxhighlight", "source", "pre",
                "timeline", "graph", "templatedata", "imagemap", "mapframe", "nowiki", "noinclude"}  # fmt: skip


def normalise_title(title: str) -> str:
    """A link target or page title as MediaWiki resolves it: entities and percent-escapes decoded, `_` as space, one
    space between words, no `#section`, no leading `:`, the first letter upper case."""
    title = unquote(html.unescape(title)).replace("_", " ").split("#", 1)[0]
    title = " ".join(title.split()).lstrip(":").strip()
    return title[:1].upper() + title[1:]


def link_namespace(target: str, namespaces: frozenset) -> str | None:
    """The namespace or wiki a link target points into, lower case ("category", "fr", "wikt"), or None for an article
    of this wiki's main namespace."""
    if ":" not in target:
        return None
    prefix = " ".join(target.lstrip(":").split(":", 1)[0].replace("_", " ").split()).lower()
    if prefix in namespaces or prefix in NAMESPACE_ALIASES or prefix in INTERWIKI or LANGUAGE_CODE.fullmatch(prefix):
        return prefix
    return None


class Redirects:
    """The dump's redirect pages, {normalised title: normalised target}, followed to the end of a chain."""

    def __init__(self, pairs: dict[str, str] | None = None, max_hops: int = 8):
        self.targets = dict(pairs or {})
        self.max_hops = max_hops

    def resolve(self, title: str) -> str | None:
        """The page a redirect title ends at, or None when `title` is no redirect or its chain loops or runs past
        `max_hops` (MediaWiki follows one hop; dumps hold double redirects that bots fix later)."""
        if title not in self.targets:
            return None
        seen = {title}
        for _ in range(self.max_hops):
            title = self.targets[title]
            if title not in self.targets:
                return title
            if title in seen:
                return None
            seen.add(title)
        return None


@dataclass
class Article:
    """One page of the main namespace: its title, id, plain text and links as (start, end, normalised target) of
    their anchors; for a redirect page, `redirect` is its normalised target and the text is empty."""

    title: str
    page_id: str
    text: str
    links: list[tuple[int, int, str]]
    redirect: str | None = None
    other_links: int = 0  # links into other namespaces (files, categories) and other wikis, not mentions


class _PlainText:
    """mwparserfromhell's node tree -> plain text with the character span and target of each article link."""

    def __init__(self, namespaces: frozenset):
        self.namespaces = namespaces
        self.pieces, self.links, self.length, self.other_links = [], [], 0, 0

    def add(self, text: str) -> None:
        self.pieces.append(text)
        self.length += len(text)

    def walk(self, nodes, in_link: bool = False) -> None:
        import mwparserfromhell.nodes as n

        for node in nodes:
            if isinstance(node, n.Text):
                self.add(str(node))
            elif isinstance(node, n.HTMLEntity):
                self.add(node.normalize())
            elif isinstance(node, n.Wikilink):
                self.wikilink(node, in_link)
            elif isinstance(node, n.ExternalLink):
                if node.title is not None:
                    self.walk(node.title.nodes, in_link=True)
            elif isinstance(node, n.Tag):
                if str(node.tag).lower() not in SKIPPED_TAGS and node.contents is not None:
                    self.walk(node.contents.nodes, in_link)
            elif isinstance(node, n.Heading):
                self.walk(node.title.nodes, in_link)
            # templates, comments and template arguments hold no running text

    def wikilink(self, node, in_link: bool) -> None:
        target = str(node.title).strip()
        if link_namespace(target, self.namespaces) is not None:
            self.other_links += 1  # a file's caption, a category, another wiki: not text of this article
            return
        start, first_piece = self.length, len(self.pieces)
        if node.text is not None:
            self.walk(node.text.nodes, in_link=True)
        else:
            self.add(html.unescape(target.lstrip(":")))
        anchor = "".join(self.pieces[first_piece:])
        title = normalise_title(target)
        if not in_link and anchor.strip() and title:  # the span of the anchor's words, without its outer spaces
            begin = start + len(anchor) - len(anchor.lstrip())
            self.links.append((begin, begin + len(anchor.strip()), title))


def wikitext_to_text(
    wikitext: str, namespaces: frozenset = frozenset()
) -> tuple[str, list[tuple[int, int, str]], int]:
    """Plain text of a page's wikitext, the (start, end, normalised target) of each article link's anchor, and the
    number of links into other namespaces or wikis (left out). Templates, references, tables, comments and the
    markup of bold, italics, lists and headings go; anchors and the text of headings stay; the text's leading and
    trailing white space is stripped."""
    import mwparserfromhell

    walker = _PlainText(namespaces)
    walker.walk(mwparserfromhell.parse(wikitext).nodes)
    raw = "".join(walker.pieces)
    text = raw.strip()
    lead = len(raw) - len(raw.lstrip())
    return text, [(start - lead, end - lead, title) for start, end, title in walker.links], walker.other_links


def dump_articles(path: str | Path) -> Iterator[Article]:
    """The main-namespace pages of a `pages-articles` XML dump (`.xml` or `.xml.bz2`), streamed with `mwxml`: each
    article as plain text with its links, each redirect page with its target. A damaged file or a page without text
    is an error naming the file and the page."""
    import mwxml

    with open_binary(path) as f:
        try:
            dump = mwxml.Dump.from_file(f)
            namespaces = frozenset(ns.name.lower() for ns in dump.site_info.namespaces or () if ns.name)
            for page in dump:
                if page.namespace != 0:
                    for _ in page:  # mwxml reads a page's revisions lazily: skip them
                        pass
                    continue
                revisions = list(page)
                text = revisions[-1].text if revisions else None
                if page.redirect:
                    yield Article(normalise_title(page.title), str(page.id), "", [], normalise_title(page.redirect))
                    continue
                if text is None:
                    raise DataFormatError(f"{path}: page {page.id} ({page.title!r}) has no revision text")
                plain, links, other = wikitext_to_text(text, namespaces)
                yield Article(normalise_title(page.title), str(page.id), plain, links, other_links=other)
        except DataFormatError:
            raise
        except DAMAGED as error:
            raise DataFormatError(f"{path}: the compressed dump is damaged or cut short ({error})") from None
        except Exception as error:  # mwxml raises the XML parser's own errors for a malformed dump
            raise DataFormatError(f"{path}: not a MediaWiki XML dump ({type(error).__name__}: {error})") from None
