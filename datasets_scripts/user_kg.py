"""A knowledge graph of your own, in JSON Lines or TSV, for entity classification (and anything else that takes a
`KnowledgeGraph`): JAKET needs only a description for each entity and relation.

Files in `data_dir`, each as `<name>.jsonl` (one JSON object a line) or `<name>.tsv` (a header line naming the
columns, then tab-separated rows):
- `entities`: `id`, `name`, `description`, and optionally `category` (a string; entities without one are left out
  of classification, `category` -1) and `aliases` (other names: a JSON list of strings, or in TSV separated by `|`);
- `relations`: `id`, `name`, `description`;
- `triples`: `head`, `relation`, `tail`, naming the ids above.

Configs: `entities`, `relations`, `triples` (the KG, in the schema every builder shares), and `fraction-100`,
`fraction-20`, `fraction-5`: the entities with a category split 20/20/60 into train/validation/test (seeded), the
training split cut to that share, as the `entity_classification` builder does for WordNet.
"""

import random
from dataclasses import dataclass
from pathlib import Path

import datasets

from .common import (
    RELATION_FEATURES,
    TRIPLE_FEATURES,
    DataFormatError,
    SourceConfig,
    entity_features,
    format_error,
    logger,
    parse_json_line,
    read_lines,
)
from .entity_classification import SPLIT_SHARES
from .metadata import JAKET_CITATION, USER_LICENSE

COLUMNS = {
    "entities": (("id", "name", "description"), ("category", "aliases")),
    "relations": (("id", "name", "description"), ()),
    "triples": (("head", "relation", "tail"), ()),
}


@dataclass
class UserKGConfig(SourceConfig):
    fraction: float = 1.0
    seed: int = 0


BUILDER_VERSION = datasets.Version("1.0.0")


class UserKG(datasets.GeneratorBasedBuilder):
    """A user's knowledge graph: entities, relations and triples in JSON Lines or TSV files."""

    BUILDER_CONFIG_CLASS = UserKGConfig
    VERSION = BUILDER_VERSION
    BUILDER_CONFIGS = [
        UserKGConfig(name=name, version=BUILDER_VERSION) for name in ("entities", "relations", "triples")
    ]
    BUILDER_CONFIGS += [
        UserKGConfig(name=f"fraction-{percent}", version=BUILDER_VERSION, fraction=percent / 100)
        for percent in (100, 20, 5)
    ]
    DEFAULT_CONFIG_NAME = "entities"

    def _info(self):
        if not 0.0 < self.config.fraction <= 1.0:
            raise ValueError(f"user_kg: fraction must be in (0, 1], got {self.config.fraction}")
        if self.config.name in ("relations", "triples"):
            features = {"relations": RELATION_FEATURES, "triples": TRIPLE_FEATURES}[self.config.name]
        else:
            # the category names alone (the entities file's one column): _info runs at every construction
            rows = (row for _, row in read_rows(find_file(self.config.data_dir, "entities"), "entities"))
            features = entity_features(category_names(rows) or ["none"])
        return datasets.DatasetInfo(
            description=__doc__,
            features=features,
            citation=JAKET_CITATION,
            license=USER_LICENSE,
            homepage="https://arxiv.org/abs/2010.00796",
        )

    def _split_generators(self, dl_manager):
        kg = read_kg(self.config.data_dir)
        if not self.config.name.startswith("fraction-"):
            rows = {"entities": kg.entities, "relations": kg.relations, "triples": kg.triples}[self.config.name]
            return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"rows": rows})]
        if len(kg.category_names) < 2:
            raise DataFormatError(
                f"{kg.files['entities']}: the entities name {len(kg.category_names)} categories "
                f"({kg.category_names}); classification needs at least two"
            )
        labelled = [row for row in kg.entities if row["category"] >= 0]
        if len(labelled) < len(SPLIT_SHARES):
            raise DataFormatError(
                f"{kg.files['entities']}: {len(labelled)} entities have a category; classification needs at least "
                f"{len(SPLIT_SHARES)} (one for each of train, validation and test)"
            )
        random.Random(self.config.seed).shuffle(labelled)
        splits, start = {}, 0
        for name, share in SPLIT_SHARES.items():
            end = len(labelled) if name == "test" else start + max(1, round(share * len(labelled)))
            splits[name] = labelled[start:end]
            start = end
        splits["train"] = splits["train"][: max(1, round(self.config.fraction * len(splits["train"])))]
        return [datasets.SplitGenerator(name=name, gen_kwargs={"rows": rows}) for name, rows in splits.items()]

    def _generate_examples(self, rows):
        yield from enumerate(rows)


@dataclass
class UserKGFiles:
    files: dict
    entities: list
    relations: list
    triples: list
    category_names: list


