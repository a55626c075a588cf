"""FewRel 1.0 (https://github.com/thunlp/FewRel, `data/val_wiki.json` and `data/pid2name.json`): few-shot relation
classification.

The official training file (64 relations) is not public beyond the repository; with only `val_wiki.json` (16
relations), the relations are split, seeded, into relation-disjoint meta-train and meta-test sets
(`num_test_relations` of them for meta-test, 10 by default so that 10-way episodes fit).

Configs (`form`): `instances` (one sentence each, head and tail Wikidata Q-ids kept as mentions), `episodes`
(N-way K-shot: support set and queries) and `pair` (PAIR, Gao et al. 2019: every query paired with every support
instance, labelled 1 when they share a relation). Splits: `train` (meta-train relations) and `test` (meta-test).
"""

import math
import random
import re
from dataclasses import dataclass

import datasets

from tokenization import words_to_text

from .common import MENTION_FEATURE, DataFormatError, SourceConfig, load_json, locate
from .metadata import FEWREL_CITATION, FEWREL_LICENSE

URL = "https://github.com/thunlp/FewRel/tree/master/data"
FILES = {"instances": "val_wiki.json", "relations": "pid2name.json"}
DOWNLOAD_URLS = {
    key: f"https://raw.githubusercontent.com/thunlp/FewRel/master/data/{name}" for key, name in FILES.items()
}

INSTANCE = {
    "id": datasets.Value("string"),
    "relation": datasets.Value("string"),
    "relation_name": datasets.Value("string"),
    "text": datasets.Value("string"),
    "mentions": MENTION_FEATURE,  # [head, tail], in that order
}


@dataclass
class FewRelConfig(SourceConfig):
    form: str = "instances"
    n_way: int = 5
    k_shot: int = 1
    queries_per_class: int = 1
    train_episodes: int = 1000
    test_episodes: int = 1000
    num_test_relations: int | None = None  # default: 5/8 of the file's relations (10 of 16), at least N
    seed: int = 0


CONFIG_NAME = re.compile(r"^(episodes|pair)-(\d+)-(\d+)$")


def parse_config_name(name: str) -> tuple[str, dict]:
    """Any N-way K-shot name, `episodes-N-K` or `pair-N-K`: (a config it builds on, the fields that make it so)."""
    match = CONFIG_NAME.match(name)
    if match is None:
        return name, {}
    form, n_way, k_shot = match.group(1), int(match.group(2)), int(match.group(3))
    return f"{form}-5-1", {"n_way": n_way, "k_shot": k_shot}


def default_num_test_relations(num_relations: int, n_way: int) -> int:
    """5/8 of the relations for meta-testing (10 of FewRel's 16), at least N, leaving at least one to train on."""
    return min(max(n_way, math.ceil(5 * num_relations / 8)), num_relations - 2)


BUILDER_VERSION = datasets.Version("1.0.0")


def _config(form, n_way=5, k_shot=1):
    name = form if form == "instances" else f"{form}-{n_way}-{k_shot}"
    return FewRelConfig(name=name, version=BUILDER_VERSION, form=form, n_way=n_way, k_shot=k_shot)


