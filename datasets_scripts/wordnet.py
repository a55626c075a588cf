"""Reading Princeton WordNet 3.0 (WNDB format, `wndb(5)`) into a knowledge graph, and splitting it reproducibly into
a pre-training part and a held-out part for the unseen-KG task."""

import functools
import os
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .common import DataFormatError, format_error, read_lines

WORDNET_URL = "https://wordnetcode.princeton.edu/3.0/WNdb-3.0.tar.gz"
DATA_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
INDEX_FILES = {"n": "index.noun", "v": "index.verb", "a": "index.adj", "r": "index.adv"}
# Where WordNet lives when no data_dir is given: Debian's `wordnet-base` package, then NLTK's data folders.
SYSTEM_LOCATIONS = ("/usr/share/wordnet", "~/nltk_data/corpora/wordnet", "/usr/share/nltk_data/corpora/wordnet")

# Pointer symbols (wninput(5)) and a readable description each; the description is what LM1 encodes.
POINTERS = {
    "!": ("antonym", "antonym: is the opposite of"),
    "@": ("hypernym", "hypernym: is a kind of"),
    "@i": ("instance hypernym", "instance hypernym: is an instance of"),
    "~": ("hyponym", "hyponym: has as a kind"),
    "~i": ("instance hyponym", "instance hyponym: has as an instance"),
    "#m": ("member holonym", "member holonym: is a member of"),
    "#s": ("substance holonym", "substance holonym: is a substance of"),
    "#p": ("part holonym", "part holonym: is a part of"),
    "%m": ("member meronym", "member meronym: has as a member"),
    "%s": ("substance meronym", "substance meronym: has as a substance"),
    "%p": ("part meronym", "part meronym: has as a part"),
    "=": ("attribute", "attribute: is a value of, or has as values, the attribute"),
    "+": ("derivationally related form", "derivationally related form: is derived from the same word as"),
    ";c": ("domain topic", "domain topic: belongs to the topic domain"),
    "-c": ("member of domain topic", "member of domain topic: is the topic domain of"),
    ";r": ("domain region", "domain region: belongs to the region domain"),
    "-r": ("member of domain region", "member of domain region: is the region domain of"),
    ";u": ("domain usage", "domain usage: belongs to the usage domain"),
    "-u": ("member of domain usage", "member of domain usage: is the usage domain of"),
    "*": ("entailment", "entailment: entails doing"),
    ">": ("cause", "cause: causes"),
    "^": ("also see", "also see: is related to"),
    "$": ("verb group", "verb group: is similar in meaning to the verb"),
    "&": ("similar to", "similar to: is similar in meaning to the adjective"),
    "<": ("participle", "participle: is the participle of the verb"),
    "\\": ("pertainym", "pertainym: pertains to, or is derived from"),
}


@dataclass
class Synset:
    id: str  # "<8-digit offset>-<ss_type>", as SemCor writes it ("s" for adjective satellites)
    lemmas: list[str]
    gloss: str
    category: int  # lexicographer file number, an index into `lexnames`

    @property
    def name(self) -> str:
        return self.lemmas[0]

    @property
    def description(self) -> str:
        """Lemmas, then the gloss: the entity's name opens its own description, as a Wikipedia page's does."""
        return f"{', '.join(self.lemmas)}: {self.gloss}"

    @property
    def examples(self) -> list[str]:
        """The quoted usage examples of the gloss."""
        return [part.strip().strip('"') for part in self.gloss.split(";") if part.strip().startswith('"')]


@dataclass
class WordNet:
    synsets: list[Synset]
    triples: list[tuple[int, str, int]]  # (head synset index, pointer symbol, tail synset index), distinct
    lexnames: list[str]
    index: dict[str, int]  # synset id -> index

    def lookup(self, synset_id: str) -> int | None:
        """Index of a synset id; satellites ("-s") and heads ("-a") are the same synsets in pointer fields."""
        found = self.index.get(synset_id)
        if found is None and synset_id.endswith("-a"):
            found = self.index.get(synset_id[:-1] + "s")
        return found


