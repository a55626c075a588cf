"""Few-shot relation classification on FewRel (§4.2) in PAIR form, with `transformers.Trainer`.

PAIR (Gao et al. 2019) reads a query sentence and a support sentence together and says whether they express the
same relation; an N-way K-shot episode is answered by the class whose K support sentences score highest on
average. `JaketForSequenceClassification` reads the pair from its start token; the head and tail entities of both
sentences are mentions, merged with their knowledge-module embeddings over their sampled 2-hop neighbourhood.
Meta-train and meta-test relations are disjoint.

FewRel's entities are Wikidata items; `--kg` says which graph joins them (`examples/pretrain.py`'s relation
embeddings, described from `pid2name.json` or the user's relations, are used as in §3.5):
- `meta_train` (the default, offline): the meta-train relations' own instances as (head, relation, tail) triples,
  both directions; never a meta-test relation's;
- `user` with `--kg_dir`: a knowledge graph of your own over Wikidata ids (user_kg's format), e.g. the
  `wikipedia_wikidata` builder's output; its triples of meta-test relations are dropped (they would name the answer);
- `none`: isolated entities, each described by its name.
In every case the edges between two entities of one (query, support) pair are hidden from the knowledge module:
in meta-training they would state the very relation the pair is about.

The protocol of every fine-tuning script: `--step_budget` steps, and a grid of learning rates (`--learning_rate_grid`
times the method's own) by steps (`--num_evaluations` points) chosen on `--validation_episodes` episodes of the
meta-train relations drawn after the training ones (new episodes; their sentences may also occur in training
pairs); the meta-test episodes are answered once, by the chosen weights.

    python examples/finetune_fewrel.py --model_name_or_path jaket-base --method jaket --n_way 5 --k_shot 1
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from datasets import Dataset
from tqdm.auto import tqdm

import datasets_scripts
from datasets_scripts.common import load_json
from datasets_scripts.fewrel import FILES
from jaket_training.data import encoding_fingerprint
from jaket_training.finetuning import (
    METHODS,
    DataCollatorWithSubgraph,
    FineTuningArguments,
    FineTuningTask,
    ProtocolArguments,
    ScoredTrainer,
    begin_fine_tuning,
    method_field,
    parse_fine_tuning_args,
    precision,
    run_protocol,
)
from jaket_training.metrics import accuracy
from jaket_training.model_card import Result
from modeling_jaket import JaketForSequenceClassification, KnowledgeGraph
from modeling_jaket.graph import DEFAULT_FANOUTS
from tokenization import tokenize_with_mentions

logger = logging.getLogger(__name__)
FEWREL_METHODS = {k: v for k, v in METHODS.items() if k != "gnn"}  # a GNN alone cannot read the sentences


@dataclass
class FewRelArguments(ProtocolArguments, FineTuningArguments):
    method: list[str] = method_field(FEWREL_METHODS)
    n_way: int = field(default=5, metadata={"help": "relations an episode tells apart (N)"})
    k_shot: int = field(default=1, metadata={"help": "labelled instances of each relation in an episode (K)"})
    num_test_relations: int | None = field(
        default=None,
        metadata={"help": "relations kept for meta-testing, at least N (default: 5/8 of the file's, 10 of 16)"},
    )
    train_episodes: int = field(default=1000, metadata={"help": "meta-training episodes turned into PAIR pairs"})
    test_episodes: int = field(default=500, metadata={"help": "meta-test episodes scored"})
    validation_episodes: int = field(
        default=50, metadata={"help": "meta-train episodes, drawn after the training ones, to choose the settings on"}
    )
    max_seq_length: int = field(default=256, metadata={"help": "tokens of a (query, support) pair"})
    kg: str = field(
        default="meta_train",
        metadata={
            "choices": ["meta_train", "user", "none"],
            "help": "the graph "
            "over FewRel's entities: the meta-train instances' triples, your own (--kg_dir), or none",
        },
    )
    kg_dir: str | None = field(
        default=None,
        metadata={
            "help": "--kg user: a folder of entities, relations and "
            "triples over Wikidata ids (datasets_scripts/user_kg.py)"
        },
    )
    fanouts: list[int] = field(
        default_factory=lambda: list(DEFAULT_FANOUTS), metadata={"help": "neighbours sampled per entity and hop"}
    )

    data_subfolder: ClassVar[str] = "fewrel"  # val_wiki.json and pid2name.json
    minimums: ClassVar[dict[str, int]] = {
        "n_way": 2,
        "k_shot": 1,
        "num_test_relations": 2,
        "train_episodes": 1,
        "test_episodes": 1,
        "validation_episodes": 1,
        "max_seq_length": 8,
        "fanouts": 0,
    }

    def __post_init__(self):
        super().__post_init__()
        if self.num_test_relations is not None and self.num_test_relations < self.n_way:
            raise ValueError(
                f"--num_test_relations ({self.num_test_relations}) must be at least --n_way ({self.n_way})"
            )
        if (self.kg == "user") != (self.kg_dir is not None):
            raise ValueError(
                "--kg user goes with --kg_dir (a folder of your knowledge graph), and --kg_dir with --kg user"
            )


def parse_args(argv=None) -> FewRelArguments:
    return parse_fine_tuning_args(
        FewRelArguments,
        argv,
        __doc__.split("\n\n")[0],
        learning_rate=2e-5,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        output_dir="outputs/fewrel",
    )


def entity_graph(instances, kg: str = "none", relation_names: dict | None = None, user_kg=None) -> KnowledgeGraph:
    """Every head and tail entity of FewRel, described by its name (the text of its first mention), joined by `kg`'s
    triples: "meta_train", the meta-train instances' (`relation_names`: {pid: (name, description)}); "user", those
    of `user_kg` (a `user_kg` DatasetDict over Wikidata ids, whose descriptions then win) but its meta-test
    relations'; "none", no triples. Triples are added in both directions."""
    names = {}
    for split in instances.values():
        for row in split:
            for mention in row["mentions"]:
                names.setdefault(mention["entity"], row["text"][mention["start"] : mention["end"]])
    entities = {q: {"id": q, "name": names[q], "description": names[q]} for q in sorted(names)}
    relations, triples = [], []
    if kg == "meta_train":
        used = sorted({row["relation"] for row in instances["train"]})
        if unnamed := [p for p in used if p not in relation_names]:
            # a FewRel-format folder of one's own may hold relations that are no Wikidata property
            logger.warning(
                f"--kg meta_train: {len(unnamed)} meta-train relations have no name and description in "
                f"pid2name.json ({', '.join(unnamed[:5])}{', ...' if len(unnamed) > 5 else ''}): each is described by "
                "its id alone"
            )
        relations = [
            {"id": p, "name": name, "description": f"{name}: {description}" if description else name}
            for p in used
            for name, description in [relation_names.get(p, (p, None))]
        ]
        triples = [
            {"head": row["mentions"][0]["entity"], "relation": row["relation"], "tail": row["mentions"][1]["entity"]}
            for row in instances["train"]
        ]
    elif kg == "user":
        test_relations = {row["relation"] for row in instances["test"]}
        triples = [t for t in user_kg["triples"] if t["relation"] not in test_relations]
        logger.info(f"--kg_dir: {len(user_kg['triples']) - len(triples)} triples of meta-test relations dropped")
        touching = [t for t in triples if t["head"] in names or t["tail"] in names]
        if not touching:  # it trained with no triple of the graph, said at INFO level
            example = ", ".join(map(repr, user_kg["entities"]["id"][:3]))
            raise ValueError(
                f"--kg_dir: none of the {len(triples)} triples of your graph (beside meta-test relations) has a "
                "FewRel entity at either end: FewRel names entities by Wikidata ids (Q42), your graph's ids are "
                f"{example}, ..."
            )
        logger.warning(f"--kg_dir: {len(touching)} of {len(triples)} triples have a FewRel entity at an end")
        near = {t[end] for t in touching for end in ("head", "tail")}
        entities.update({e["id"]: e for e in user_kg["entities"] if e["id"] in names or e["id"] in near})
        relations = list(user_kg["relations"])
    unique = list({(t["head"], t["relation"], t["tail"]): t for t in triples}.values())
    return KnowledgeGraph.from_records(list(entities.values()), relations, unique, add_reverse=bool(relations))