class FewRel(datasets.GeneratorBasedBuilder):
    """FewRel 1.0, https://github.com/thunlp/FewRel (MIT)."""

    VERSION = BUILDER_VERSION
    BUILDER_CONFIG_CLASS = FewRelConfig
    BUILDER_CONFIGS = [_config("instances")] + [
        _config(form, n, k) for form in ("episodes", "pair") for n, k in ((5, 1), (5, 5), (10, 1), (10, 5))
    ]
    DEFAULT_CONFIG_NAME = "instances"

    def _info(self):
        for field in ("n_way", "k_shot", "queries_per_class", "train_episodes", "test_episodes"):
            if getattr(self.config, field) < 1:
                raise ValueError(f"fewrel: {field} must be at least 1, got {getattr(self.config, field)}")
        if self.config.form == "instances":
            features = INSTANCE
        elif self.config.form == "episodes":
            labelled = {**INSTANCE, "label": datasets.Value("int32")}
            features = {
                "episode": datasets.Value("int32"),
                "relations": datasets.List(datasets.Value("string")),
                "support": datasets.List(labelled),
                "queries": datasets.List(labelled),
            }
        elif self.config.form == "pair":
            features = {
                "episode": datasets.Value("int32"),
                "query": INSTANCE,
                "support": INSTANCE,
                "query_label": datasets.Value("int32"),
                "support_label": datasets.Value("int32"),
                "label": datasets.ClassLabel(names=["different", "same"]),
            }
        else:
            raise ValueError(f"fewrel: form must be 'instances', 'episodes' or 'pair', got {self.config.form!r}")
        return datasets.DatasetInfo(
            description=__doc__,
            features=datasets.Features(features),
            citation=FEWREL_CITATION,
            license=FEWREL_LICENSE,
            homepage=URL,
        )

    def _split_generators(self, dl_manager):
        paths = locate(self.config.data_dir, "fewrel", URL, FILES, dl_manager, DOWNLOAD_URLS)
        by_relation = read_fewrel(paths["instances"], paths["relations"])
        relations = sorted(by_relation)
        count = self.config.num_test_relations
        if count is None:
            count = default_num_test_relations(len(relations), self.config.n_way)
        if not 0 < count <= len(relations) - 2:
            raise ValueError(
                f"fewrel: num_test_relations must be in [1, {len(relations) - 2}] ({paths['instances']} has "
                f"{len(relations)} relations and meta-training needs two: PAIR learns from pairs of different "
                f"relations), got {count}"
            )
        random.Random(self.config.seed).shuffle(relations)
        splits = {"train": relations[count:], "test": relations[:count]}
        return [
            datasets.SplitGenerator(
                name=name, gen_kwargs={"by_relation": {r: by_relation[r] for r in rels}, "split": name}
            )
            for name, rels in splits.items()
        ]

    def _generate_examples(self, by_relation, split):
        if self.config.form == "instances":
            for instances in by_relation.values():
                for instance in instances:
                    yield instance["id"], instance
            return
        episodes = self.config.train_episodes if split == "train" else self.config.test_episodes
        n_way = self.config.n_way
        if split == "train":
            n_way = min(n_way, len(by_relation))  # meta-train may hold fewer relations than the test's N
        elif n_way > len(by_relation):
            raise ValueError(
                f"fewrel: {n_way}-way episodes need {n_way} meta-test relations; raise num_test_relations "
                f"(now {len(by_relation)})"
            )
        rng = random.Random(f"{self.config.seed}-{split}")
        for number, (relations, support, queries) in enumerate(
            sample_episodes(by_relation, episodes, n_way, self.config.k_shot, self.config.queries_per_class, rng)
        ):
            if self.config.form == "episodes":
                yield number, {"episode": number, "relations": relations, "support": support, "queries": queries}
                continue
            for q, query in enumerate(queries):
                for s, candidate in enumerate(support):
                    yield (
                        f"{number}-{q}-{s}",
                        {
                            "episode": number,
                            "query": _strip_label(query),
                            "support": _strip_label(candidate),
                            "query_label": query["label"],
                            "support_label": candidate["label"],
                            "label": int(query["label"] == candidate["label"]),
                        },
                    )


def _strip_label(instance):
    return {k: v for k, v in instance.items() if k != "label"}


def sample_episodes(by_relation, count, n_way, k_shot, queries_per_class, rng):
    """`count` episodes of (relations, support, queries): N relations, then K + Q distinct instances of each."""
    relations = sorted(by_relation)
    for _ in range(count):
        chosen = rng.sample(relations, n_way)
        support, queries = [], []
        for label, relation in enumerate(chosen):
            pool = by_relation[relation]
            if len(pool) < k_shot + queries_per_class:
                raise ValueError(f"fewrel: relation {relation} has {len(pool)} instances, fewer than K + Q")
            picked = rng.sample(pool, k_shot + queries_per_class)
            support += [{**instance, "label": label} for instance in picked[:k_shot]]
            queries += [{**instance, "label": label} for instance in picked[k_shot:]]
        yield chosen, support, queries


def read_fewrel(instances_path, relations_path) -> dict[str, list[dict]]:
    """{relation id: [instance]} with text and [head, tail] mentions carrying Wikidata Q-ids."""
    raw, names = load_json(instances_path), load_json(relations_path)
    if not isinstance(raw, dict) or not raw:
        raise DataFormatError(f"{instances_path}: expected a non-empty {{relation: [instances]}} object")
    by_relation = {}
    for relation, instances in raw.items():
        name = names.get(relation, [relation])[0]
        by_relation[relation] = [
            _instance(instances_path, relation, i, item, name) for i, item in enumerate(instances)
        ]
    return by_relation


def _instance(path, relation, index, item, relation_name):
    try:
        words = item["tokens"]
        spans = [(item[key][2][0][0], item[key][2][0][-1]) for key in ("h", "t")]
        entities = [item[key][1] for key in ("h", "t")]
        text, char_spans = words_to_text(words, spans)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise DataFormatError(f"{path}: instance {index} of relation {relation} is malformed ({error!r})") from None
    mentions = [{"start": s, "end": e, "entity": q} for (s, e), q in zip(char_spans, entities)]
    return {
        "id": f"{relation}-{index}",
        "relation": relation,
        "relation_name": relation_name,
        "text": text,
        "mentions": mentions,
    }