def find_wordnet(data_dir: str | os.PathLike | None) -> Path:
    """The folder holding `data.noun` etc.: `data_dir` itself or its `wordnet-3.0/`, else a system location."""
    candidates = [Path(data_dir), Path(data_dir) / "wordnet-3.0"] if data_dir else []
    candidates += [Path(os.path.expanduser(p)) for p in SYSTEM_LOCATIONS] if not data_dir else []
    for folder in candidates:
        if all((folder / name).is_file() for name in (*DATA_FILES.values(), "lexnames")):
            return folder
    where = str(data_dir) if data_dir else ", ".join(SYSTEM_LOCATIONS)
    raise FileNotFoundError(
        f"wordnet: no WordNet 3.0 database under {where}. Fetch it with `python -m datasets_scripts.download DIR "
        "--only wordnet-3.0` and pass data_dir=DIR, install it (`apt-get install wordnet-base`), or download "
        f"{WORDNET_URL} and pass data_dir=<folder with {', '.join(DATA_FILES.values())} and lexnames>"
    )


def read_lexnames(folder: Path) -> list[str]:
    """WordNet's 45 lexicographer file names (the entity categories), without reading the synsets."""
    return _parse_lexnames(folder / "lexnames")


def _parse_lexnames(path: Path) -> list[str]:
    names = []
    for number, line in read_lines(path):
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or int(fields[0]) != len(names):
            raise format_error(path, number, f"expected '<number> <lexname> <pos>' numbered in order, got {line!r}")
        names.append(fields[1])
    return names


def _parse_data_file(path: Path, pos_letter: str, num_categories: int):
    """Yield (synset, [(pointer, target offset, target pos)]) for each synset line of one WNDB data file."""
    for number, line in read_lines(path):
        if line.startswith("  "):  # the license header
            continue
        head, separator, gloss = line.partition(" | ")
        fields = head.split()
        try:
            offset, category, ss_type = fields[0], int(fields[1]), fields[2]
            word_count = int(fields[3], 16)
            lemmas = [w.replace("_", " ") for w in fields[4 : 4 + 2 * word_count : 2]]
            pointer_count = int(fields[4 + 2 * word_count])
            pointer_fields = fields[5 + 2 * word_count : 5 + 2 * word_count + 4 * pointer_count]
        except (IndexError, ValueError) as error:
            raise format_error(path, number, f"not a WNDB synset line ({error})") from None
        if not separator or len(offset) != 8 or len(pointer_fields) != 4 * pointer_count or len(lemmas) != word_count:
            raise format_error(path, number, "not a WNDB synset line (fields missing or no ' | ' before the gloss)")
        if ss_type not in (pos_letter, "s") or not 0 <= category < num_categories:
            raise format_error(
                path, number, f"synset type {ss_type!r} / lexicographer file {category} do not fit {path.name}"
            )
        pointers = [
            (pointer_fields[i], pointer_fields[i + 1], pointer_fields[i + 2]) for i in range(0, len(pointer_fields), 4)
        ]
        for symbol, _, _ in pointers:
            if symbol not in POINTERS:
                raise format_error(path, number, f"unknown pointer symbol {symbol!r}")
        yield Synset(f"{offset}-{ss_type}", lemmas, gloss.strip(), category), pointers


@functools.lru_cache(maxsize=4)
def read_wordnet(folder: Path) -> WordNet:
    """Parse a WNDB folder into synsets and distinct (head, pointer, tail) triples."""
    lexnames = read_lexnames(folder)
    synsets, pending = [], []
    for pos_letter, file_name in DATA_FILES.items():
        for synset, pointers in _parse_data_file(folder / file_name, pos_letter, len(lexnames)):
            pending.append((len(synsets), folder / file_name, pointers))
            synsets.append(synset)
    index = {synset.id: i for i, synset in enumerate(synsets)}
    if len(index) != len(synsets):
        raise DataFormatError(f"{folder}: duplicate synset offsets")
    wordnet = WordNet(synsets, [], lexnames, index)
    triples = set()
    for head, path, pointers in pending:
        for symbol, offset, pos in pointers:
            tail = wordnet.lookup(f"{offset}-{pos}")
            if tail is None:
                raise DataFormatError(
                    f"{path}: synset {synsets[head].id} points ({symbol}) at unknown synset {offset}-{pos}"
                )
            triples.add((head, symbol, tail))
    wordnet.triples = sorted(triples)
    return wordnet


