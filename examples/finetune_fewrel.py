"""Few-shot relation classification on FewRel (§4.2) in PAIR form, with `transformers.Trainer`.

PAIR (Gao et al. 2019) reads a query sentence and a support sentence together and says whether they express the
same relation; an N-way K-shot episode is answered by the class whose K support sentences score highest on
average. `JaketForSequenceClassification` reads the pair from its start token; the head and tail entities of both
sentences are mentions, merged with their knowledge-module embeddings. No relation embeddings are used (they would
leak the label), and no Wikidata graph is available offline: each entity is described by its name, so the
knowledge module sees isolated entities. Meta-train and meta-test relations are disjoint.

    python examples/finetune_fewrel.py --model_name_or_path jaket-base --method jaket --n_way 5 --k_shot 1
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from jaket_examples.finetuning import (
    METHODS,
    FineTuningArguments,
    WithEntityTable,
    accuracy_metric,
    load_method,
    method_field,
    parse_fine_tuning_args,
    precision,
    push_results,
    save_fine_tuned,
    save_results,
    training_arguments,
)
from jaket_examples.hub import create_hub_repo
from jaket_examples.model_card import Result
from tqdm.auto import tqdm
from transformers import Trainer

import datasets_scripts
from modeling_jaket import JaketForSequenceClassification, KnowledgeGraph
from tokenization import DataCollatorWithMentions, tokenize_with_mentions


logger = logging.getLogger(__name__)
FEWREL_METHODS = {k: v for k, v in METHODS.items() if k != "gnn"}  # a GNN alone cannot read the sentences


@dataclass
class FewRelArguments(FineTuningArguments):
    method: list[str] = method_field(FEWREL_METHODS)
    n_way: int = field(default=5, metadata={"help": "relations an episode tells apart (N)"})
    k_shot: int = field(default=1, metadata={"help": "labelled instances of each relation in an episode (K)"})
    num_test_relations: int | None = field(default=None, metadata={
        "help": "relations kept for meta-testing, at least N (default: 5/8 of the file's, 10 of 16)"})
    train_episodes: int = field(default=1000, metadata={"help": "meta-training episodes turned into PAIR pairs"})
    test_episodes: int = field(default=500, metadata={"help": "meta-test episodes scored"})
    max_seq_length: int = field(default=256, metadata={"help": "tokens of a (query, support) pair"})

    data_subfolder: ClassVar[str] = "fewrel"  # val_wiki.json and pid2name.json


def parse_args(argv=None) -> FewRelArguments:
    return parse_fine_tuning_args(FewRelArguments, argv, __doc__.split("\n\n")[0], learning_rate=2e-5,
                                  num_train_epochs=1, per_device_train_batch_size=16, per_device_eval_batch_size=64,
                                  output_dir="outputs/fewrel")  # fmt: skip


def entity_graph(instances) -> KnowledgeGraph:
    """Every head and tail entity of FewRel, described by its name (the text of its first mention); no triples."""
    names = {}
    for split in instances.values():
        for row in split:
            for mention in row["mentions"]:
                names.setdefault(mention["entity"], row["text"][mention["start"] : mention["end"]])
    ids = sorted(names)
    return KnowledgeGraph([], [], [], len(ids), 0, entity_names=[names[q] for q in ids],
                          entity_descriptions=[names[q] for q in ids], entity_ids=ids, relation_names=[],
                          relation_descriptions=[])  # fmt: skip


def pair_text(query, support, separator):
    """One text holding the query, the separator token, then the support sentence, with both sentences' mentions."""
    offset = len(query["text"]) + len(separator) + 2
    text = f"{query['text']} {separator} {support['text']}"
    mentions = [(m["start"], m["end"], m["entity"]) for m in query["mentions"]]
    mentions += [(m["start"] + offset, m["end"] + offset, m["entity"]) for m in support["mentions"]]
    return text, mentions


def without_overlaps(mentions):
    """Head and tail occasionally share words in FewRel; keep the first of two overlapping mentions."""
    kept = []
    for mention in sorted(mentions):
        if not kept or mention[0] >= kept[-1][1]:
            kept.append(mention)
    return kept


def encode_pairs(tokenizer, graph, queries, supports, max_length, use_mentions=True):
    texts, mentions = [], []
    for query, support in zip(queries, supports):
        text, spans = pair_text(query, support, tokenizer.sep_token)
        texts.append(text)
        mentions.append(without_overlaps(spans) if use_mentions else [])
    return tokenize_with_mentions(tokenizer, texts, mentions, entity_vocab=graph.entity_index, max_length=max_length)


