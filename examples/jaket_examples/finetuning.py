"""What the fine-tuning scripts share: the paper's baselines (§4.1), the initial entity embeddings each one uses,
and the model wrapper that looks them up for the `Trainer`."""

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, HfArgumentParser, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.utils import logging

import modeling_jaket
from jaket_examples.metrics import accuracy
from modeling_jaket import EntityContextMemory, KnowledgeGraph
from modeling_jaket.graph import DEFAULT_FANOUTS
from modeling_jaket.memory import MEMORY_WEIGHTS_NAME
from tokenization import DataCollatorWithMentions, JaketProcessor, description_inputs

from .data import check_saved_files, default_backbone, default_data_dir
from .model_card import Result, write_model_card
from .push_to_hub import push_folder

logger = logging.get_logger(__name__)

METHODS = {
    "lm": "the language model alone, no knowledge module: the un-pretrained LM fine-tuned on the task's text (for "
    "entity classification, each entity's description)",
    "lm_gnn": "LM + GNN: the knowledge module over a random (fixed) memory",
    "lm_gnn_m": "LM + GNN + M: the knowledge module over a memory computed by the un-pretrained LM",
    "gnn": "GNN: the knowledge module alone over trainable, randomly initialised entity embeddings (no text)",
    "jaket": "JAKET: the pre-trained model, its memory recomputed from the descriptions by its pre-trained LM1",
    "lm_mlm": "the control for what pre-training's text alone gives: LM+GNN+M over a language model continued with "
    "L_t alone on the pre-training text, with no knowledge module (examples/pretrain.py --losses masked_lm; "
    "--mlm_control_path)",
}
# method -> the flag naming the examples/pretrain.py output it starts from; the others start from --backbone
PRETRAINED_PATHS = {"jaket": "model_name_or_path", "lm_mlm": "mlm_control_path"}


def method_field(methods: dict[str, str]):
    """`--method`: one or more of `methods` (name -> what it is), run one after another in one process."""
    listing = "; ".join(f"{name}: {text}" for name, text in methods.items())
    return field(
        default_factory=lambda: ["jaket"],
        metadata={
            "nargs": "+",
            "choices": sorted(methods),
            "help": "one or more methods, run one after another in "
            f"one process that loads the data and graph once; each writes its own results, model and card. {listing}",
        },
    )


@dataclass
class FineTuningArguments(TrainingArguments):
    """transformers' `TrainingArguments` (so every `Trainer` flag works: --bf16, --gradient_accumulation_steps,
    --report_to, --push_to_hub, ...) and what every fine-tuning script adds. A script subclasses it with its methods,
    its own flags and its defaults (`parse_fine_tuning_args`)."""

    method: list[str] = method_field(METHODS)
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "output folder of examples/pretrain.py (the jaket methods)"}
    )
    backbone: str | None = field(
        default=None, metadata={"help": "RoBERTa/BERT checkpoint for the baselines (default: all-MiniLM-L6-v2)"}
    )
    mlm_control_path: str | None = field(
        default=None, metadata={"help": "output folder of examples/pretrain.py --losses masked_lm (--method lm_mlm)"}
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "the task's data folder (default: under ../shared/data)"}
    )
    dataset_cache_dir: str | None = field(
        default=None, metadata={"help": "where datasets keeps prepared data (its default)"}
    )
    memory_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "keep the tables LM1 computes from the descriptions here, under a key of LM1's weights, "
            "the descriptions and the code, so that runs that share them encode them once"
        },
    )

    data_subfolder: ClassVar[str] = ""  # the task's folder under ../shared/data
    # method -> the flag naming the examples/pretrain.py output it needs, besides the jaket methods' own
    pretrained_flags: ClassVar[dict[str, str]] = PRETRAINED_PATHS
    # the script's own numeric flags -> their least value, checked at parse time (None: the flag is off)
    minimums: ClassVar[dict[str, int]] = {}

    def __post_init__(self):
        super().__post_init__()
        check_trainer_ranges(self)
        for name, least in self.minimums.items():
            value = getattr(self, name)
            values = value if isinstance(value, list) else [value]
            if value is not None and not all(v >= least for v in values):
                raise ValueError(
                    f"--{name} must be >= {least}{' each' if isinstance(value, list) else ''}, got {value}"
                )
        helps = {f.name: f.metadata.get("help") for f in fields(self)}
        for method in self.method:
            flag = "model_name_or_path" if method.startswith("jaket") else self.pretrained_flags.get(method)
            if flag and not getattr(self, flag):
                raise ValueError(f"--method {method} needs --{flag}, the {helps[flag]}")
        for flag in {"model_name_or_path", *self.pretrained_flags.values()}:
            value = getattr(self, flag, None)
            # a path no Hub repo id can be (absolute, relative, or two folders deep) that names no folder: said here,
            # where transformers would answer that it is no valid repo id
            local = value is not None and (value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value)
            if local and not Path(value).expanduser().is_dir():
                raise ValueError(f"--{flag} {value}: no such folder (the {helps.get(flag, 'folder')})")
        self.backbone = self.backbone or default_backbone()
        self.data_dir = self.data_dir or str(Path(default_data_dir()) / self.data_subfolder)


