"""Text classification with a knowledge graph of your own, with `transformers.Trainer`.

`--kg_dir`: your graph, in `datasets_scripts/user_kg.py`'s format (entities, relations and triples with
descriptions). `--train_file`, `--validation_file`, `--test_file`: JSON Lines, one example a line, with `text`,
`label` (a string or an integer) and, optionally, `mentions`: `[{"start": 4, "end": 7, "entity": "dog"}, ...]`,
character spans (Python-slice style) naming entity ids of the graph. An example without `mentions` has them found
and linked as the `entity-linking` pipeline does: the graph's names and aliases in the text, each mention's
candidates ranked by the masked-entity head of `--model_name_or_path`, once, before any method trains, so that
every method reads the same links. `JaketForSequenceClassification` reads the text from its start token, each
mention merged with its entity's knowledge-module embedding over the sampled neighbourhood.

The protocol of every fine-tuning script: `--step_budget` steps and a grid of learning rates (`--learning_rate_grid`
times the method's own) by steps (`--num_evaluations` points), chosen on the validation file; the test file is read
once, by the chosen weights.

    python examples/finetune_text_classification.py --kg_dir examples/example_kg \\
        --train_file examples/example_text/train.jsonl --validation_file examples/example_text/validation.jsonl \\
        --test_file examples/example_text/test.jsonl --model_name_or_path jaket-base --method jaket lm
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import datasets

import datasets_scripts
from datasets_scripts.common import format_error, parse_json_line, read_lines
from jaket_training.finetuning import (
    METHODS,
    DataCollatorWithSubgraph,
    FineTuningArguments,
    FineTuningTask,
    HeadRateTrainer,
    ProtocolArguments,
    begin_fine_tuning,
    load_method,
    masked_accuracy,
    method_field,
    parse_fine_tuning_args,
    precision,
    run_protocol,
)
from jaket_training.model_card import Result
from modeling_jaket import (
    JaketForPreTraining,
    JaketForSequenceClassification,
    JaketProcessor,
    KnowledgeGraph,
    link_mentions,
)
from modeling_jaket.graph import DEFAULT_FANOUTS
from tokenization import tokenize_with_mentions

logger = logging.getLogger(__name__)
TEXT_METHODS = {k: v for k, v in METHODS.items() if k != "gnn"}  # a GNN alone cannot read the text
KG_PARTS = ("entities", "relations", "triples")


@dataclass
class TextClassificationArguments(ProtocolArguments, FineTuningArguments):
    method: list[str] = method_field(TEXT_METHODS)
    kg_dir: str = field(default=None, metadata={"help": "your knowledge graph (datasets_scripts/user_kg.py's format)"})
    train_file: str = field(default=None, metadata={"help": "JSON Lines: text, label, optional mentions"})
    validation_file: str = field(default=None, metadata={"help": "JSON Lines, as --train_file: chooses the settings"})
    test_file: str = field(default=None, metadata={"help": "JSON Lines, as --train_file: read once, at the end"})
    max_seq_length: int = field(default=128, metadata={"help": "tokens of a text"})
    fanouts: list[int] = field(
        default_factory=lambda: list(DEFAULT_FANOUTS), metadata={"help": "neighbours sampled per entity and hop"}
    )

    minimums: ClassVar[dict[str, int]] = {"max_seq_length": 8, "fanouts": 0}

    def __post_init__(self):
        super().__post_init__()
        for name in ("kg_dir", "train_file", "validation_file", "test_file"):
            if getattr(self, name) is None:
                raise ValueError(f"--{name} is required")


def parse_args(argv=None) -> TextClassificationArguments:
    return parse_fine_tuning_args(
        TextClassificationArguments,
        argv,
        __doc__.split("\n\n")[0],
        learning_rate=2e-5,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        output_dir="outputs/text-classification",
        step_budget=100,
    )


KEYS = ("text", "label", "mentions")


def read_examples(path, graph: KnowledgeGraph) -> list[dict]:
    """The examples of a JSON Lines file, each checked; `mentions` is None where the line has none. Labels are
    stripped of surrounding spaces (so "a" and "a " are one class); keys other than text, label and mentions are
    ignored, and counted in a warning (a misspelt `mentions` would otherwise drop the line's mentions unseen)."""
    examples, other_keys = [], Counter()
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise ValueError(f"{path} holds no example")
    for number, line in read_lines(path):  # a byte that is not UTF-8 is named with its file, line and column
        line = line.removeprefix("\ufeff") if number == 1 else line  # a byte-order mark, as some editors write
        if not line.strip():
            continue
        row = parse_json_line(path, number, line)
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise format_error(path, number, "expected an object with a non-empty string 'text'")
        label = row.get("label")
        if not isinstance(label, (str, int)) or isinstance(label, bool) or not str(label).strip():
            raise format_error(path, number, f"'label' must be a non-empty string or an integer, got {label!r}")
        other_keys.update(key for key in row if key not in KEYS)
        mentions = row.get("mentions")
        if mentions is not None:
            if not isinstance(mentions, list):
                raise format_error(path, number, f"'mentions' must be a list, got {type(mentions).__name__}")
            mentions = [_mention(m, i, row["text"], graph, path, number) for i, m in enumerate(mentions)]
            _check_overlaps(mentions, path, number)
        examples.append({"text": row["text"], "label": str(label).strip(), "mentions": mentions})
    if not examples:
        raise ValueError(f"{path} holds no example")
    if other_keys:
        logger.warning(f"{path}: ignored keys {dict(other_keys)} (an example's keys are {', '.join(KEYS)})")
    return examples


def _mention(mention, index, text, graph, path, number):
    if not isinstance(mention, dict) or not all(
        isinstance(mention.get(k), int) and not isinstance(mention.get(k), bool) for k in ("start", "end")
    ):
        raise format_error(path, number, f"mention {index} needs integer 'start' and 'end', got {mention!r}")
    if not 0 <= mention["start"] < mention["end"] <= len(text):
        raise format_error(path, number, f"mention {index} [{mention['start']}, {mention['end']}) is outside the text")
    if mention.get("entity") not in graph.entity_index:
        raise format_error(path, number, f"mention {index} names entity {mention.get('entity')!r}, not in --kg_dir")
    return (mention["start"], mention["end"], graph.entity_index[mention["entity"]])


def _check_overlaps(mentions, path, number):
    ordered = sorted(range(len(mentions)), key=lambda i: mentions[i][:2])
    for first, second in zip(ordered, ordered[1:]):
        if mentions[second][0] < mentions[first][1]:
            raise format_error(
                path,
                number,
                f"mentions {first} [{mentions[first][0]}, {mentions[first][1]}) and {second} "
                f"[{mentions[second][0]}, {mentions[second][1]}) overlap",
            )


def link_missing(examples: list[dict], args, graph: KnowledgeGraph) -> int:
    """Fill in the mentions of the examples that have none, with the `entity-linking` pipeline's finder and head;
    returns how many examples were linked."""
    missing = [example for example in examples if example["mentions"] is None]
    if not missing:
        return 0
    if not args.model_name_or_path:
        raise ValueError(
            f"{len(missing)} examples have no mentions: pass --model_name_or_path (a pre-trained JAKET) to link them, "
            "or give each example its mentions"
        )
    tokenizer, linker, memory = load_method(args, "jaket", JaketForPreTraining, graph)
    linker.eval()
    processor = JaketProcessor(tokenizer, graph, memory, max_length=args.max_seq_length)
    for begin in range(0, len(missing), args.per_device_eval_batch_size):
        batch = missing[begin : begin + args.per_device_eval_batch_size]
        with precision(args):
            linked = link_mentions(linker, processor, [example["text"] for example in batch])
        for example, mentions in zip(batch, linked):
            example["mentions"] = mentions  # those within max_seq_length tokens
    return len(missing)


@dataclass(kw_only=True)
class TextClassificationTask(FineTuningTask):
    """The three files' examples, their mentions linked to the graph, labelled by `labels`."""

    splits: dict[str, list[dict]]  # "train" / "validation" / "test": the examples of each file
    labels: list  # the training file's labels, sorted: label i is the classifier's output i

    model_class: ClassVar = JaketForSequenceClassification

    @property
    def label_ids(self) -> dict:
        return {label: i for i, label in enumerate(self.labels)}

    def model_config(self, args, method):
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)), "label2id": self.label_ids}

    def settings(self, args, start):
        label_ids = self.label_ids

        def encode(examples):
            mentions = [example["mentions"] if start.method != "lm" else [] for example in examples]
            encoding = tokenize_with_mentions(
                start.tokenizer,
                [e["text"] for e in examples],
                mentions,
                num_entities=self.graph.num_entities,
                max_length=args.max_seq_length,
            )
            columns = ("input_ids", "attention_mask", "mention_entity_ids", "mention_starts", "mention_ends")
            data = {key: encoding[key] for key in columns}
            return datasets.Dataset.from_dict({**data, "labels": [label_ids[e["label"]] for e in examples]})

        return {None: {name: encode(examples) for name, examples in self.splits.items()}}

    def trainer(self, args, start, data, training_args):
        return HeadRateTrainer(
            model=start.trained,
            args=training_args,
            train_dataset=data["train"],
            eval_dataset=data["validation"],
            data_collator=DataCollatorWithSubgraph(
                start.tokenizer.pad_token_id, self.graph, tuple(args.fanouts), args.seed
            ),
            compute_metrics=masked_accuracy,
            head_learning_rate=args.head_learning_rate,
        )

    def report(self, args, method, scores, chosen):
        test_accuracy = scores[None]["accuracy"]
        result = Result(
            "text-classification", "Text classification", "text", Path(args.test_file).name, "accuracy", test_accuracy
        )
        record = {
            "task": "text-classification",
            "method": method,
            "seed": args.seed,
            "accuracy": test_accuracy,
            "test_examples": len(self.splits["test"]),
            "labels": self.labels,
            "chosen": chosen[None],
        }
        return (
            f"{method} fine-tuned for text classification with the knowledge graph in {args.kg_dir}.",
            [result],
            record,
        )