@dataclass
class PairCollator:
    """Pads a batch of pairs and adds the subgraph of their mentioned entities (no edges, no relations)."""

    pad_token_id: int

    def __call__(self, features):
        batch = DataCollatorWithMentions(self.pad_token_id)(features)
        mentioned = batch["mention_entity_ids"][batch["mention_entity_ids"] >= 0].unique()
        batch["subgraph_entity_ids"] = mentioned if mentioned.numel() else torch.zeros(1, dtype=torch.long)
        batch["edge_index"] = torch.empty(2, 0, dtype=torch.long)
        batch["edge_type"] = torch.empty(0, dtype=torch.long)
        return batch


def evaluate_episodes(model, episodes, tokenizer, graph, args, use_mentions):
    """Accuracy of answering each query by the class whose support sentences score highest (mean 'same' margin)."""
    collator = PairCollator(tokenizer.pad_token_id)
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
        per_class = torch.zeros(len(episode["queries"]), args.n_way).index_add_(1, labels, margins) / args.k_shot
        predictions += per_class.argmax(dim=1).tolist()
        references += [q["label"] for q in episode["queries"]]
    return accuracy_metric().compute(predictions=predictions, references=references)["accuracy"]


def main(argv=None) -> list[dict]:
    """Fine-tune and test each of --method in turn on one set of episodes; returns their result records."""
    command = ["python", "examples/finetune_fewrel.py", *(sys.argv[1:] if argv is None else argv)]
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    repo_id = create_hub_repo(args)
    name = f"{args.n_way}-{args.k_shot}"
    common = dict(cache_dir=args.dataset_cache_dir, n_way=args.n_way, k_shot=args.k_shot, seed=args.seed,
                  train_episodes=args.train_episodes, test_episodes=args.test_episodes,
                  num_test_relations=args.num_test_relations)  # fmt: skip
    pairs = datasets_scripts.load("fewrel", args.data_dir, config_name=f"pair-{name}", **common)["train"]
    episodes = datasets_scripts.load("fewrel", args.data_dir, config_name=f"episodes-{name}", **common)["test"]
    graph = entity_graph(datasets_scripts.load("fewrel", args.data_dir, config_name="instances", cache_dir=args.dataset_cache_dir))
    return [run_method(args, method, pairs, episodes, graph, command, repo_id) for method in args.method]


def run_method(args, method, pairs, episodes, graph, command, repo_id) -> dict:
    name = f"{args.n_way}-{args.k_shot}"
    tokenizer, model, entity_table, _ = load_method(args, method, JaketForSequenceClassification, graph, num_labels=2)
    use_mentions = method != "lm"
    wrapped = WithEntityTable(model, entity_table, torch.empty(0, model.config.hidden_size))

    def encode(batch):
        encoding = encode_pairs(tokenizer, graph, batch["query"], batch["support"], args.max_seq_length, use_mentions)
        return {**{k: encoding[k] for k in ("input_ids", "attention_mask", "mention_entity_ids", "mention_starts",
                                             "mention_ends")}, "labels": batch["label"]}  # fmt: skip

    train = pairs.map(encode, batched=True, remove_columns=pairs.column_names, keep_in_memory=True)
    training_args = training_arguments(args, f"{method}-{name}", ["labels"], remove_unused_columns=False)
    trainer = Trainer(model=wrapped, args=training_args, train_dataset=train,
                      data_collator=PairCollator(tokenizer.pad_token_id))  # fmt: skip
    trainer.train()
    with precision(args, trainer.args.device.type):
        accuracy = evaluate_episodes(wrapped, episodes, tokenizer, graph, args, use_mentions)

    setting = f"{args.n_way}-way {args.k_shot}-shot"
    folder = Path(args.output_dir) / f"{method}-{name}-seed{args.seed}"
    result = Result("text-classification", f"Few-shot relation classification, {setting} (PAIR)", "fewrel",
                    f"FewRel 1.0, {len(episodes)} episodes of the meta-test relations", "accuracy", accuracy)  # fmt: skip
    save_fine_tuned(args, method, folder, model, tokenizer, command, f"{method} fine-tuned as PAIR for FewRel, {setting}.",
                    "fewrel", [result], wrapped.entity_table, wrapped.relation_table, graph)  # fmt: skip
    push_results(args, method, repo_id, folder)
    record = {"task": "fewrel", "setting": setting, "method": method,
              "seed": args.seed, "accuracy": accuracy, "test_episodes": len(episodes)}  # fmt: skip
    return save_results(args, f"{method}-{name}", record)


if __name__ == "__main__":
    main()
