"""Knowledge-graph question answering on MetaQA (§4.3) with `transformers.Trainer`.

The question's embedding is LM2's start-token output, with the topic entity's mention merged with its
knowledge-module embedding; the answer is the candidate (every entity within k hops of the topic) whose embedding
scores highest against a projection of the question embedding: its E^KM, the knowledge module run once a batch over
every candidate of the batch with `--candidate_fanouts` of its neighbours (the default, chosen on validation), or
with `--candidate_embeddings memory` its context embedding E^(0) from the memory, which is also what the LM alone
(no knowledge module) scores. Training maximises the probability of the answers among the candidates, on the
training questions that have an answer among them. `--kg_setting half` drops half the triples (KG-50%). Hits@1 is
reported on all test questions and on those whose answer is reachable in the graph.

The protocol of every fine-tuning script: `--step_budget` steps, and a grid of learning rates (`--learning_rate_grid`
times the method's own; the question projection at `--head_learning_rate`) by steps (`--num_evaluations` points)
chosen on hits@1 over `--validation_share` of the training questions; the test questions are answered once.

    python examples/finetune_metaqa.py --model_name_or_path jaket-base --method jaket --hops 1
"""

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from datasets import Dataset
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm
from transformers.modeling_outputs import ModelOutput

import datasets_scripts
from jaket_training.data import encoding_fingerprint
from jaket_training.finetuning import (
    METHODS,
    FineTuningArguments,
    FineTuningTask,
    ProtocolArguments,
    ScoredTrainer,
    WithEntityMemory,
    begin_fine_tuning,
    method_field,
    parse_fine_tuning_args,
    precision,
    pretrained_head,
    pretrained_path,
    run_protocol,
)
from jaket_training.metrics import hits_at_1
from jaket_training.model_card import Result
from modeling_jaket import EntityContextMemory, JaketModel, KnowledgeGraph
from modeling_jaket.graph import DEFAULT_FANOUTS
from modeling_jaket.modeling_jaket import JaketMaskedEntityHead
from tokenization import DataCollatorWithMentions, tokenize_with_mentions

logger = logging.getLogger(__name__)
METAQA_METHODS = {k: v for k, v in METHODS.items() if k != "gnn"}  # a GNN alone cannot read the question


@dataclass
class MetaQAArguments(ProtocolArguments, FineTuningArguments):
    method: list[str] = method_field(METAQA_METHODS)
    hops: int = field(default=1, metadata={"help": "k: the questions of the data directory's k-hop/ folder"})
    kg_setting: str = field(
        default="full",
        metadata={
            "choices": ["full", "half"],
            "help": "the whole KB (KG-Full) or a seeded half of its triples (KG-50%%)",
        },
    )
    fanouts: list[int] = field(
        default_factory=lambda: list(DEFAULT_FANOUTS), metadata={"help": "neighbours sampled per entity and hop"}
    )
    max_train_questions: int | None = field(
        default=None, metadata={"help": "train on this many dev questions (seeded)"}
    )
    max_test_questions: int | None = field(
        default=None, metadata={"help": "test on the first this many test questions"}
    )
    max_train_candidates: int = field(default=256, metadata={"help": "answers plus sampled other candidates"})
    candidate_embeddings: str = field(
        default="knowledge_module",
        metadata={
            "choices": ["knowledge_module", "memory"],
            "help": "what the question is scored against: each candidate's E^KM, the knowledge module run over the "
            "batch's candidates and --candidate_fanouts of their neighbours (so the graph and a trained module reach "
            "the answer), or its E^(0) from the fixed memory; the LM alone, which has no module, always scores E^(0)",
        },
    )
    candidate_fanouts: list[int] = field(
        default_factory=lambda: [5],
        metadata={"help": "neighbours sampled per candidate and hop for --candidate_embeddings knowledge_module"},
    )
    question_head: str = field(
        default="linear",
        metadata={
            "choices": ["linear", "masked_entity"],
            "help": "what maps the question to the candidates' space: a fresh linear layer, or the masked-entity "
            "head's form g(x) = ReLU(x W1) W2, started from the pre-trained model's where it has one (JAKET's is "
            "trained by L_e to score entities against the memory, the very form of this task; a method from the "
            "backbone starts it fresh)",
        },
    )

    data_subfolder: ClassVar[str] = "metaqa"
    minimums: ClassVar[dict[str, int]] = {
        "hops": 1,
        "max_train_questions": 1,
        "max_test_questions": 1,
        "max_train_candidates": 2,
        "fanouts": 0,
        "candidate_fanouts": 0,
    }


