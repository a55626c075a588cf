"""MetaQA (https://github.com/yuyuz/MetaQA): questions over a movie knowledge base, answered by 1 or 2 hops.

Configs:
- `entities`, `relations`, `triples`: the KB. An entity's description is one question (from the `validation`
  files, never `test`) that mentions it, as the paper does; an entity no such question mentions is described by
  its name alone (never by a triple: the memory would then hold an answer's edge). Categories are the entity's role
  in the KB (movie, person, year, ...). With `kg_setting="half"` each triple is dropped with probability 0.5
  (seeded): the paper's KG-50%.
- `1-hop`, `2-hop`, `3-hop`, and any `k-hop` whose folder `k-hop/` is in the data directory: the vanilla
  questions, splits `validation` (train on it: no training questions are available) and `test`. Each has its topic
  entity (from the brackets) as a mention, its answers, its candidates (every entity within k hops of the topic in
  the chosen KG, either direction, topic excluded, as row indices into the `entities` config), and `reachable`
  (some answer is a candidate).

Descriptions are sampled from the `dev` questions of every `k-hop/` folder present.
"""

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import datasets

from .common import (
    MENTION_FEATURE,
    RELATION_FEATURES,
    TRIPLE_FEATURES,
    DropCounter,
    SourceConfig,
    entity_features,
    format_error,
    locate,
    logger,
    read_lines,
)
from .metadata import METAQA_CITATION, METAQA_LICENSE

URL = "https://github.com/yuyuz/MetaQA"
KB_FILES = {"kb": "kb.txt", "relation_text": "relation2text.txt"}
SPLITS = {"validation": "dev", "test": "test"}
CATEGORIES = ["movie", "person", "year", "language", "tag", "genre", "votes", "rating"]
TAIL_CATEGORY = {
    "directed_by": "person",
    "written_by": "person",
    "starred_actors": "person",
    "release_year": "year",
    "in_language": "language",
    "has_tags": "tag",
    "has_genre": "genre",
    "has_imdb_votes": "votes",
    "has_imdb_rating": "rating",
}
TOPIC = re.compile(r"\[([^\]]+)\]")
HOPS_NAME = re.compile(r"^([0-9]+)-hop$")


def question_files(hops: int) -> dict[str, str]:
    """{key: path relative to the data directory} of the k-hop question files, keys `<split>` and `<split>-qtype`."""
    return {
        **{split: f"{hops}-hop/{split}.txt" for split in SPLITS.values()},
        **{f"{split}-qtype": f"{hops}-hop/qa_{split}_qtype.txt" for split in SPLITS.values()},
    }


def hops_present(data_dir) -> list[int]:
    """The k of every `k-hop/` folder under `data_dir`, in order."""
    if not data_dir or not Path(data_dir).is_dir():
        return []
    return sorted(int(m.group(1)) for p in Path(data_dir).iterdir() if p.is_dir() and (m := HOPS_NAME.match(p.name)))


def parse_config_name(name: str) -> tuple[str, dict]:
    """Any `k-hop` name: (a config it builds on, the fields that make it so)."""
    match = HOPS_NAME.match(name)
    if match is None or name in NAMED_HOPS:
        return name, {}
    return "1-hop", {"hops": int(match.group(1))}


# Names the prepared cache: a change of what the builder writes bumps it. 1.1.0: no description states a triple.
BUILDER_VERSION = datasets.Version("1.1.0")


@dataclass
class MetaQAConfig(SourceConfig):
    kg_setting: str = "full"
    seed: int = 0
    hops: int = 0  # the question configs' k; 0 for the KB configs


NAMED_HOPS = ("1-hop", "2-hop", "3-hop")


