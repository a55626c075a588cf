"""Fetch every data set from its public source and write the data folder the builders read (docs/data.md).

    python -m datasets_scripts.download DIR [--only wordnet-3.0 semcor-3.0 fewrel metaqa] [--mirror FOLDER]

Each file is checked against the SHA-256 of the copy this project's results were measured on (`CHECKSUMS`) and
written only when it matches: a changed source stops the command, naming the file. SemCor is converted from its NAF
release (sense keys resolved to synsets through WordNet's `index.sense`, so WordNet comes first); WordNet is taken
from Debian's packages. MetaQA's `kb.txt` is the exception: the file CI uses was rebuilt from sources that are no
longer published, so the official `kb.txt` is fetched instead and its digest printed, not checked.

`--mirror FOLDER` reads `https://<host>/<path>` from `FOLDER/<host>/<path>`: a local copy of the sources, for
machines without internet (and for the tests).
"""

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DEBIAN_POOL = "https://deb.debian.org/debian/pool/main/w/wordnet"
WSD_CORPORA = "https://github.com/rubenIzquierdo/wsd_corpora/archive/c31b9b8eb6d6ca726b6868f19123aaf7e5eb1d88.tar.gz"
FEWREL = "https://github.com/thunlp/FewRel/raw/278a231/data"
METAQA_QUESTIONS = "https://github.com/vaijsc/keallm/raw/cf68f91/data/MetaQA"
METAQA_KB = "https://github.com/vaijsc/keallm/raw/f9d819d44924492d3b7993b417396e175a268fab/data/MetaQA"

WORDNET_FILES = [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")]
WORDNET_FILES += ["index.sense", "lexnames"]
METAQA_FILES = [f"{hops}-hop/{name}" for hops in (1, 2) for name in ("dev.txt", "test.txt")]
METAQA_FILES += [f"{hops}-hop/qa_{split}_qtype.txt" for hops in (1, 2) for split in ("dev", "test")]

# SHA-256 of each file of the data folder the results were measured on (of the uncompressed text for ".gz" files,
# whose gzip header holds a time). None: fetched and reported, not checked (the module docstring says why).
CHECKSUMS = {
    "wordnet-3.0/data.noun": "fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2",
    "wordnet-3.0/data.verb": "adcf43e35b581e8036d8b5a52d63d9cd3d3b4870b2720d3c03c799df44777bc2",
    "wordnet-3.0/data.adj": "c89120dfc1f046ddff4a631bf9b7e9fa1a36b5e86565a23bf82dbe14f30b88a7",
    "wordnet-3.0/data.adv": "444a63bf3955080ab7524f5079cfc07ff9bc682cb98bdb1db73b0fb9829f1139",
    "wordnet-3.0/index.noun": "a490d99d93d017bf4822fe2f0ffa51fd73911ce271dc7535fade21f8814b5a04",
    "wordnet-3.0/index.verb": "e2ac24816c3a8289dcb72aaa9cf8db81fdf25ec34d792bfc96ac5b7a20c8b4ae",
    "wordnet-3.0/index.adj": "c9865d7b4d1f805bdef82ccdcea5282436e23083e6f6f1b33e716327c4eda810",
    "wordnet-3.0/index.adv": "6f5465ed5758fe9c8a2f7ec17b1300f3aa875756c70ff7cba162f7e71bcf88ea",
    "wordnet-3.0/index.sense": "ce997000ec806318ff1dfadf77d314ac527358e127d7bbe3d1f4e83a1c5c1c2b",
    "wordnet-3.0/lexnames": "c871b6797d2109f563f7a162b64e8ebf18f6f42d00918572846034c7f393a214",
    "semcor-3.0/semcor3.0.sentences.jsonl.gz": "107b521fd69f997ef6c2845fe3574833012b568b69e56fbad1d1b31f955e714b",
    "fewrel/val_wiki.json": "76bb44c2485b6faed358a3ce040eadafcc8a8835245cd7e6afc1bef672d4a0bf",
    "fewrel/pid2name.json": "eeedd25512a8e4c2bc06b78009836d27de81807bcba6ed929debd5cd713c07ea",
    "metaqa/1-hop/dev.txt": "3c68fa73a14d9b9616e49f08e2d8b65e024af417708306874fe4d398634620d3",
    "metaqa/1-hop/test.txt": "c57e9c2c4c05e5eec4503460042c09bfa3e80ea1a5ecaf361c92dd81d6c7bece",
    "metaqa/2-hop/dev.txt": "a713ae6b4a7cdccfdda57ac99092f4114a1f8b0c4ba51b4466a15496a4ff6fbd",
    "metaqa/2-hop/test.txt": "b1c4f1ad77f34a27e0e5a13c08b436c6f4c9a49dccd8d43639a569ee5cd906a1",
    "metaqa/1-hop/qa_dev_qtype.txt": "43c660806c1ba17ead85a34a60b39c8cd965db943a801355963974f9e122d3b8",
    "metaqa/1-hop/qa_test_qtype.txt": "6390ded9d7b7e56f95af96429b38e98ee14c5a617963dc69f396c8cc4f6ff64d",
    "metaqa/2-hop/qa_dev_qtype.txt": "e3936971b096954cfa965f5b8747fe4fa5b3b762f9fe63796d33df0f291ddfdd",
    "metaqa/2-hop/qa_test_qtype.txt": "660b87183f3d21f3f64eaa5bcd12036124662e518a3958b5c47389a11e980210",
    "metaqa/relation2text.txt": "8fa46d08e2f0d98c703093f69261911d34c18df40ae7134ab76f2f338b2fe7e7",
    "metaqa/kb.txt": None,
}
SENSE_KEY_POS = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "s"}  # a sense key's ss_type (senseidx(5))