def main(argv=None) -> list[dict]:
    """Fine-tune and test each of --method in turn; returns their result records."""
    args = parse_args(argv)
    command, repo_id = begin_fine_tuning(args, "examples/finetune_text_classification.py", argv)
    graph = KnowledgeGraph.from_records(
        *(datasets_scripts.load("user_kg", args.kg_dir, cache_dir=args.dataset_cache_dir)[k] for k in KG_PARTS),
        add_reverse=True,
    )
    splits = {name: read_examples(getattr(args, f"{name}_file"), graph) for name in ("train", "validation", "test")}
    labels = sorted({example["label"] for example in splits["train"]})
    if len(labels) < 2:
        raise ValueError(f"--train_file has one label ({labels[0]!r}): classification needs at least two")
    for name, examples in splits.items():
        unknown = sorted({example["label"] for example in examples} - set(labels))
        if unknown:
            raise ValueError(f"--{name}_file has labels {unknown} that no training example has")
    linked = sum(link_missing(examples, args, graph) for examples in splits.values())
    logger.info(f"{graph.num_entities} entities, {len(labels)} labels; mentions linked in {linked} examples")
    task = TextClassificationTask(
        splits=splits, labels=labels, graph=graph, dataset="text", command=command, repo_id=repo_id
    )
    return [run_protocol(args, method, task) for method in args.method]


if __name__ == "__main__":
    main()