def parse_args(argv=None) -> MetaQAArguments:
    return parse_fine_tuning_args(
        MetaQAArguments,
        argv,
        __doc__.split("\n\n")[0],
        learning_rate=5e-5,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        output_dir="outputs/metaqa",
    )


class KGQuestionAnswering(WithEntityMemory):
    """Scores each candidate entity by <W q, E_candidate>, q = LM2's start-token output, E_candidate its E^(0) from the
    memory or, given the candidates' subgraph (`candidate_subgraph_entity_ids`, `candidate_edge_index`,
    `candidate_edge_type`, and each candidate's row in it, `candidate_positions`), its E^KM over that subgraph."""

    def __init__(self, model: JaketModel, memory: EntityContextMemory, question_projection: nn.Module | None = None):
        super().__init__(model, memory)
        hidden = model.config.hidden_size
        self.question_projection = question_projection or nn.Linear(hidden, hidden)

    def forward(
        self,
        candidate_ids,
        answer_mask=None,
        subgraph_entity_ids=None,
        candidate_subgraph_entity_ids=None,
        candidate_edge_index=None,
        candidate_edge_type=None,
        candidate_positions=None,
        **text,
    ):
        graph = {}
        if subgraph_entity_ids is not None:
            graph = dict(
                subgraph_entity_ids=subgraph_entity_ids,
                relation_embeddings=self.memory.relation_embeddings,
                entity_init_embeddings=self.memory.lookup(subgraph_entity_ids),
            )
        question = self.model(**text, **graph).last_hidden_state[:, 0]
        if candidate_subgraph_entity_ids is None:
            candidates = self.memory.lookup(candidate_ids.clamp(min=0))  # [batch, candidates, hidden]
        else:
            knowledge = self.model(
                subgraph_entity_ids=candidate_subgraph_entity_ids,
                edge_index=candidate_edge_index,
                edge_type=candidate_edge_type,
                relation_embeddings=self.memory.relation_embeddings,
                entity_init_embeddings=self.memory.lookup(candidate_subgraph_entity_ids),
            ).entity_embeddings
            candidates = knowledge[candidate_positions.clamp(min=0)]
        logits = torch.einsum("bh,bch->bc", self.question_projection(question), candidates)
        logits = logits.masked_fill(candidate_ids < 0, torch.finfo(logits.dtype).min)
        loss = answer_loss(logits, answer_mask) if answer_mask is not None else None
        return ModelOutput(loss=loss, logits=logits)


def answer_loss(logits, answer_mask):
    """-log of the probability of the answers among the candidates, averaged over the questions that have an answer
    among them: a question without one has nothing to learn from, and its -log 0 would swamp the mean."""
    answerable = answer_mask.any(dim=-1)
    if not answerable.any():
        return logits.sum() * 0.0
    logits, answer_mask = logits[answerable], answer_mask[answerable]
    answers = logits.masked_fill(~answer_mask.bool(), torch.finfo(logits.dtype).min)
    return (torch.logsumexp(logits, dim=-1) - torch.logsumexp(answers, dim=-1)).mean()


@dataclass
class QuestionCollator:
    """Pads questions, samples the topic entities' subgraph, and lays out candidates with an answer mask; with
    `candidate_fanouts`, also the subgraph of every candidate of the batch (the candidates first, each once) and each
    candidate's row in it, for scoring with E^KM."""

    pad_token_id: int
    graph: KnowledgeGraph | None
    fanouts: tuple = DEFAULT_FANOUTS
    max_candidates: int | None = None
    seed: int = 0
    candidate_fanouts: tuple | None = None

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, features):
        text_keys = ("input_ids", "attention_mask", "mention_entity_ids", "mention_starts", "mention_ends")
        batch = DataCollatorWithMentions(self.pad_token_id)([{k: f[k] for k in text_keys} for f in features])
        candidate_lists = []
        for feature in features:
            candidates, answers = feature["candidates"], set(feature["answer_ids"])
            if self.max_candidates and len(candidates) > self.max_candidates:
                others = [c for c in candidates if c not in answers]
                keep = torch.randperm(len(others), generator=self.generator)[
                    : max(0, self.max_candidates - len(answers))
                ]
                candidates = sorted(answers & set(candidates)) + [others[i] for i in keep.tolist()]
            candidate_lists.append(candidates or [0])
        width = max(len(c) for c in candidate_lists)
        batch["candidate_ids"] = torch.tensor([c + [-1] * (width - len(c)) for c in candidate_lists])
        batch["answer_mask"] = torch.tensor(
            [[c in set(f["answer_ids"]) for c in row] for f, row in zip(features, batch["candidate_ids"].tolist())]
        )
        if self.graph is None:
            for key in text_keys[2:]:
                batch.pop(key)
        else:
            topics = batch["mention_entity_ids"][batch["mention_entity_ids"] >= 0]
            subgraph = self.graph.sample_subgraph(topics, self.fanouts, self.generator)
            batch.update(subgraph.inputs())
        if self.candidate_fanouts is not None:
            candidate_ids = batch["candidate_ids"]
            distinct = torch.unique(candidate_ids[candidate_ids >= 0])  # sorted: the subgraph's first rows, in order
            subgraph = self.graph.sample_subgraph(distinct, self.candidate_fanouts, self.generator)
            batch.update({f"candidate_{k}": v for k, v in subgraph.inputs().items()})
            rows = torch.searchsorted(distinct, candidate_ids.clamp(min=0))
            batch["candidate_positions"] = torch.where(candidate_ids >= 0, rows, -1)
        return batch


