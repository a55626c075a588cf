"""Entity classification on an unseen knowledge graph (§4.4) with `transformers.Trainer`.

The held-out part of WordNet never appears in pre-training. Its memory is computed from its descriptions by the
pre-trained LM1 (the paper does not update it while fine-tuning); `JaketForEntityClassification` classifies each
entity from the knowledge module's output over its sampled 2-hop neighbourhood. `--method` picks JAKET or one of the
paper's baselines; `--fractions` trains on 100%, 20% and 5% of the training split, test accuracy for each.

Every method and fraction gets the same protocol: `--step_budget` optimizer steps (capped at `--max_epochs`), the
builder's validation split (`--validation_split carved`: one carved from the fraction's training labels), and a grid
of learning rates (each method's own times
`--learning_rate_grid`) by steps (`--num_evaluations` points of each run), chosen on validation; the test split is
read once, by the chosen weights.

    python examples/finetune_entity_classification.py --model_name_or_path jaket-base --method jaket
"""

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from datasets import Dataset
from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

import datasets_scripts
from jaket_training.finetuning import (
    METHODS,
    PRETRAINED_PATHS,
    FineTuningArguments,
    FineTuningTask,
    HeadRateTrainer,
    MethodStart,
    ProtocolArguments,
    WithEntityMemory,
    begin_fine_tuning,
    carve_validation,
    load_method,
    masked_accuracy,
    method_field,
    parse_fine_tuning_args,
    pretrained_head,
    pretrained_path,
    run_protocol,
)
from jaket_training.model_card import Result
from modeling_jaket import (
    JaketForEntityClassification,
    JaketForSequenceClassification,
    KnowledgeGraph,
)
from modeling_jaket.graph import DEFAULT_FANOUTS

logger = logging.getLogger(__name__)
# Two uses of JAKET's pre-trained category head, which the shared label space (WordNet's 45 lexicographer files)
# allows.
JAKET_HEAD_METHODS = {
    "jaket_zero_shot": "JAKET's pre-trained category head on the unseen KG, no fine-tuning (relation embeddings off, "
    "as in pre-training)",
    "jaket_from_head": "JAKET fine-tuned with its classifier started from the pre-trained category head",
}
# The control of that gain (the control for what the text gives, lm_mlm, is every script's: METHODS).
CONTROL_METHODS = {
    "lm_gnn_m_category": "LM+GNN+M whose knowledge module and classifier were first trained with L_c alone on the "
    "pre-training graph's categories (pretrain.py --losses entity_category; --category_control_path)"
    ", fine-tuned from that head: the control for JAKET's category head",
}


@dataclass
class EntityClassificationArguments(ProtocolArguments, FineTuningArguments):
    method: list[str] = method_field({**METHODS, **JAKET_HEAD_METHODS, **CONTROL_METHODS})
    category_control_path: str | None = field(
        default=None,
        metadata={
            "help": "output folder of examples/pretrain.py --losses entity_category (--method lm_gnn_m_category)"
        },
    )
    num_lm1_layers: int | None = field(
        default=None, metadata={"help": "LM1's layers for the baselines built from the backbone (default: half)"}
    )
    fractions: list[int] = field(
        default_factory=lambda: [100, 20, 5],
        metadata={
            "nargs": "+",
            "choices": [100, 20, 5],
            "help": "percentages of the training split to train on, one run each",
        },
    )
    fanouts: list[int] = field(
        default_factory=lambda: list(DEFAULT_FANOUTS), metadata={"help": "neighbours sampled per entity and hop"}
    )
    lm_learning_rate: float = field(
        default=5e-5,
        metadata={
            "help": "--method lm fine-tunes the whole backbone on "
            "the descriptions, at this rate (times the "
            "grid; its head at --head_learning_rate)"
        },
    )
    description_length: int = field(default=64, metadata={"help": "tokens of each description read"})
    validation_split: str = field(
        default="builder",
        metadata={
            "choices": ["builder", "carved"],
            "help": "the entities the settings are chosen on: the builder's validation split (the paper's 20%% dev "
            "split, the same at every fraction), or --validation_share of the fraction's training labels (carved: 24 "
            "entities at 5%% of WordNet's)",
        },
    )
    kg_dir: str | None = field(
        default=None,
        metadata={
            "help": "a knowledge graph of your own (entities, relations and triples as .jsonl or .tsv; see "
            "datasets_scripts/user_kg.py) instead of WordNet's held-out part (the default data: a folder with "
            "wordnet-3.0/ and semcor-3.0/)"
        },
    )

    minimums: ClassVar[dict[str, int]] = {"num_lm1_layers": 1, "fanouts": 0, "description_length": 4}
    pretrained_flags: ClassVar[dict[str, str]] = {**PRETRAINED_PATHS, "lm_gnn_m_category": "category_control_path"}

    def __post_init__(self):
        super().__post_init__()
        if not self.lm_learning_rate > 0:
            raise ValueError(f"--lm_learning_rate must be > 0, got {self.lm_learning_rate}")