def sentence_mentions(sentence, use_mentions: bool = True) -> list[tuple]:
    """A FewRel sentence's mentions as `(start, end, entity key)`; head and tail occasionally share words, and of two
    overlapping mentions the first is kept."""
    kept = []
    for mention in sorted((m["start"], m["end"], m["entity"]) for m in sentence["mentions"]) if use_mentions else []:
        if not kept or mention[0] >= kept[-1][1]:
            kept.append(mention)
    return kept


# what an encoded pair gives the model (token_type_ids where the tokenizer has them)
PAIR_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "mention_entity_ids", "mention_starts", "mention_ends")


def encode_pairs(tokenizer, graph, queries, supports, max_length, use_mentions=True):
    """Each (query, support) as the tokenizer's sequence pair (`[CLS] query [SEP] support [SEP]`, RoBERTa's `<s> query
    </s></s> support </s>`, with `token_type_ids` where the tokenizer has them), both sentences' mentions mapped."""
    return tokenize_with_mentions(
        tokenizer,
        [query["text"] for query in queries],
        [sentence_mentions(query, use_mentions) for query in queries],
        entity_vocab=graph.entity_index,
        max_length=max_length,
        text_pairs=[support["text"] for support in supports],
        pair_mentions=[sentence_mentions(support, use_mentions) for support in supports],
    )