def prepare(questions, tokenizer, graph):
    entity_index = graph.entity_index

    def encode(batch):
        mentions = [
            [(m["start"], m["end"], m["entity"]) for m in row if m["entity"] in entity_index]
            for row in batch["mentions"]
        ]
        encoding = tokenize_with_mentions(tokenizer, batch["question"], mentions, entity_vocab=entity_index)
        answer_ids = [[entity_index[a] for a in answers if a in entity_index] for answers in batch["answers"]]
        return {
            **{
                k: encoding[k]
                for k in ("input_ids", "attention_mask", "mention_entity_ids", "mention_starts", "mention_ends")
            },
            "answer_ids": answer_ids,
        }

    return questions.map(
        encode,
        batched=True,
        keep_in_memory=True,
        remove_columns=[c for c in questions.column_names if c not in ("candidates", "reachable")],
        new_fingerprint=encoding_fingerprint(questions, tokenizer, graph),
    )


def score_questions(model, questions, collator, batch_size) -> dict:
    """hits@1 of the model's top candidate over `questions`, and over those whose answer is reachable."""
    device = next(model.parameters()).device
    model.eval()
    top = []
    for begin in tqdm(range(0, len(questions), batch_size), desc="test questions", leave=False):
        features = [questions[i] for i in range(begin, min(begin + batch_size, len(questions)))]
        batch = collator(features)
        batch.pop("answer_mask")
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.cpu()
        best = batch["candidate_ids"].gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1)
        top += best.tolist()
    answers, reachable = list(questions["answer_ids"]), list(questions["reachable"])
    reached = [i for i, r in enumerate(reachable) if r]
    return {
        "hits@1": hits_at_1(top, answers),
        "hits@1_reachable": hits_at_1([top[i] for i in reached], [answers[i] for i in reached]) if reached else None,
    }


def main(argv=None) -> list[dict]:
    """Fine-tune and test each of --method in turn on one loaded KB; returns their result records."""
    args = parse_args(argv)
    command, repo_id = begin_fine_tuning(args, "examples/finetune_metaqa.py", argv)
    kg = datasets_scripts.load("metaqa", args.data_dir, cache_dir=args.dataset_cache_dir, kg_setting=args.kg_setting)
    graph = KnowledgeGraph.from_records(
        kg["entities"],
        kg["relations"],
        kg["triples"],
        add_reverse=True,
        category_names=kg["entities"].features["category"].names,
    )
    questions = datasets_scripts.load(
        "metaqa",
        args.data_dir,
        config_name=f"{args.hops}-hop",
        cache_dir=args.dataset_cache_dir,
        kg_setting=args.kg_setting,
    )
    train, test = questions["validation"], questions["test"]  # no training questions exist: train on dev
    if args.max_train_questions:
        train = train.shuffle(seed=args.seed).select(range(min(args.max_train_questions, len(train))))
    if args.max_test_questions:
        test = test.select(range(min(args.max_test_questions, len(test))))
    answerable = train.filter(lambda q: q["reachable"], keep_in_memory=True)
    if len(answerable) < 2:
        raise ValueError(
            f"{len(answerable)} training question with an answer within {args.hops} hops: carving a "
            "validation split to choose the settings on needs at least two"
        )
    split = answerable.train_test_split(test_size=args.validation_share, seed=args.seed)  # validation from training
    logger.info(
        "training on %d and choosing on %d of %d questions: the others have no answer within %d hops of their "
        "topic entity",
        len(split["train"]),
        len(split["test"]),
        len(train),
        args.hops,
    )
    task = MetaQATask(
        train_questions=split["train"],
        validation_questions=split["test"],
        test_questions=test,
        graph=graph,
        dataset="metaqa",
        command=command,
        repo_id=repo_id,
    )
    return [run_protocol(args, method, task) for method in args.method]