def parse_args(argv=None) -> EntityClassificationArguments:
    return parse_fine_tuning_args(
        EntityClassificationArguments,
        argv,
        __doc__.split("\n\n")[0],
        learning_rate=1e-3,
        per_device_train_batch_size=64,
        per_device_eval_batch_size=256,
        output_dir="outputs/entity-classification",
    )


@dataclass
class EntityClassificationCollator:
    """A batch of labelled entities -> their sampled neighbourhood, labels on the batch's entities, -100 elsewhere."""

    graph: KnowledgeGraph
    fanouts: tuple = DEFAULT_FANOUTS
    seed: int = 0

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, features):
        entities = torch.tensor([f["entity"] for f in features])
        subgraph = self.graph.sample_subgraph(entities, self.fanouts, self.generator)
        labels = torch.full((subgraph.entity_ids.numel(),), -100)
        position = {int(e): i for i, e in enumerate(subgraph.entity_ids[: subgraph.num_seeds])}
        labels[[position[int(e)] for e in entities]] = torch.tensor([f["label"] for f in features])
        return {**subgraph.inputs(), "labels": labels}


def task_graph(args) -> KnowledgeGraph:
    """The graph to classify the entities of: a user's (--kg_dir), else WordNet's held-out part."""
    if args.kg_dir is None:
        return heldout_graph(args.data_dir, args.dataset_cache_dir)
    kg = datasets_scripts.load("user_kg", args.kg_dir, cache_dir=args.dataset_cache_dir)
    names = kg["entities"].features["category"].names
    return KnowledgeGraph.from_records(kg["entities"], kg["relations"], kg["triples"], category_names=names)


def fraction_splits(args, percent: int):
    """train (that percentage of the training split) / validation / test of the labelled entities."""
    if args.kg_dir is None:
        return datasets_scripts.load(
            "entity_classification", args.data_dir, config_name=f"fraction-{percent}", cache_dir=args.dataset_cache_dir
        )
    return datasets_scripts.load(
        "user_kg", args.kg_dir, config_name=f"fraction-{percent}", cache_dir=args.dataset_cache_dir
    )


def labelled_splits(args, graph: KnowledgeGraph) -> dict[int, dict[str, tuple[list[int], list[int]]]]:
    """{percent: {"train" / "validation" / "test": (the graph's numbers of the split's entities, their categories)}}
    for each of --fractions, loaded once for every method (as lists: `Dataset.map` would hash the whole graph). The
    validation split is the builder's (`--validation_split builder`) or carved from the fraction's training split
    (`--validation_share`, seeded by `--seed`)."""
    splits = {}
    for percent in args.fractions:
        loaded = fraction_splits(args, percent)
        train, validation, test = (
            ([graph.entity_index[key] for key in loaded[name]["id"][:]], loaded[name]["category"][:])
            for name in ("train", "validation", "test")
        )
        if args.validation_split == "carved":
            train, validation = carve_validation(*train, args.validation_share, args.seed)
        splits[percent] = {"train": train, "validation": validation, "test": test}
    return splits


