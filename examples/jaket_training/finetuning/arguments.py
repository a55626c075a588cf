"""The fine-tuning scripts' flags: transformers' `TrainingArguments` and what every script adds (methods,
pre-trained folders, data, the protocol's grid), checked at parse time, and each run's `TrainingArguments`."""

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import torch
from transformers import HfArgumentParser, TrainingArguments

from ..data import default_backbone, default_data_dir
from .methods import METHODS, PRETRAINED_PATHS


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
    merge_norm_start: str = field(
        default="identity",
        metadata={
            "choices": ["identity", "fresh"],
            "help": "the merge LayerNorm (Eq. 3) of the methods built from the backbone with a knowledge module "
            "(lm_gnn, lm_gnn_m), which no pre-training trained: fitted to pass LM1's output through as nearly "
            "unchanged as a LayerNorm can (per-feature least squares over the graph's descriptions; the default, "
            "chosen on validation: RESULTS.md), or LayerNorm's own start (gain 1, bias 0, which rescales every "
            "position LM2 reads)",
        },
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


# What the fine-tuning scripts change of `TrainingArguments`' defaults: no checkpoints or evaluation outside the
# protocol's runs (`select_on_validation` sets both for each of them), AdamW's weight decay 0.01 as in pre-training,
# no tracker unless asked, the CPU where there is no GPU.
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
    resume: bool = field(
        default=False,
        metadata={
            "help": "continue a stopped run in the same --output_dir, with the same flags (checked): a method whose "
            "results file is written is read back, a finished grid run from its run.json, a stopped one continues "
            "from its last checkpoint"
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
        if self.resume_from_checkpoint is not None:
            raise ValueError(
                f"--resume_from_checkpoint {self.resume_from_checkpoint}: these scripts run a grid of Trainer runs "
                "under --output_dir, each with its own checkpoints; give --resume (with the same --output_dir) to "
                "continue them where they stopped"
            )