def _read_synset_ids(folder: Path) -> dict[str, str]:
    """{"<offset>-<pos letter>": synset id} from the data files' first fields only (a tenth of `read_wordnet`'s time):
    an adjective satellite's id ends in "-s" where index files name it "-a"."""
    ids = {}
    for pos_letter, file_name in DATA_FILES.items():
        for number, line in read_lines(folder / file_name):
            if line.startswith("  "):  # the license header
                continue
            fields = line.split(" ", 3)
            if len(fields) < 4 or len(fields[0]) != 8 or fields[2] not in (pos_letter, "s"):
                raise format_error(folder / file_name, number, "not a WNDB synset line")
            ids[f"{fields[0]}-{pos_letter}"] = f"{fields[0]}-{fields[2]}"
    return ids


@functools.lru_cache(maxsize=4)
def read_sense_index(folder: Path) -> dict[tuple[str, str], list[str]]:
    """WordNet's senses of each word: {(lemma, pos letter): synset ids, most frequent sense first}, from the
    `index.<pos>` files (`wndb(5)`: lemma, pos, synset_cnt, p_cnt, p_cnt pointer symbols, sense_cnt, tagsense_cnt,
    then synset_cnt offsets in sense order). Lemmas are lower case with `_` between words; adjective senses are
    under "a", satellites included, and named by their ids in the data files ("-a" or "-s")."""
    synset_ids = _read_synset_ids(folder)
    senses = {}
    for pos, file_name in INDEX_FILES.items():
        path = folder / file_name
        if not path.is_file():
            raise FileNotFoundError(
                f"wordnet: no {path}; the sense index comes with the WordNet 3.0 database ({WORDNET_URL})"
            )
        for number, line in read_lines(path):
            if line.startswith("  "):  # the license header
                continue
            fields = line.split()
            try:
                synset_count, pointer_count = int(fields[2]), int(fields[3])
                offsets = fields[6 + pointer_count :]
            except (IndexError, ValueError) as error:
                raise format_error(path, number, f"not a WNDB index line ({error})") from None
            if fields[1] != pos or len(offsets) != synset_count:
                raise format_error(path, number, f"expected pos {pos!r} and {synset_count} synset offsets")
            ids = []
            for offset in offsets:
                found = synset_ids.get(f"{offset}-{pos}")
                if found is None:
                    raise format_error(path, number, f"sense {offset}-{pos} of {fields[0]!r} is no synset")
                ids.append(found)
            senses[(fields[0], pos)] = ids
    return senses


def split_heldout(wordnet: WordNet, heldout_fraction: float, seed: int, num_regions: int = 100) -> list[bool]:
    """Mark a held-out part of about `heldout_fraction` of the synsets, grown breadth-first (over pointers in either
    direction) from `num_regions` random synsets, so that the held-out graph keeps its internal edges. Seeded."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    count = len(wordnet.synsets)
    neighbours = [[] for _ in range(count)]
    for head, _, tail in wordnet.triples:
        neighbours[head].append(tail)
        neighbours[tail].append(head)
    rng = random.Random(seed)
    target = round(heldout_fraction * count)
    heldout = [False] * count
    queue, taken = deque(), 0
    while taken < target:
        if not queue:  # start (or restart, when a region is exhausted) from a random synset
            for _ in range(num_regions):
                start = rng.randrange(count)
                if not heldout[start]:
                    queue.append(start)
            continue
        synset = queue.popleft()
        if heldout[synset]:
            continue
        heldout[synset] = True
        taken += 1
        rng.shuffle(neighbours[synset])
        queue.extend(n for n in neighbours[synset] if not heldout[n])
    return heldout