def candidate_embeddings(args, method: str) -> str:
    """What `method`'s candidates are scored by: --candidate_embeddings, except for the LM alone, which has no
    knowledge module and scores their E^(0)."""
    return "memory" if method == "lm" else args.candidate_embeddings


def question_projection(args, method: str, config) -> nn.Module | None:
    """--question_head masked_entity: g(x) as the pre-trained model left it (its `masked_entity_head`), or fresh for a
    method that starts from the backbone; None for the default linear layer."""
    if args.question_head == "linear":
        return None
    head = JaketMaskedEntityHead(config)
    if (pretrained := pretrained_path(args, method)) is not None:
        head.load_state_dict(pretrained_head(pretrained, "masked_entity_head"))
    return head


@dataclass(kw_only=True)
class MetaQATask(FineTuningTask):
    """The questions with an answer within k hops of their topic entity, trained on and chosen on (a share of the
    dev questions each), and the test questions; the score is hits@1 (see the module's docstring)."""

    train_questions: Dataset
    validation_questions: Dataset
    test_questions: Dataset

    model_class: ClassVar = JaketModel
    metric: ClassVar = "hits@1"
    label_names: ClassVar = ("answer_mask",)

    def name(self, args, method):
        return f"{method}-{args.hops}hop-{args.kg_setting}"

    def wrap(self, args, method, model, memory):
        return KGQuestionAnswering(model, memory, question_projection(args, method, model.config))

    def settings(self, args, start):
        splits = {"train": self.train_questions, "validation": self.validation_questions, "test": self.test_questions}
        return {None: {name: prepare(questions, start.tokenizer, self.graph) for name, questions in splits.items()}}

    def collator(self, args, start, max_candidates=None) -> QuestionCollator:
        graph = self.graph if start.method != "lm" else None
        candidate_fanouts = None
        if candidate_embeddings(args, start.method) == "knowledge_module":
            candidate_fanouts = tuple(args.candidate_fanouts)
        return QuestionCollator(
            start.tokenizer.pad_token_id, graph, tuple(args.fanouts), max_candidates, args.seed, candidate_fanouts
        )

    def answer(self, args, start, model, questions) -> dict:
        """hits@1 over every candidate of every question (and over the questions whose answer is reachable)."""
        with precision(args, next(model.parameters()).device.type):
            return score_questions(model, questions, self.collator(args, start), args.per_device_eval_batch_size)

    def trainer(self, args, start, data, training_args):
        return ScoredTrainer(
            model=start.trained,
            args=training_args,
            train_dataset=data["train"],
            eval_dataset=data["validation"],
            data_collator=self.collator(args, start, args.max_train_candidates),
            head_learning_rate=args.head_learning_rate,
            head_names=("question_projection",),
            score=lambda model, questions: self.answer(args, start, model, questions)["hits@1"],
        )

    def test(self, args, start, data, trainer):
        return self.answer(args, start, start.trained, data["test"])

    def report(self, args, method, scores, chosen):
        scores = scores[None]
        setting = f"{args.hops}-hop KG-{'Full' if args.kg_setting == 'full' else '50%'}"
        results = [
            Result(
                "question-answering",
                f"KG question answering, {setting}",
                "metaqa",
                f"MetaQA, first {len(self.test_questions)} test questions{subset}",
                "hits@1",
                scores[key],
            )
            for key, subset in (("hits@1", ""), ("hits@1_reachable", ", answer reachable"))
            if scores[key] is not None
        ]
        summary = (
            f"{method} fine-tuned for MetaQA, {setting}: the question is LM2's start token, projected by "
            "`question_projection.safetensors` and scored against each candidate's "
            + (
                "memory embedding E^(0)."
                if candidate_embeddings(args, method) == "memory"
                else "knowledge-module embedding E^KM."
            )
        )
        record = {
            "task": "metaqa",
            "setting": setting,
            "method": method,
            "seed": args.seed,
            "candidate_embeddings": candidate_embeddings(args, method),
            "test_questions": len(self.test_questions),
            **scores,
            "chosen": chosen[None],
        }
        return summary, results, record

    def save(self, args, start, folder, summary, results):
        super().save(args, start, folder, summary, results)
        save_file(start.trained.question_projection.state_dict(), folder / "question_projection.safetensors")


if __name__ == "__main__":
    main()