class MetaQA(datasets.GeneratorBasedBuilder):
    """MetaQA vanilla 1-hop and 2-hop questions and its movie KB, https://github.com/yuyuz/MetaQA (CC BY 3.0)."""

    VERSION = BUILDER_VERSION
    BUILDER_CONFIG_CLASS = MetaQAConfig
    BUILDER_CONFIGS = [MetaQAConfig(name=n, version=BUILDER_VERSION) for n in ("entities", "relations", "triples")] + [
        MetaQAConfig(name=n, version=BUILDER_VERSION, hops=int(n[0])) for n in NAMED_HOPS
    ]
    DEFAULT_CONFIG_NAME = "1-hop"

    def _info(self):
        if self.config.kg_setting not in ("full", "half"):
            raise ValueError(f"metaqa: kg_setting must be 'full' or 'half', got {self.config.kg_setting!r}")
        if self.config.name.endswith("-hop") and self.config.hops < 1:
            raise ValueError(f"metaqa: questions need at least 1 hop, got hops={self.config.hops}")
        features = {
            "entities": entity_features(CATEGORIES),
            "relations": RELATION_FEATURES,
            "triples": TRIPLE_FEATURES,
        }.get(self.config.name)
        if features is None:
            features = datasets.Features(
                {
                    "id": datasets.Value("string"),
                    "question": datasets.Value("string"),
                    "topic": datasets.Value("string"),
                    "mentions": MENTION_FEATURE,
                    "answers": datasets.List(datasets.Value("string")),
                    "candidates": datasets.List(datasets.Value("int32")),
                    "question_type": datasets.Value("string"),
                    "reachable": datasets.Value("bool"),
                }
            )
        return datasets.DatasetInfo(
            description=__doc__, features=features, citation=METAQA_CITATION, license=METAQA_LICENSE, homepage=URL
        )

    def _split_generators(self, dl_manager):
        if self.config.hops:
            files = {**KB_FILES, **question_files(self.config.hops)}
        elif self.config.name == "entities":  # descriptions come from every k-hop folder's dev questions
            hops = hops_present(self.config.data_dir) or [1, 2]  # none: locate() names what to place where
            files = {
                **KB_FILES,
                **{
                    f"{k}-hop-dev{suffix}": f"{k}-hop/{relative}"
                    for k in hops
                    for suffix, relative in (("", "dev.txt"), ("-qtype", "qa_dev_qtype.txt"))
                },
            }
        else:
            files = KB_FILES
        paths = locate(self.config.data_dir, "metaqa", URL, files)
        kb = read_kb(paths["kb"], self.config.kg_setting, self.config.seed)
        if not self.config.hops:
            return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"paths": paths, "kb": kb})]
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"paths": paths, "kb": kb, "split": split})
            for split in SPLITS
        ]

    def _generate_examples(self, paths, kb, split=None):
        if self.config.name == "entities":
            descriptions = sample_descriptions(paths, kb, self.config.seed)
            for i, name in enumerate(kb.entities):
                yield (
                    i,
                    {
                        "id": name,
                        "name": name,
                        "description": descriptions[i],
                        "category": kb.categories[i],
                        "part": "all",
                        "aliases": [],
                    },
                )
        elif self.config.name == "relations":
            for relation, text in read_relation_texts(paths["relation_text"], kb.relations).items():
                yield relation, {"id": relation, "name": relation.replace("_", " "), "description": text}
        elif self.config.name == "triples":
            for i, (head, relation, tail) in enumerate(kb.triples):
                yield i, {"head": kb.entities[head], "relation": relation, "tail": kb.entities[tail]}
        else:
            hops, key = self.config.hops, SPLITS[split]
            # A topic that is not in the KB loses its mention (and has no candidates): counted, reported, and more
            # than 5% fails the build. The question stays, so that "all questions" keeps its denominator.
            drops = DropCounter(str(paths[key]))
            answers, missing = 0, 0
            for number, question in read_questions(paths[key], paths[f"{key}-qtype"]):
                answers += len(question["answers"])
                missing += sum(answer not in kb.index for answer in question["answers"])
                topic = kb.index.get(question["topic"])
                if not drops.keep(topic is not None):
                    question = {**question, "mentions": []}
                candidates = kb.neighbourhood(topic, hops) if topic is not None else []
                names = {kb.entities[c] for c in candidates}
                yield (
                    number,
                    {
                        **question,
                        "id": f"{hops}-hop-{key}-{number}",
                        "candidates": candidates,
                        "reachable": any(a in names for a in question["answers"]),
                    },
                )
            drops.report()
            if missing:
                logger.warning(
                    f"{paths[key]}: {missing} of {answers} answers are not entities of the knowledge base: no "
                    "method can rank them"
                )


