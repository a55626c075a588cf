"""WordNet 3.0 as a knowledge graph, and SemCor 3.0 (or WordNet's own gloss examples) as text linked to it: the
embedded default, small enough for one CPU, runnable after `apt-get install wordnet-base`.

Configs:
- `entities`: one row per synset: id (`<offset>-<pos>`), name (first lemma), description (lemmas and gloss),
  category (its lexicographer file, one of 45), part (`pretrain` or `heldout`).
- `relations`: one row per pointer type, with a readable description.
- `triples`: (head synset, pointer, tail synset), distinct.
- `text`: sentences with mention spans linked to synsets: SemCor's sense annotations when its file is present,
  otherwise the quoted usage examples inside WordNet's glosses, each linked to its own synset. Each mention also
  carries its lemma (SemCor's, or the gloss lemma found), which names the word's senses for disambiguation. Mentions
  of held-out synsets are removed (and counted), so that those entities never appear in pre-training.

`datasets_scripts.load("wordnet_semcor", data_dir)` returns the three KG configs as one `DatasetDict`;
`load("wordnet_semcor", data_dir, config_name="text")` the text.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow as pa

from .common import (
    RELATION_FEATURES,
    TRIPLE_FEATURES,
    DropCounter,
    SourceConfig,
    entity_features,
    format_error,
    logger,
    parse_json_line,
    read_lines,
)
from .metadata import SEMCOR_CITATION, WORDNET_CITATION, WORDNET_LICENSE
from .wordnet import POINTERS, WORDNET_URL, find_wordnet, read_lexnames, read_wordnet, split_heldout

SEMCOR_URL = "https://github.com/rubenIzquierdo/wsd_corpora/tree/master/semcor3.0"
SEMCOR_FILE = Path("semcor-3.0") / "semcor3.0.sentences.jsonl.gz"
# The shared linked-text schema, with each mention's lemma (the key into WordNet's sense index).
LEMMA_TEXT_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "mentions": datasets.List(
            {
                "start": datasets.Value("int32"),
                "end": datasets.Value("int32"),
                "entity": datasets.Value("string"),
                "lemma": datasets.Value("string"),
            }
        ),
    }
)


# Names the prepared cache: a change of what the builder writes bumps it. 1.1.0: mention lemmas.
BUILDER_VERSION = datasets.Version("1.1.0")


@dataclass
class WordNetSemcorConfig(SourceConfig):
    """heldout_fraction / split_seed: the reproducible held-out part of the KG (see `wordnet.split_heldout`).
    semcor_file: SemCor's sentences (JSON lines); by default `<data_dir>/semcor-3.0/semcor3.0.sentences.jsonl.gz`
    when it exists, else the gloss examples are used."""

    heldout_fraction: float = 0.1
    split_seed: int = 0
    semcor_file: str | None = None


class WordNetSemcor(datasets.ArrowBasedBuilder):
    """WordNet 3.0 (https://wordnetcode.princeton.edu/3.0/WNdb-3.0.tar.gz) and SemCor 3.0
    (https://github.com/rubenIzquierdo/wsd_corpora/tree/master/semcor3.0)."""

    VERSION = BUILDER_VERSION
    BUILDER_CONFIG_CLASS = WordNetSemcorConfig
    BUILDER_CONFIGS = [
        WordNetSemcorConfig(name=n, version=BUILDER_VERSION) for n in ("entities", "relations", "triples", "text")
    ]
    DEFAULT_CONFIG_NAME = "entities"

    def _info(self):
        features = {
            "entities": lambda: entity_features(read_lexnames(find_wordnet(self.config.data_dir))),
            "relations": lambda: RELATION_FEATURES,
            "triples": lambda: TRIPLE_FEATURES,
            "text": lambda: LEMMA_TEXT_FEATURES,
        }[self.config.name]()
        return datasets.DatasetInfo(
            description=__doc__,
            features=features,
            citation=WORDNET_CITATION + "\n" + SEMCOR_CITATION,
            license=WORDNET_LICENSE,
            homepage=WORDNET_URL,
        )

    def _semcor_path(self) -> Path | None:
        if self.config.semcor_file:
            path = Path(self.config.semcor_file)
            if not path.is_file():
                raise FileNotFoundError(f"wordnet_semcor: semcor_file {path} does not exist (see {SEMCOR_URL})")
            return path
        if self.config.data_dir and (Path(self.config.data_dir) / SEMCOR_FILE).is_file():
            return Path(self.config.data_dir) / SEMCOR_FILE
        return None

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN)]

    def _generate_tables(self):
        # one Arrow table per config: datasets' encoding of 520k examples one by one took 2/3 of the preparation
        rows = [row for _, row in self._rows()]
        yield 0, pa.Table.from_pylist(rows, schema=self.info.features.arrow_schema)

    def _rows(self):
        wordnet = read_wordnet(find_wordnet(self.config.data_dir))
        if self.config.name in ("entities", "text"):
            heldout = split_heldout(wordnet, self.config.heldout_fraction, self.config.split_seed)
        if self.config.name == "entities":
            for i, synset in enumerate(wordnet.synsets):
                part = "heldout" if heldout[i] else "pretrain"
                yield (
                    i,
                    {
                        "id": synset.id,
                        "name": synset.name,
                        "description": synset.description,
                        "category": synset.category,
                        "part": part,
                        "aliases": synset.lemmas[1:],
                    },
                )
        elif self.config.name == "relations":
            for symbol, (name, description) in POINTERS.items():
                yield symbol, {"id": symbol, "name": name, "description": description}
        elif self.config.name == "triples":
            for i, (head, symbol, tail) in enumerate(wordnet.triples):
                yield i, {"head": wordnet.synsets[head].id, "relation": symbol, "tail": wordnet.synsets[tail].id}
        else:
            semcor = self._semcor_path()
            sentences = _semcor_sentences(semcor, wordnet) if semcor else _gloss_examples(wordnet)
            yield from _without_heldout(sentences, wordnet, heldout, str(semcor or "WordNet gloss examples"))