def class_scores(margins, labels):
    """Each query's mean 'same' margin over each class's supports: [queries, classes]. The classes are the episode's
    own, not --n_way's: a validation episode of meta-train holds fewer relations where meta-train has fewer than N
    (an empty class would score 0 and beat every negative margin)."""
    classes = int(labels.max()) + 1
    sums = torch.zeros(margins.shape[0], classes, dtype=margins.dtype).index_add_(1, labels, margins)
    return sums / torch.bincount(labels, minlength=classes)


def evaluate_episodes(model, episodes, tokenizer, graph, args, use_mentions):
    """Accuracy of answering each query by the class whose support sentences score highest (mean 'same' margin)."""
    collator = DataCollatorWithSubgraph(
        tokenizer.pad_token_id, graph, tuple(args.fanouts), args.seed, hide_pair_edges=True
    )
    device = next(model.parameters()).device
    predictions, references = [], []
    model.eval()
    for episode in tqdm(episodes, desc="test episodes", leave=False):
        queries = [q for q in episode["queries"] for _ in episode["support"]]
        supports = [s for _ in episode["queries"] for s in episode["support"]]
        encoding = encode_pairs(tokenizer, graph, queries, supports, args.max_seq_length, use_mentions)
        features = [{k: encoding[k][i] for k in encoding} for i in range(len(queries))]
        margins = []
        for begin in range(0, len(features), args.per_device_eval_batch_size):
            batch = collator(features[begin : begin + args.per_device_eval_batch_size])
            with torch.no_grad():
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            margins.append((logits[:, 1] - logits[:, 0]).cpu())
        margins = torch.cat(margins).view(len(episode["queries"]), len(episode["support"]))
        labels = torch.tensor([s["label"] for s in episode["support"]])
        predictions += class_scores(margins, labels).argmax(dim=1).tolist()
        references += [q["label"] for q in episode["queries"]]
    return accuracy(predictions, references)