def heldout_graph(data_dir, cache_dir) -> KnowledgeGraph:
    kg = datasets_scripts.load("wordnet_semcor", data_dir, cache_dir=cache_dir)
    heldout = kg["entities"].filter(lambda part: part == "heldout", input_columns="part", keep_in_memory=True)
    names = kg["entities"].features["category"].names
    return KnowledgeGraph.from_records(heldout, kg["relations"], kg["triples"], category_names=names)


class LengthBucketSampler(torch.utils.data.Sampler):
    """Batches of descriptions of like length, in a random order that changes each epoch: a seeded shuffle, sorted
    by length within buckets of `bucket_batches` batches, then the batches shuffled. (transformers'
    `LengthGroupedSampler` keeps at least four buckets, so on the few hundred descriptions of the 20% and 5% splits its
    buckets are single batches: nearly every batch was padded to 64 tokens, and a step took twice as long.)"""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, bucket_batches: int = 50):
        self.lengths, self.batch_size, self.seed, self.bucket_batches = lengths, batch_size, seed, bucket_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # the Trainer calls it before each epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * self.bucket_batches
        buckets = [sorted(order[i : i + size], key=self.lengths.__getitem__) for i in range(0, len(order), size)]
        batches = [
            bucket[i : i + self.batch_size] for bucket in buckets for i in range(0, len(bucket), self.batch_size)
        ]
        return iter(
            [index for b in torch.randperm(len(batches), generator=generator).tolist() for index in batches[b]]
        )


class LengthBucketTrainer(HeadRateTrainer):
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [len(ids) for ids in dataset["input_ids"][:]]
        return LengthBucketSampler(
            lengths, self.args.train_batch_size * self.args.gradient_accumulation_steps, self.args.seed
        )


def start_from_category_head(model: JaketForEntityClassification, pretrained: str) -> None:
    """Copy JAKET's pre-trained entity-category head (L_c) into the classifier: both map E^KM to WordNet's 45
    lexicographer files."""
    head = pretrained_head(pretrained, "entity_category_head")
    if head["weight"].shape != model.classifier.weight.shape:
        raise ValueError(
            f"the pre-trained category head of {pretrained} scores {head['weight'].shape[0]} categories but this "
            f"task has {model.classifier.weight.shape[0]} labels: it can start the classifier only when both are the "
            "same"
        )
    model.classifier.load_state_dict(head)


def card_results(args, accuracy: dict) -> list[Result]:
    dataset, data = (
        ("user_kg", f"{args.kg_dir}, test split")
        if args.kg_dir
        else ("entity_classification", "WordNet's held-out part (unseen in pre-training), test split")
    )
    return [
        Result(
            "entity-classification",
            f"Entity category, {percent} of the training split",
            dataset,
            data,
            "accuracy",
            value,
        )
        for percent, value in accuracy.items()
    ]