class DownloadError(RuntimeError):
    """A source could not be fetched, read or converted, or does not match its checksum."""


@dataclass
class Fetcher:
    """Reads URLs, from the internet or from a local mirror laid out as `<mirror>/<host>/<path>`."""

    mirror: Path | None = None

    def __call__(self, url: str) -> bytes:
        if self.mirror is not None:
            parts = urllib.parse.urlsplit(url)
            url = (self.mirror / parts.netloc / parts.path.lstrip("/")).resolve().as_uri()
        print(f"fetching {url}", file=sys.stderr)
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                return response.read()
        except (urllib.error.URLError, OSError) as error:
            raise DownloadError(f"could not fetch {url}: {error}") from None


def debian_members(package: bytes, url: str) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every file a Debian package installs: a .deb is an `ar` archive holding data.tar.*."""
    if not package.startswith(b"!<arch>\n"):
        raise DownloadError(f"{url} is not a Debian package (no ar header)")
    position = 8
    while position + 60 <= len(package):
        try:
            name = package[position : position + 16].decode("ascii").strip().rstrip("/")
            size = int(package[position + 48 : position + 58].decode("ascii").strip())
        except ValueError as error:  # UnicodeDecodeError is one
            raise DownloadError(f"{url}: a damaged ar member header at byte {position} ({error})") from None
        content = package[position + 60 : position + 60 + size]
        if len(content) < size:
            raise DownloadError(f"{url}: member {name} is cut short ({len(content)} of {size} bytes)")
        position += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            try:
                with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as archive:
                    files = [(m.name.removeprefix("./"), archive.extractfile(m).read()) for m in archive if m.isfile()]
            except (tarfile.TarError, EOFError, OSError) as error:
                raise DownloadError(f"{url}: its {name} does not unpack ({type(error).__name__})") from None
            yield from files
            return
    raise DownloadError(f"{url} holds no data.tar member")


def fetch_wordnet(fetch: Fetcher, out: Path) -> dict[str, bytes]:
    files = {}
    for package in ("wordnet-base_3.0-37_all.deb", "wordnet-sense-index_3.0-37_all.deb"):
        url = f"{DEBIAN_POOL}/{package}"
        for path, content in debian_members(fetch(url), url):
            name = path.removeprefix("usr/share/wordnet/")
            if name in WORDNET_FILES:
                files[f"wordnet-3.0/{name}"] = content
    return files


def read_sense_synsets(index_sense: bytes) -> dict[str, str]:
    """{sense key: "<offset>-<pos letter>"} from WordNet's `index.sense` (senseidx(5))."""
    synsets = {}
    for line in index_sense.decode().splitlines():
        key, offset = line.split()[:2]
        synsets[key] = f"{offset}-{SENSE_KEY_POS[key.split('%')[1][0]]}"
    return synsets


def naf_sentences(document: str, naf: bytes, synsets: dict[str, str]) -> Iterator[dict]:
    """SemCor's sentences from one NAF file: tokens by `sent`, and each term with a WordNet `lexical_key` as
    [token index in its sentence, lemma, POS, sense key, synset or None where index.sense lacks the key]."""
    root = ElementTree.fromstring(naf)
    where = {}  # word form id -> (sentence, index in it)
    sentences = {}
    for word in root.iter("wf"):
        tokens = sentences.setdefault(int(word.get("sent")), [])
        where[word.get("id")] = (int(word.get("sent")), len(tokens))
        tokens.append(word.text)
    senses = {sentence: [] for sentence in sentences}
    for term in root.iter("term"):
        keys = [ref.get("reference") for ref in term.iter("externalRef") if ref.get("reftype") == "lexical_key"]
        if not keys:
            continue
        sentence, index = where[term.find("span/target").get("id")]
        key = f"{term.get('lemma')}%{keys[0]}"
        senses[sentence].append([index, term.get("lemma"), term.get("pos"), key, synsets.get(key)])
    for sentence, tokens in sentences.items():
        yield {"doc": document, "sent": sentence, "tokens": tokens, "senses": senses[sentence]}