def find_file(data_dir, name: str) -> Path:
    if data_dir is None:
        raise FileNotFoundError(f"user_kg: pass data_dir=<folder> holding {name}.jsonl or {name}.tsv")
    candidates = [Path(data_dir) / f"{name}.{extension}" for extension in ("jsonl", "tsv")]
    present = [path for path in candidates if path.is_file()]
    if len(present) != 1:
        what = "both" if present else "neither"
        raise FileNotFoundError(f"user_kg: {data_dir} must hold one of {name}.jsonl and {name}.tsv, it holds {what}")
    return present[0]


def read_rows(path: Path, kind: str):
    """(line number, {column: value}) per row, every required column present and non-empty."""
    required, optional = COLUMNS[kind]
    lines = read_lines(path)
    header = None
    if path.suffix == ".tsv":
        _, first = next(lines)
        header = [column.strip() for column in first.split("\t")]
        repeated = sorted({column for column in header if header.count(column) > 1})
        if repeated:
            raise format_error(path, 1, f"the header names {repeated} more than once (it has {header})")
        missing = [column for column in required if column not in header]
        if missing:
            raise format_error(path, 1, f"the header names no {missing} column (it has {header})")
    for number, line in lines:
        if not line.strip():
            continue
        if header is None:
            row = parse_json_line(path, number, line)
            if not isinstance(row, dict):
                raise format_error(path, number, f"expected a JSON object, got {type(row).__name__}")
        else:
            fields = line.split("\t")
            if len(fields) != len(header):
                raise format_error(path, number, f"{len(fields)} fields where the header has {len(header)}")
            row = dict(zip(header, fields))
        for column in required:
            if not isinstance(row.get(column), str) or not row[column].strip():
                raise format_error(path, number, f"{kind} need a non-empty string {column!r}, got {row.get(column)!r}")
        category = row.get("category")
        if isinstance(category, int) and not isinstance(category, bool):
            category = str(category)  # a JSON number names a category as its digits do
        elif category is not None and not isinstance(category, str):
            raise format_error(path, number, f"a category must be a string or an integer, got {category!r}")
        aliases = row.get("aliases")
        if isinstance(aliases, str):
            aliases = aliases.split("|")
        if aliases is not None and not (isinstance(aliases, list) and all(isinstance(a, str) for a in aliases)):
            raise format_error(path, number, f"aliases must be a list of strings (TSV: a|b), got {aliases!r}")
        aliases = [alias.strip() for alias in aliases if alias.strip()] if aliases else None
        values = {**row, "category": category, "aliases": aliases}
        # ids, names and categories without the spaces around them: " dog" and "dog" are one entity
        yield number, {column: _strip(values.get(column)) for column in required + optional}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def category_names(entity_rows) -> list[str]:
    """The categories the entity rows name, sorted: the class labels, in their order."""
    return sorted({row["category"] for row in entity_rows if row.get("category")})


def read_kg(data_dir) -> UserKGFiles:
    files = {kind: find_file(data_dir, kind) for kind in COLUMNS}
    entities, relations, positions = [], [], {}
    for kind, rows in (("entities", entities), ("relations", relations)):
        seen = {}
        for number, row in read_rows(files[kind], kind):
            if row["id"] in seen:
                raise format_error(
                    files[kind], number, f"id {row['id']!r} was given before, on line {seen[row['id']]}"
                )
            seen[row["id"]] = number
            rows.append(row)
        positions[kind] = seen
    names = category_names(entities)
    category_index = {name: i for i, name in enumerate(names)}
    entities = [
        {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "category": category_index.get(row.get("category") or "", -1),
            "part": "all",
            "aliases": row.get("aliases") or [],
        }
        for row in entities
    ]
    triples, first_seen, repeats = [], {}, []
    for number, row in read_rows(files["triples"], "triples"):
        for column, kind in (("head", "entities"), ("relation", "relations"), ("tail", "entities")):
            if row[column] not in positions[kind]:
                raise format_error(files["triples"], number, f"{column} {row[column]!r} is not among the {kind}")
        key = (row["head"], row["relation"], row["tail"])
        if key in first_seen:
            repeats.append((number, first_seen[key]))
            continue
        first_seen[key] = number
        triples.append(row)
    if repeats:
        (number, first), count = repeats[0], len(repeats)
        logger.warning(
            f"{files['triples']}: {count} repeated triples kept once each (line {number} repeats line {first})"
        )
    for kind, rows in (("entities", entities), ("relations", relations), ("triples", triples)):
        if not rows:
            raise DataFormatError(f"{files[kind]} has a header but no rows: a knowledge graph needs at least one")
    return UserKGFiles(files, entities, relations, triples, names)