@dataclass(kw_only=True)
class EntityClassificationTask(FineTuningTask):
    """The labelled entities of the graph at each of --fractions, each fraction chosen on and tested apart from the
    same start (see the module's docstring)."""

    splits: dict  # {percent: {"train" / "validation" / "test": (entities, their categories)}}: `labelled_splits`

    model_class: ClassVar = JaketForEntityClassification

    def start(self, args, method):
        if method == "lm":
            # the LM baseline as the paper runs it: the whole backbone reads each entity's description and is
            # fine-tuned, with a classification head on its start token; no graph, no memory. No knowledge module:
            # a fresh merge LayerNorm would otherwise run over every position between LM1 and LM2
            set_seed(args.seed)  # as load_method does for the others
            model = JaketForSequenceClassification.from_backbone(
                args.backbone, num_labels=len(self.graph.category_names), km_num_layers=0
            )
            return MethodStart(method, AutoTokenizer.from_pretrained(args.backbone), model, None, model)
        base_method = "jaket" if method in {**JAKET_HEAD_METHODS, **CONTROL_METHODS} else method
        pretrained = (
            args.category_control_path if method == "lm_gnn_m_category" else pretrained_path(args, base_method)
        )
        config = {"num_labels": len(self.graph.category_names)}
        if args.num_lm1_layers and base_method not in PRETRAINED_PATHS:
            config["num_lm1_layers"] = args.num_lm1_layers
        tokenizer, model, memory = load_method(args, base_method, self.model_class, self.graph, pretrained, **config)
        if method in ("jaket_zero_shot", "jaket_from_head", "lm_gnn_m_category"):
            start_from_category_head(model, pretrained)
        if method == "jaket_zero_shot":
            memory.relation_embeddings.zero_()  # as the head was pre-trained (§3.5)
        trained = WithEntityMemory(model, memory, trainable=method == "gnn")
        return MethodStart(method, tokenizer, model, trained.memory, trained)  # the GNN's: the copy it trains

    def settings(self, args, start):
        return {percent: self.encode(args, start, split) for percent, split in self.splits.items()}

    def encode(self, args, start, split: dict) -> dict:
        if start.method != "lm":
            return {name: Dataset.from_dict({"entity": e, "label": labels}) for name, (e, labels) in split.items()}
        # descriptions are short and of unequal length: padded to a random batch's longest, most of the reading is
        # padding, so training batches are of like length (LengthBucketSampler) and the other splits are read
        # shortest first
        data = {}
        for name, (entities, labels) in split.items():
            encoded = start.tokenizer(
                [self.graph.entity_descriptions[i] for i in entities],
                truncation=True,
                max_length=args.description_length,
            )
            dataset = Dataset.from_dict({**encoded, "labels": labels})
            lengths = [len(ids) for ids in encoded["input_ids"]]
            data[name] = (
                dataset if name == "train" else dataset.select(sorted(range(len(lengths)), key=lengths.__getitem__))
            )
        return data

    def learning_rate(self, args, method):
        if method == "jaket_zero_shot":
            return None  # the pre-trained head, as it is
        return args.lm_learning_rate if method == "lm" else args.learning_rate

    def trainer(self, args, start, data, training_args):
        if start.method == "lm":
            trainer_class, collator = LengthBucketTrainer, DataCollatorWithPadding(start.tokenizer)
        else:
            trainer_class, collator = (
                HeadRateTrainer,
                EntityClassificationCollator(self.graph, tuple(args.fanouts), args.seed),
            )
        return trainer_class(
            model=start.trained,
            args=training_args,
            train_dataset=data["train"],
            eval_dataset=data["validation"],
            data_collator=collator,
            compute_metrics=masked_accuracy,
            head_learning_rate=args.head_learning_rate,
        )

    def report(self, args, method, scores, chosen):
        described = {**METHODS, **JAKET_HEAD_METHODS, **CONTROL_METHODS}[method]
        summary = (
            f"{method} ({described}), fine-tuned for entity classification on an "
            f"unseen knowledge graph; trained on {args.fractions[-1]}% of the training split."
        )
        accuracy = {f"{percent}%": score["accuracy"] for percent, score in scores.items()}
        record = {
            "task": "entity_classification",
            "method": method,
            "seed": args.seed,
            "accuracy": accuracy,
            "chosen": {f"{percent}%": choice for percent, choice in chosen.items()},
        }
        return summary, card_results(args, accuracy), record


def main(argv=None) -> list[dict]:
    """Fine-tune and test each of --method in turn on one loaded graph; returns their result records."""
    args = parse_args(argv)
    command, repo_id = begin_fine_tuning(args, "examples/finetune_entity_classification.py", argv)
    graph = task_graph(args)
    logger.info(f"the graph to classify: {graph.num_entities} entities and {graph.num_triples} triples")
    task = EntityClassificationTask(
        splits=labelled_splits(args, graph),
        graph=graph,
        dataset="user_kg" if args.kg_dir else "entity_classification",
        command=command,
        repo_id=repo_id,
    )
    return [run_protocol(args, method, task) for method in args.method]


if __name__ == "__main__":
    main()