def fetch_semcor(fetch: Fetcher, out: Path) -> dict[str, bytes]:
    index_sense = out / "wordnet-3.0" / "index.sense"
    if not index_sense.is_file():
        raise DownloadError(f"SemCor's senses are resolved through WordNet: {index_sense} is missing (fetch wordnet)")
    synsets = read_sense_synsets(index_sense.read_bytes())
    lines = []
    with tarfile.open(fileobj=io.BytesIO(fetch(WSD_CORPORA)), mode="r:*") as archive:
        members = sorted(
            (m for m in archive if m.isfile() and "/semcor3.0/brown" in m.name and m.name.endswith(".naf")),
            key=lambda m: m.name,
        )
        if not members:
            raise DownloadError(f"{WSD_CORPORA} holds no semcor3.0/brown*/*.naf files")
        for member in members:
            document = "/".join(Path(member.name).with_suffix("").parts[-2:])  # brown1/br-a01
            naf = archive.extractfile(member).read()
            try:
                lines += [json.dumps(sentence) for sentence in naf_sentences(document, naf, synsets)]
            except (ElementTree.ParseError, AttributeError, KeyError, TypeError, ValueError) as error:
                raise DownloadError(f"{WSD_CORPORA}: {member.name} is not SemCor NAF ({error})") from None
    text = "".join(line + "\n" for line in lines).encode()
    return {"semcor-3.0/semcor3.0.sentences.jsonl.gz": text}


def fetch_fewrel(fetch: Fetcher, out: Path) -> dict[str, bytes]:
    return {f"fewrel/{name}": fetch(f"{FEWREL}/{name}") for name in ("val_wiki.json", "pid2name.json")}


def fetch_metaqa(fetch: Fetcher, out: Path) -> dict[str, bytes]:
    files = {f"metaqa/{name}": fetch(f"{METAQA_QUESTIONS}/{name}") for name in METAQA_FILES}
    for name in ("relation2text.txt", "kb.txt"):
        files[f"metaqa/{name}"] = fetch(f"{METAQA_KB}/{name}")
    return files


# In this order: SemCor's conversion reads the WordNet just written.
SOURCES: dict[str, Callable[[Fetcher, Path], dict[str, bytes]]] = {
    "wordnet-3.0": fetch_wordnet,
    "semcor-3.0": fetch_semcor,
    "fewrel": fetch_fewrel,
    "metaqa": fetch_metaqa,
}


def write_checked(out: Path, files: dict[str, bytes], folder: str) -> None:
    """Check every expected file of `folder` against CHECKSUMS, then write them all (gzip for ".gz" names)."""
    expected = sorted(path for path in CHECKSUMS if path.startswith(folder + "/"))
    missing = [path for path in expected if path not in files]
    if missing:
        raise DownloadError(f"{folder}: the sources lack {', '.join(missing)}")
    for path in expected:
        digest = hashlib.sha256(files[path]).hexdigest()
        if CHECKSUMS[path] is None:
            print(f"{path}: sha256 {digest} (not checked: see datasets_scripts/download.py)", file=sys.stderr)
        elif digest != CHECKSUMS[path]:
            raise DownloadError(
                f"{path}: sha256 {digest} differs from the expected {CHECKSUMS[path]}; nothing written"
            )
    for path in expected:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as temporary:
            temporary.write(gzip.compress(files[path], mtime=0) if path.endswith(".gz") else files[path])
        Path(temporary.name).replace(target)


def download(out, only=tuple(SOURCES), mirror=None) -> None:
    """Fetch, check and write the folders `only` of the data folder `out`."""
    unknown = sorted(set(only) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown data folders {unknown}; choose from {list(SOURCES)}")
    out = Path(out)
    fetch = Fetcher(Path(mirror) if mirror else None)
    for folder in (name for name in SOURCES if name in only):
        write_checked(out, SOURCES[folder](fetch, out), folder)
        print(f"{out / folder}: written and checked", file=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the data folder to write ($JAKET_DATA_DIR, --data_dir)")
    parser.add_argument("--only", nargs="+", default=list(SOURCES), choices=list(SOURCES), help="folders to fetch")
    parser.add_argument("--mirror", type=Path, help="read https://<host>/<path> from MIRROR/<host>/<path>")
    args = parser.parse_args(argv)
    try:
        download(args.out, args.only, args.mirror)
    except DownloadError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