class KB:
    """Entities (sorted names), distinct triples (head index, relation, tail index), undirected adjacency."""

    def __init__(self, entities, triples, relations, categories):
        self.entities, self.triples, self.relations, self.categories = entities, triples, relations, categories
        self.index = {name: i for i, name in enumerate(entities)}
        self.adjacency = [set() for _ in entities]
        for head, _, tail in triples:
            self.adjacency[head].add(tail)
            self.adjacency[tail].add(head)

    def neighbourhood(self, entity: int, hops: int) -> list[int]:
        seen, frontier = {entity}, {entity}
        for _ in range(hops):
            frontier = {n for e in frontier for n in self.adjacency[e]} - seen
            seen |= frontier
        seen.discard(entity)
        return sorted(seen)


def read_kb(path, kg_setting: str, seed: int) -> KB:
    rows = []
    for number, line in read_lines(path):
        fields = line.split("|")
        if len(fields) != 3 or not all(fields) or fields[1] not in TAIL_CATEGORY:
            raise format_error(path, number, f"expected 'head|relation|tail' with a known relation, got {line!r}")
        rows.append(fields)
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":  # a last line cut in its tail reads as a triple with a new entity
            raise format_error(
                path,
                number,
                f"{line!r} ends without a newline, as a file cut short does (MetaQA's kb.txt ends every "
                "line with one): download it again (python -m datasets_scripts.download)",
            )
    entities = sorted({row[0] for row in rows} | {row[2] for row in rows})
    index = {name: i for i, name in enumerate(entities)}
    triples = sorted({(index[h], r, index[t]) for h, r, t in rows})
    roles = {}
    for head, relation, tail in triples:
        roles[head] = "movie"
        roles.setdefault(tail, TAIL_CATEGORY[relation])
    categories = [CATEGORIES.index(roles[i]) for i in range(len(entities))]
    if kg_setting == "half":
        rng = random.Random(seed)
        triples = [triple for triple in triples if rng.random() >= 0.5]
    return KB(entities, triples, sorted(TAIL_CATEGORY), categories)


def read_relation_texts(path, relations) -> dict[str, str]:
    texts = {}
    for number, line in read_lines(path):
        fields = line.split("\t")
        if len(fields) != 2:
            raise format_error(path, number, f"expected '<index>\\t<text>', got {line!r}")
        texts[fields[1].strip().replace(" ", "_")] = fields[1].strip()
    missing = [r for r in relations if r not in texts]
    if missing:
        raise format_error(path, number, f"no text for relations {missing}")
    return {r: texts[r] for r in relations}


def read_questions(path, qtype_path):
    """(line number, {question, topic, mentions, answers, question_type}) per line; brackets removed."""
    types = [line for _, line in read_lines(qtype_path)]
    count = 0
    for number, line in read_lines(path):
        count += 1
        question, separator, answers = line.partition("\t")
        match = TOPIC.search(question)
        if not separator or not answers or match is None:
            raise format_error(path, number, f"expected 'question with [topic]<TAB>answer|answer', got {line!r}")
        topics = TOPIC.findall(question)
        if len(topics) > 1:
            raise format_error(path, number, f"the question brackets {len(topics)} topics {topics}; one is expected")
        text = question[: match.start()] + match.group(1) + question[match.end() :]
        start, end = match.start(), match.start() + len(match.group(1))
        if number > len(types):
            raise format_error(qtype_path, len(types), f"has {len(types)} lines, fewer than {path}")
        yield (
            number,
            {
                "question": text,
                "topic": match.group(1),
                "mentions": [{"start": start, "end": end, "entity": match.group(1)}],
                "answers": answers.split("|"),
                "question_type": types[number - 1],
            },
        )
    if count != len(types):
        raise format_error(qtype_path, len(types), f"has {len(types)} lines but {path} has {count}")


def sample_descriptions(paths, kb: KB, seed: int) -> list[str]:
    """One `validation` question naming each entity (seeded), else the entity's name."""
    rng = random.Random(seed)
    questions = [[] for _ in kb.entities]
    for key in [k for k in paths if k.endswith("-hop-dev")]:  # in the order of k
        for _, question in read_questions(paths[key], paths[f"{key}-qtype"]):
            topic = kb.index.get(question["topic"])
            if topic is not None:
                questions[topic].append(question["question"])
    return [rng.choice(questions[i]) if questions[i] else name for i, name in enumerate(kb.entities)]