def _without_heldout(sentences, wordnet, heldout, source):
    removed = 0
    for key, sentence in sentences:
        mentions = [m for m in sentence["mentions"] if not heldout[wordnet.index[m["entity"]]]]
        removed += len(sentence["mentions"]) - len(mentions)
        yield key, {**sentence, "mentions": mentions}
    logger.warning(f"{source}: removed {removed} mentions of held-out synsets, which pre-training must not see")


def _semcor_sentences(path: Path, wordnet):
    """SemCor's sentences: tokens joined by spaces (multi-word tokens' `_` read as spaces), a mention per sense
    annotation that resolves to a synset."""
    drops = DropCounter(str(path))
    unresolved, first_line = 0, {}
    for number, line in read_lines(path):
        record = parse_json_line(path, number, line)
        try:
            tokens, senses = record["tokens"], record["senses"]
            key = f"{record['doc']}/{record['sent']}"
        except (KeyError, TypeError) as error:
            raise format_error(path, number, f"not a SemCor sentence record ({error})") from None
        if key in first_line:  # one of the two would have been dropped, or both kept under one id
            raise format_error(path, number, f"sentence {key} was given before, on line {first_line[key]}")
        first_line[key] = number
        words = [token.replace("_", " ") for token in tokens]
        starts, position = [], 0
        for word in words:
            starts.append(position)
            position += len(word) + 1
        mentions = []
        for sense in senses:
            if (
                not isinstance(sense, list)
                or len(sense) != 5
                or not isinstance(sense[0], int)
                or not 0 <= sense[0] < len(words)
            ):
                raise format_error(path, number, f"sense {sense!r} is not [token index, lemma, POS, key, synset]")
            if sense[4] is None:
                unresolved += 1
                continue
            synset = wordnet.lookup(sense[4])
            if drops.keep(synset is not None):
                index = sense[0]
                entity = wordnet.synsets[synset].id
                mentions.append(
                    {
                        "start": starts[index],
                        "end": starts[index] + len(words[index]),
                        "entity": entity,
                        "lemma": str(sense[1]),
                    }
                )
        yield key, {"id": key, "text": " ".join(words), "mentions": mentions}
    drops.report()
    logger.warning(f"{path}: skipped {unresolved} sense annotations that SemCor leaves without a synset")


def _gloss_examples(wordnet):
    """Each quoted usage example of a gloss, with a mention of its own synset where one of the synset's lemmas
    starts a word (the mention runs to the end of that word, so "barked" is found for "bark")."""
    for synset in wordnet.synsets:
        for j, example in enumerate(synset.examples):
            mentions = []
            for lemma in synset.lemmas:
                match = re.search(rf"\b{re.escape(lemma)}\w*", example, re.IGNORECASE)
                if match:
                    mentions = [{"start": match.start(), "end": match.end(), "entity": synset.id, "lemma": lemma}]
                    break
            if example:
                yield f"{synset.id}/{j}", {"id": f"{synset.id}/{j}", "text": example, "mentions": mentions}
