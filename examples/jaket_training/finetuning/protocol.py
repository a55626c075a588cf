"""The fair protocol (every task, every method): one optimizer-step budget at every label fraction, a validation
split, and a small grid of learning rates x steps chosen on it through the `Trainer`'s checkpoints; the test set is
read once, by the choice."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import Trainer
from transformers.trainer import OPTIMIZER_NAME, SCALER_NAME, SCHEDULER_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
from transformers.utils import SAFE_WEIGHTS_NAME, logging

from ..metrics import accuracy
from .arguments import training_arguments

logger = logging.get_logger(__name__)


def masked_accuracy(eval_prediction):
    """Accuracy over the positions whose label is not -100 (`Trainer`'s compute_metrics)."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    scored = labels != -100
    predictions = np.argmax(logits[scored], axis=-1)
    return {"accuracy": accuracy(predictions, labels[scored])}


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
    args,
    run_name: str,
    model,
    base_rate: float,
    make_trainer,
    num_train: int,
    label_names=("labels",),
    initial: dict | None = None,
    **overrides,
) -> dict:
    """Train `model` once per point of `args.learning_rate_grid` (times `base_rate`, the method's own rate) for the
    step budget, evaluating on validation `args.num_evaluations` times; leave `model` with the weights of the best
    (rate, step) and return that choice. `make_trainer(training_args)` builds a `HeadRateTrainer` with its train and
    validation data; `overrides` go to every run's `training_arguments`. Every run starts from `initial`, a `snapshot`
    of the model's weights as they are now (taken here unless the caller holds one).

    Each run is the `Trainer`'s own: in `<output_dir>/<run_name>-lr<rate>-seed<seed>` it checkpoints at every new
    best on validation (`save_strategy="best"`, the earliest on a tie) and ends on that checkpoint
    (`load_best_model_at_end`); a finished run leaves its choice in `run.json` and its best weights. With
    `args.resume`, a finished run is read back, a stopped one continues from its last checkpoint (model, optimizer,
    scheduler, random state); without it, a run folder's earlier checkpoints are removed first. The runs not chosen
    lose their checkpoints once the choice is made (their records stay); `save_results` clears the rest once the
    method's results are written."""
    initial = snapshot(model) if initial is None else initial
    steps = budget_steps(num_train, args.per_device_train_batch_size, args.step_budget, args.max_epochs)
    runs = []
    for multiplier in args.learning_rate_grid:
        rate = base_rate * multiplier
        training_args = training_arguments(
            args,
            f"{run_name}-lr{rate:g}-seed{args.seed}",
            list(label_names),
            learning_rate=rate,
            max_steps=steps,
            eval_strategy="steps",
            eval_steps=max(1, math.ceil(steps / args.num_evaluations)),
            save_strategy="best",
            metric_for_best_model="accuracy",
            load_best_model_at_end=True,
            save_total_limit=1,
            num_train_epochs=1,
            **overrides,
        )
        runs.append(
            (Path(training_args.output_dir), train_one_run(args.resume, model, initial, make_trainer, training_args))
        )
    # the first of equals: the earliest rate
    folder, chosen = max(runs, key=lambda folder_run: folder_run[1]["validation_accuracy"])
    load_checkpoint_weights(model, folder / chosen["checkpoint"])
    if training_args.should_save:
        for other, _ in runs:
            if other != folder:
                remove_checkpoints(other)
    return {
        "learning_rate": chosen["learning_rate"],
        "step": chosen["step"],
        "steps": steps,
        "validation_accuracy": chosen["validation_accuracy"],
    }


RUN_RECORD = "run.json"


def train_one_run(resume: bool, model, initial: dict, make_trainer, training_args) -> dict:
    """One grid point of `select_on_validation`: its record (rate, best step, validation accuracy, and the
    checkpoint of that step, named within the run's folder)."""
    folder = Path(training_args.output_dir)
    if resume and (folder / RUN_RECORD).is_file():
        run = json.loads((folder / RUN_RECORD).read_text())
        logger.info(f"{folder.name}: finished before, read back ({run})")
        return run
    last = get_last_checkpoint(folder) if resume and folder.is_dir() else None
    if last is None and training_args.should_save:
        clear_run(folder)
    elif last is not None:
        logger.info(
            f"{folder.name}: resuming from {last} (model, optimizer, scheduler and random state; a collator's own "
            "neighbour sampling draws afresh)"
        )
    model.load_state_dict(initial, strict=False)
    trainer = make_trainer(training_args)
    trainer.train(resume_from_checkpoint=last)
    state = trainer.state
    run = {
        "learning_rate": training_args.learning_rate,
        "step": state.best_global_step,
        "validation_accuracy": state.best_metric,
        "checkpoint": Path(state.best_model_checkpoint).name,
    }
    if training_args.should_save:
        for name in (OPTIMIZER_NAME, SCHEDULER_NAME, SCALER_NAME, "rng_state*.pth"):  # for resuming only: a finished
            for path in (folder / run["checkpoint"]).glob(name):  # run is never resumed, its weights are read again
                path.unlink()
        (folder / RUN_RECORD).write_text(json.dumps(run, indent=2))
    return run


def snapshot(model) -> dict:
    """A copy of the weights a run may change, to start the next run from: all but those the model leaves out of its
    checkpoints (`_keys_to_ignore_on_save`: a fixed entity memory, which no run changes). Load it back with
    `strict=False`."""
    fixed = set(getattr(model, "_keys_to_ignore_on_save", None) or ())
    return {key: value.detach().clone() for key, value in model.state_dict().items() if key not in fixed}


def load_checkpoint_weights(model, checkpoint) -> None:
    """Load a checkpoint's weights into `model`, as `load_best_model_at_end` does: every key but those the model
    leaves out of its checkpoints (`_keys_to_ignore_on_save`: a fixed entity memory) must be there."""
    path = Path(checkpoint, SAFE_WEIGHTS_NAME)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no weights, so the run chosen cannot be loaded; run without --resume")
    result = model.load_state_dict(load_file(path), strict=False)
    missing = set(result.missing_keys) - set(getattr(model, "_keys_to_ignore_on_save", None) or ())
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path} does not fit the model: missing {sorted(missing)}, unexpected {sorted(result.unexpected_keys)}"
        )


def remove_checkpoints(run_folder) -> None:
    """Remove a run folder's `checkpoint-*` folders (its record stays: a resumed grid reads every run's choice)."""
    for checkpoint in Path(run_folder).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        shutil.rmtree(checkpoint)


def clear_run(run_folder) -> None:
    """Remove what a run left, checkpoints and record, and its folder if nothing else is in it: a run started afresh,
    or one whose method's results are written."""
    folder = Path(run_folder)
    remove_checkpoints(folder)
    (folder / RUN_RECORD).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
