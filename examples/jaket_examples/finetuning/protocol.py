"""The fair protocol (every task, every method): one optimizer-step budget at every label fraction, a validation
split carved from the training labels, and a small grid of learning rates x steps chosen on it; the test set is read
once, by the choice."""

import math

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from ..metrics import accuracy
from .arguments import training_arguments


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