# `TrainingArguments` fields that transformers accepts out of range, where the value would silently train nothing
# or train wrong: each field's test and its range, checked at parse time.
TRAINER_RANGES = {
    "learning_rate": (lambda v: v > 0, "> 0"),
    "per_device_train_batch_size": (lambda v: v >= 1, ">= 1"),
    "per_device_eval_batch_size": (lambda v: v >= 1, ">= 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, ">= 1"),
    "num_train_epochs": (lambda v: v > 0, "> 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "max_grad_norm": (lambda v: v >= 0, ">= 0 (0: no clipping)"),
    "adam_beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adam_beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adam_epsilon": (lambda v: v > 0, "> 0"),
    "label_smoothing_factor": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "max_steps": (lambda v: v == -1 or v >= 1, ">= 1, or -1 (the epochs decide)"),
}


def check_trainer_ranges(args) -> None:
    for name, (test, wanted) in TRAINER_RANGES.items():
        if not test(getattr(args, name)):
            raise ValueError(f"--{name} must be {wanted}, got {getattr(args, name)}")


# What the fine-tuning scripts change of `TrainingArguments`' defaults: no checkpoints (each run saves its model once,
# at the end), AdamW's weight decay 0.01 as in pre-training, no tracker unless asked, the CPU where there is no GPU.
TRAINER_DEFAULTS = dict(
    save_strategy="no",
    eval_strategy="no",
    weight_decay=0.01,
    report_to="none",
    logging_steps=50,
    use_cpu=not torch.cuda.is_available(),
)


def parse_fine_tuning_args(arguments_class, argv=None, description: str = "", **defaults):
    """Parse `argv` into `arguments_class` (a `FineTuningArguments`) with `HfArgumentParser`; `defaults` (the
    script's learning rate, epochs, batch size, output folder) go over `TRAINER_DEFAULTS`."""
    parser = HfArgumentParser(arguments_class, description=description)
    parser.set_defaults(**{**TRAINER_DEFAULTS, **defaults})
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def training_arguments(args, run_name: str, label_names: list[str], **overrides) -> TrainingArguments:
    """The `Trainer`'s settings of one run: the parsed ones, in `<output_dir>/<run_name>`. The scripts push their
    results themselves (`push_results`), so the `Trainer` does not. A script whose collator builds the model's inputs
    from raw columns (an entity id, a question's candidates) passes `remove_unused_columns=False`: those columns are no
    model input, and `Trainer` would drop them first."""
    settings = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init}
    settings.update(output_dir=str(Path(args.output_dir) / run_name), label_names=label_names, push_to_hub=False)
    return TrainingArguments(**{**settings, **overrides})


def precision(args, device_type: str = "cpu"):
    """--bf16 / --fp16 for what runs outside the `Trainer` (LM1 over the descriptions, where the model is loaded on
    the CPU; a script's own test loop): autocast, as the `Trainer` applies it to training and evaluation."""
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def save_fine_tuned(
    args,
    method: str,
    folder,
    model,
    tokenizer,
    command: list[str],
    summary: str,
    dataset: str,
    results: list[Result],
    memory: EntityContextMemory | None = None,
    graph: KnowledgeGraph | None = None,
):
    """Save a fine-tuned model where `from_pretrained` finds it, with its tokenizer, the entity context memory it
    read, the graph, and a model card of its results."""
    folder = Path(folder)
    model.save_pretrained(folder)
    JaketProcessor(tokenizer, graph, memory).save_pretrained(folder)  # the tokenizer, the memory, graph/
    base = args.model_name_or_path if method.startswith("jaket") else pretrained_path(args, method) or args.backbone
    name, cls = args.hub_model_id or folder.name, type(model).__name__
    usage = f'from modeling_jaket import {cls}\nmodel = {cls}.from_pretrained("{name}")'
    if memory is not None:
        usage += f'\nmemory = EntityContextMemory.from_pretrained("{name}")  # the E^(0) table it read'
    write_model_card(folder, name, summary, base, [dataset], results, command, usage)


def push_results(args, method: str, repo_id: str | None, folder) -> None:
    """With --push_to_hub, upload `folder` (a fine-tuned model and its card) to the repo created at the start."""
    push_folder(repo_id, folder, args.hub_token, f"{method}, seed {args.seed}")


def save_results(args, name: str, record: dict, metric: str) -> dict:
    """Write `record`, with the `metric` its figures are (`"accuracy"`, `"hits@1"`), to
    `<output_dir>/results-<name>-seed<seed>.json` (what results_table.py reads) and print it."""
    record = {"metric": metric, **record}
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / f"results-{name}-seed{args.seed}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))
    return record


def load_model(method: str, model_class, pretrained: str | None, backbone: str, **config):
    """JAKET from a pre-training output folder; the baselines from the backbone with fresh knowledge modules."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if method in PRETRAINED_PATHS:
        if not pretrained:
            raise ValueError(
                f"--method {method} needs --{PRETRAINED_PATHS[method]}, the output folder of examples/pretrain.py"
            )
        if Path(pretrained).is_dir():
            check_saved_files(pretrained)
        return model_class.from_pretrained(pretrained, **config)
    if method == "lm":
        config["km_num_layers"] = 0
    return model_class.from_backbone(backbone, **config)


def initial_memory(
    method, model, tokenizer, graph: KnowledgeGraph, seed=0, batch_size=64, max_length=64, cache_dir=None
) -> EntityContextMemory:
    """The entity context memory `method` starts from: E^(0) for every entity and R for every relation, from the
    descriptions (LM methods and JAKET, `EntityContextMemory.from_descriptions`), or random (`lm_gnn`, `gnn`).

    With `cache_dir`, a memory computed from descriptions is saved there (`save_pretrained`) under a key of
    everything it depends on (LM1's weights, the tokenized descriptions, the batch size, the modeling code, torch's
    version): the JAKET methods of one pre-trained model, or the baselines of one backbone, then encode the
    descriptions once. A damaged cache is computed again, with a warning."""
    if method in ("lm_gnn", "gnn"):
        generator = torch.Generator().manual_seed(seed)
        memory = EntityContextMemory.from_config(model.config, graph.num_entities, graph.num_relations)
        hidden = model.config.hidden_size
        memory.update(
            torch.randn(graph.num_entities, hidden, generator=generator),
            torch.randn(graph.num_relations, hidden, generator=generator),
        )
        return memory
    folder = None
    if cache_dir is not None:
        key = memory_key(model, *description_inputs(tokenizer, graph, max_length), batch_size)
        folder = Path(cache_dir) / f"memory-{key}"
        if (folder / MEMORY_WEIGHTS_NAME).is_file():
            try:
                memory = EntityContextMemory.from_pretrained(folder)
                if (memory.num_entities, memory.num_relations) == (graph.num_entities, graph.num_relations):
                    return memory
                problem = f"has {memory.num_entities} entity rows for {graph.num_entities} entities"
            except ValueError as error:  # a damaged file: its reader names what is wrong
                problem = str(error)
            logger.warning(f"the memory cache {folder}: {problem}; computing it again")
    memory = EntityContextMemory.from_descriptions(model, tokenizer, graph, batch_size, max_length, progress_bar=True)
    if folder is not None:
        memory.save_pretrained(folder)
    return memory


def load_method(args, method: str, model_class, graph: KnowledgeGraph, pretrained: str | None = None, **config):
    """What every fine-tuning run of `method` starts from, with `args.seed` set first (so that a method's result does
    not depend on the methods run before it in the process): (tokenizer, model, entity context memory). `pretrained`
    (default: the one its flag in `PRETRAINED_PATHS` names) is the pre-training output a method of them loads."""
    set_seed(args.seed)
    pretrained = pretrained or pretrained_path(args, method)
    tokenizer = AutoTokenizer.from_pretrained(pretrained if method in PRETRAINED_PATHS else args.backbone)
    model = load_model(method, model_class, pretrained, args.backbone, **config)
    with precision(args):
        memory = initial_memory(method, model, tokenizer, graph, args.seed, cache_dir=args.memory_cache_dir)
    return tokenizer, model, memory


def pretrained_path(args, method: str) -> str | None:
    """The examples/pretrain.py output `method` starts from (None for the methods built from the backbone)."""
    return getattr(args, PRETRAINED_PATHS[method]) if method in PRETRAINED_PATHS else None


def memory_key(model, entities: dict, relations: dict, batch_size: int) -> str:
    """A digest of what LM1's encoding of the descriptions depends on (see `initial_memory`)."""
    digest = hashlib.sha256()
    base = model.base_model
    for name, tensor in sorted(base.state_dict().items()):
        if name.startswith(("embeddings.", "lm1.")):
            digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    texts = [dict(entities), dict(relations)]
    autocast = torch.is_autocast_enabled("cpu") and str(torch.get_autocast_dtype("cpu"))  # a bf16 memory differs
    digest.update(json.dumps([texts, batch_size, base.config.num_lm1_layers, autocast]).encode())
    folder = Path(modeling_jaket.__file__).parent  # the modeling code: a change of it is a new key
    for text in [path.read_text() for path in sorted(folder.glob("*.py"))] + [torch.__version__]:
        digest.update(text.encode())
    return digest.hexdigest()[:24]


@dataclass
class DataCollatorWithSubgraph:
    """Pads a batch of texts with mentions and adds the sampled neighbourhood of their mentioned entities (of entity
    0 where none is mentioned: the knowledge module then has a graph to run on). With `hide_pair_edges`, the edges
    between two entities of one example are left out: in FewRel's pairs they would state the very relation the
    pair is about."""

    pad_token_id: int
    graph: KnowledgeGraph
    fanouts: tuple = DEFAULT_FANOUTS
    seed: int = 0
    hide_pair_edges: bool = False

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, features):
        batch = DataCollatorWithMentions(self.pad_token_id)(features)
        ids = batch["mention_entity_ids"]
        mentioned = ids[ids >= 0].unique()
        subgraph = self.graph.sample_subgraph(
            mentioned if mentioned.numel() else torch.zeros(1, dtype=torch.long), self.fanouts, self.generator
        )
        visible = torch.ones(subgraph.edge_type.numel(), dtype=torch.bool)
        if self.hide_pair_edges:
            count = self.graph.num_entities
            held = torch.cat(
                [(row[row >= 0].unsqueeze(1) * count + row[row >= 0].unsqueeze(0)).reshape(-1) for row in ids]
            )
            ends = subgraph.entity_ids[subgraph.edge_index]
            visible = ~torch.isin(ends[0] * count + ends[1], held)
        return {**batch, **subgraph.inputs(visible)}