@dataclass(kw_only=True)
class FewRelTask(FineTuningTask):
    """PAIR: each (query, support) pair of the training episodes labelled same relation or not; the settings chosen
    on validation episodes, the test on the meta-test episodes (see the module's docstring)."""

    pairs: Dataset  # the meta-training episodes' (query, support) pairs
    validation: Dataset  # meta-train episodes drawn after the training ones
    episodes: Dataset  # the meta-test episodes

    model_class: ClassVar = JaketForSequenceClassification

    def name(self, args, method):
        return f"{method}-{args.n_way}-{args.k_shot}"

    def model_config(self, args, method):
        return {"num_labels": 2}  # different relation, same relation

    def settings(self, args, start):
        use_mentions = start.method != "lm"

        def encode(batch):
            encoding = encode_pairs(
                start.tokenizer, self.graph, batch["query"], batch["support"], args.max_seq_length, use_mentions
            )
            return {**{k: encoding[k] for k in PAIR_INPUTS if k in encoding}, "labels": batch["label"]}

        train = self.pairs.map(
            encode,
            batched=True,
            remove_columns=self.pairs.column_names,
            keep_in_memory=True,
            new_fingerprint=encoding_fingerprint(
                self.pairs, start.tokenizer, self.graph, args.max_seq_length, use_mentions
            ),
        )
        return {None: {"train": train, "validation": self.validation, "test": self.episodes}}

    def trainer(self, args, start, data, training_args):
        def score(model, episodes):
            with precision(args, next(model.parameters()).device.type):
                return evaluate_episodes(model, episodes, start.tokenizer, self.graph, args, start.method != "lm")

        return ScoredTrainer(
            model=start.trained,
            args=training_args,
            train_dataset=data["train"],
            eval_dataset=data["validation"],
            data_collator=DataCollatorWithSubgraph(
                start.tokenizer.pad_token_id, self.graph, tuple(args.fanouts), args.seed, hide_pair_edges=True
            ),
            head_learning_rate=args.head_learning_rate,
            score=score,
        )

    def report(self, args, method, scores, chosen):
        setting = f"{args.n_way}-way {args.k_shot}-shot"
        test_accuracy = scores[None]["accuracy"]
        result = Result(
            "text-classification",
            f"Few-shot relation classification, {setting} (PAIR)",
            "fewrel",
            f"FewRel 1.0, {len(self.episodes)} episodes of the meta-test relations",
            "accuracy",
            test_accuracy,
        )
        record = {
            "task": "fewrel",
            "setting": setting,
            "method": method,
            "kg": args.kg,
            "seed": args.seed,
            "accuracy": test_accuracy,
            "test_episodes": len(self.episodes),
            "chosen": chosen[None],
        }
        return f"{method} fine-tuned as PAIR for FewRel, {setting}.", [result], record


def main(argv=None) -> list[dict]:
    """Fine-tune and test each of --method in turn on one set of episodes; returns their result records."""
    args = parse_args(argv)
    command, repo_id = begin_fine_tuning(args, "examples/finetune_fewrel.py", argv)
    name = f"{args.n_way}-{args.k_shot}"
    common = dict(
        cache_dir=args.dataset_cache_dir,
        n_way=args.n_way,
        k_shot=args.k_shot,
        seed=args.seed,
        train_episodes=args.train_episodes,
        test_episodes=args.test_episodes,
        num_test_relations=args.num_test_relations,
    )
    pairs = datasets_scripts.load("fewrel", args.data_dir, config_name=f"pair-{name}", **common)["train"]
    episodes = datasets_scripts.load("fewrel", args.data_dir, config_name=f"episodes-{name}", **common)["test"]
    # the meta-train episodes are drawn in sequence: the ones after the first train_episodes are new
    drawn = args.train_episodes + args.validation_episodes
    validation = datasets_scripts.load(
        "fewrel", args.data_dir, config_name=f"episodes-{name}", **{**common, "train_episodes": drawn}
    )["train"].select(range(args.train_episodes, drawn))
    instances = datasets_scripts.load(
        "fewrel", args.data_dir, config_name="instances", cache_dir=args.dataset_cache_dir
    )
    relation_names = load_json(Path(args.data_dir) / FILES["relations"]) if args.kg == "meta_train" else None
    user_kg = datasets_scripts.load("user_kg", args.kg_dir, cache_dir=args.dataset_cache_dir) if args.kg_dir else None
    graph = entity_graph(instances, args.kg, relation_names, user_kg)
    logger.info(f"FewRel graph ({args.kg}): {graph.num_entities} entities, {graph.num_triples} triples")
    task = FewRelTask(
        pairs=pairs,
        validation=validation,
        episodes=episodes,
        graph=graph,
        dataset="fewrel",
        command=command,
        repo_id=repo_id,
    )
    return [run_protocol(args, method, task) for method in args.method]


if __name__ == "__main__":
    main()
