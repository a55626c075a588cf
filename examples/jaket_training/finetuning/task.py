"""One fine-tuning protocol for every task: `run_protocol(args, method, task)` runs a method the way every script
does, and a `FineTuningTask` subclass, one a script, says what is its task's own (its data, its trainer, its test
and its report)."""

import logging
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from modeling_jaket import EntityContextMemory, KnowledgeGraph

from ..model_card import Result
from ..push_to_hub import create_hub_repo
from .arguments import training_arguments
from .methods import WithEntityMemory, load_method
from .outputs import finished_results, push_results, save_fine_tuned, save_results, start_or_resume
from .protocol import select_on_validation, snapshot

logger = logging.getLogger(__name__)


@dataclass
class MethodStart:
    """What every run of a method starts from."""

    method: str
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel  # the task's model: what is saved
    memory: EntityContextMemory | None  # the entity context memory it reads; None where it reads none
    trained: nn.Module  # what the `Trainer` trains: the model reading its memory, or the model alone


@dataclass(kw_only=True)
class FineTuningTask:
    """A task as `run_protocol` fine-tunes and tests it: the data loaded once for every method, and the hooks a
    script overrides.

    - `name(args, method)`: the method's name for its results file, its runs' folders and its saved model;
    - `start(args, method)`: tokenizer, model and memory (`load_method` over `model_class` with `model_config`) and
      what the `Trainer` trains (`wrap`: the model reading its memory, `WithEntityMemory`);
    - `settings(args, start)`: `{setting: {"train", "validation", "test"}}`, each chosen on and tested apart from the
      same start (entity classification's label fractions; one setting, `None`, elsewhere);
    - `learning_rate(args, method)`: the rate the grid multiplies, or None where nothing is trained (zero-shot);
    - `trainer(args, start, data, training_args)`: the `HeadRateTrainer` of one run over a setting's data;
    - `test(args, start, data, trainer)`: `{score: value}` on the setting's test data, read once by the chosen
      weights (default: the trainer's evaluation, as accuracy);
    - `report(args, method, scores, chosen)`: the model card's summary and results, and the results record;
    - `save(args, start, folder, summary, results)`: the fine-tuned model's folder (`save_fine_tuned`)."""

    graph: KnowledgeGraph
    dataset: str  # the dataset the model card names
    command: list[str]  # the command line that ran, for the model card
    repo_id: str | None  # --push_to_hub's repo

    model_class: ClassVar[type[PreTrainedModel]]
    metric: ClassVar[str] = "accuracy"  # what the results' figures are
    label_names: ClassVar[tuple[str, ...]] = ("labels",)  # the batch keys the `Trainer` treats as labels

    def name(self, args, method: str) -> str:
        return method

    def model_config(self, args, method: str) -> dict:
        return {}

    def wrap(self, args, method: str, model, memory) -> nn.Module:
        return WithEntityMemory(model, memory)

    def start(self, args, method: str) -> MethodStart:
        tokenizer, model, memory = load_method(
            args, method, self.model_class, self.graph, **self.model_config(args, method)
        )
        return MethodStart(method, tokenizer, model, memory, self.wrap(args, method, model, memory))

    def settings(self, args, start: MethodStart) -> dict:
        raise NotImplementedError

    def learning_rate(self, args, method: str) -> float | None:
        return args.learning_rate

    def trainer(self, args, start: MethodStart, data: dict, training_args):
        raise NotImplementedError

    def test(self, args, start: MethodStart, data: dict, trainer) -> dict:
        return {"accuracy": trainer.evaluate(data["test"], metric_key_prefix="test")["test_accuracy"]}

    def report(self, args, method: str, scores: dict, chosen: dict) -> tuple[str, list[Result], dict]:
        raise NotImplementedError

    def save(self, args, start: MethodStart, folder: Path, summary: str, results: list[Result]) -> None:
        graph = self.graph if start.memory is not None else None
        save_fine_tuned(
            args,
            start.method,
            folder,
            start.model,
            start.tokenizer,
            self.command,
            summary,
            self.dataset,
            results,
            start.memory,
            graph,
        )


def begin_fine_tuning(args, script: str, argv=None) -> tuple[list[str], str | None]:
    """What every script does before it loads its data: logging, the run's settings recorded (or checked against the
    stopped run's with --resume: `start_or_resume`), the hub repo created. Returns the command line (for the model
    cards) and the repo's id (None without --push_to_hub)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    start_or_resume(args)
    return ["python", script, *(sys.argv[1:] if argv is None else argv)], create_hub_repo(args)


def run_protocol(args, method: str, task: FineTuningTask) -> dict:
    """Fine-tune `method` on `task` by the fair protocol and test it once; returns its results record (read back,
    with --resume, where an earlier run wrote it).

    1. The start: tokenizer, model and memory, and what the `Trainer` trains (`task.start`).
    2. Each of the task's settings, from that start: the grid of learning rates x steps chosen on validation
       (`select_on_validation` over `task.trainer`), then the test, read once by the chosen weights (`task.test`).
    3. What the run leaves: the model as trained on the last setting with its card, the upload, the results file."""
    name = task.name(args, method)
    if (record := finished_results(args, name)) is not None:
        return record

    # 1. the start
    start = task.start(args, method)
    initial = snapshot(start.trained)

    # 2. each setting: the choice on validation, then the test
    scores, chosen = {}, {}
    for setting, data in task.settings(args, start).items():
        run_name = name if setting is None else f"{name}-{setting}"
        start.trained.load_state_dict(initial, strict=False)
        make_trainer = partial(task.trainer, args, start, data)
        overrides = dict(remove_unused_columns=False)  # the collators and wrappers take what they need
        rate = task.learning_rate(args, method)
        if rate is not None:
            chosen[setting] = select_on_validation(
                args,
                run_name,
                start.trained,
                rate,
                make_trainer,
                len(data["train"]),
                task.label_names,
                initial=initial,  # the start's copy: every run of every setting starts from it
                **overrides,
            )
        tester = make_trainer(training_arguments(args, run_name, list(task.label_names), **overrides))
        scores[setting] = task.test(args, start, data, tester)
        tested_in = Path(tester.args.output_dir)  # the Trainer makes its output folder; a test writes nothing there
        if tester.args.should_save and tested_in.is_dir() and not any(tested_in.iterdir()):
            tested_in.rmdir()
        logger.info(f"{run_name}: test {scores[setting]}, chosen on validation {chosen.get(setting)}")

    # 3. what the run leaves
    summary, results, record = task.report(args, method, scores, chosen)
    folder = Path(args.output_dir) / f"{run_name}-seed{args.seed}"
    task.save(args, start, folder, summary, results)
    push_results(args, method, task.repo_id, folder)
    return save_results(args, name, record, task.metric)