class WithEntityMemory(nn.Module):
    """A JAKET model whose inputs name entities by id: it reads their E^(0) from the entity context memory held beside
    it (`lookup`), fixed (the paper does not update the memory while fine-tuning) or, for the GNN baseline, trained."""

    def __init__(self, model, memory: EntityContextMemory, trainable: bool = False):
        super().__init__()
        self.model = model
        self.config = model.config
        self.memory = memory
        if trainable:  # the GNN baseline learns its entity embeddings: a copy's table becomes a parameter
            self.memory = memory = copy.deepcopy(memory)
            memory.entity_embeddings = nn.Parameter(memory._buffers.pop("entity_embeddings"))

    def forward(self, subgraph_entity_ids, **inputs):
        return self.model(
            subgraph_entity_ids=subgraph_entity_ids,
            entity_init_embeddings=self.memory.lookup(subgraph_entity_ids),
            relation_embeddings=self.memory.relation_embeddings,
            **inputs,
        )


def masked_accuracy(eval_prediction):
    """Accuracy over the positions whose label is not -100 (`Trainer`'s compute_metrics)."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    scored = labels != -100
    predictions = np.argmax(logits[scored], axis=-1)
    return {"accuracy": accuracy(predictions, labels[scored])}


# The fair protocol (every task, every method): one optimizer-step budget at every label fraction, a validation
# split carved from the training labels, and a small grid chosen on it; the test set is read once, by the choice.
@dataclass
class ProtocolArguments:
    """What every fine-tuning script adds to choose each method's settings on validation."""

    step_budget: int = field(
        default=200,
        metadata={
            "help": "optimizer steps of every run, at every label fraction "
            "(fewer labels: more epochs), up to --max_epochs"
        },
    )
    max_epochs: float = field(default=100.0, metadata={"help": "the cap on passes over the training labels"})
    learning_rate_grid: list[float] = field(
        default_factory=lambda: [0.3, 1.0, 3.0],
        metadata={
            "nargs": "+",
            "help": "multipliers of each method's own learning rate, one training run each; the same grid "
            "for every method",
        },
    )
    num_evaluations: int = field(
        default=4,
        metadata={"help": "validation evaluations over a run (at 1/n, 2/n, ... of its steps): the steps grid"},
    )
    head_learning_rate: float = field(
        default=1e-3, metadata={"help": "the classifier's rate, in every method and at every grid point"}
    )
    validation_share: float = field(
        default=0.2,
        metadata={
            "help": "share of the training labels (entities, "
            "questions) held out to choose the settings on, "
            "never the test's"
        },
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("step_budget", "max_epochs", "num_evaluations", "head_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        if not self.learning_rate_grid or min(self.learning_rate_grid) <= 0:
            raise ValueError(f"--learning_rate_grid needs positive multipliers, got {self.learning_rate_grid}")
        if not 0.0 < self.validation_share < 1.0:
            raise ValueError(f"--validation_share must be in (0, 1), got {self.validation_share}")


def carve_validation(entities: list, labels: list, share: float, seed: int):
    """Split training examples into (train, validation) lists of (entities, labels), seeded: every method of a run
    gets the same split. At least one example lands on each side."""
    if len(entities) < 2:
        raise ValueError(
            f"{len(entities)} training example: carving a validation split to choose the settings on needs at least "
            "two; train on a larger fraction (--fractions) or label more entities"
        )
    order = torch.randperm(len(entities), generator=torch.Generator().manual_seed(seed)).tolist()
    count = min(len(entities) - 1, max(1, round(share * len(entities))))
    pick = lambda rows: ([entities[i] for i in sorted(rows)], [labels[i] for i in sorted(rows)])  # noqa: E731
    return pick(order[count:]), pick(order[:count])


def budget_steps(num_examples: int, batch_size: int, step_budget: int, max_epochs: float) -> int:
    """The optimizer steps of a run: the budget, or `max_epochs` passes over the examples if those are fewer."""
    return max(1, min(step_budget, math.ceil(max_epochs * math.ceil(num_examples / batch_size))))


class KeepBestOnValidation(TrainerCallback):
    """Keeps a copy of the weights at the evaluation with the best validation accuracy (the earliest on a tie)."""

    def __init__(self):
        self.accuracy, self.step, self.state = -1.0, 0, None

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if metrics["eval_accuracy"] > self.accuracy:
            self.accuracy, self.step = metrics["eval_accuracy"], state.global_step
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


class HeadRateTrainer(Trainer):
    """A `Trainer` whose task head (the modules named `head_names`) learns at `head_learning_rate`, every other
    trained parameter at `args.learning_rate`: a fresh head needs a rate of its own whatever the body's."""

    def __init__(self, *args, head_learning_rate: float, head_names=("classifier",), **kwargs):
        super().__init__(*args, **kwargs)
        self.head_learning_rate, self.head_names = head_learning_rate, set(head_names)

    def create_optimizer(self):
        if self.optimizer is None:
            decay = set(self.get_decay_parameter_names(self.model))
            groups = {}
            for name, parameter in self.model.named_parameters():
                if parameter.requires_grad:
                    head = bool(self.head_names & set(name.split(".")))
                    groups.setdefault((head, name in decay), []).append(parameter)
            optimizer_class, settings = self.get_optimizer_cls_and_kwargs(self.args, self.model)  # --optim's
            self.optimizer = optimizer_class(
                [
                    {
                        "params": params,
                        "lr": self.head_learning_rate if head else self.args.learning_rate,
                        "weight_decay": self.args.weight_decay if decayed else 0.0,
                    }
                    for (head, decayed), params in sorted(groups.items())
                ],
                **settings,
            )
        return self.optimizer


class ScoredTrainer(HeadRateTrainer):
    """A `HeadRateTrainer` whose evaluation is a task's own: `score(model, eval_dataset)` (FewRel's episodes,
    MetaQA's hits@1), reported as `eval_accuracy`."""

    def __init__(self, *args, score, **kwargs):
        super().__init__(*args, **kwargs)
        self.score = score

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        examples = self.eval_dataset if eval_dataset is None else eval_dataset
        metrics = {f"{metric_key_prefix}_accuracy": self.score(self.model, examples)}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def select_on_validation(
    args, run_name: str, model, base_rate: float, make_trainer, num_train: int, label_names=("labels",), **overrides
) -> dict:
    """Train `model` once per point of `args.learning_rate_grid` (times `base_rate`, the method's own rate) for the
    step budget, evaluating on validation `args.num_evaluations` times; leave `model` with the weights of the best
    (rate, step) and return that choice. `make_trainer(training_args)` builds a `HeadRateTrainer` with its train and
    validation data; `overrides` go to every run's `training_arguments`."""
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    steps = budget_steps(num_train, args.per_device_train_batch_size, args.step_budget, args.max_epochs)
    best = None
    for multiplier in args.learning_rate_grid:
        model.load_state_dict(initial)
        rate = base_rate * multiplier
        training_args = training_arguments(
            args,
            f"{run_name}-lr{rate:g}",
            list(label_names),
            learning_rate=rate,
            max_steps=steps,
            eval_strategy="steps",
            eval_steps=max(1, math.ceil(steps / args.num_evaluations)),
            num_train_epochs=1,
            **overrides,
        )
        keeper = KeepBestOnValidation()
        trainer = make_trainer(training_args)
        trainer.add_callback(keeper)
        trainer.train()
        if best is None or keeper.accuracy > best[0].accuracy:
            best = (keeper, rate)
    keeper, rate = best
    model.load_state_dict(keeper.state)
    return {"learning_rate": rate, "step": keeper.step, "steps": steps, "validation_accuracy": keeper.accuracy}
