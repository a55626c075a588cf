"""What the fine-tuning scripts share, by job: their flags (`arguments`), the methods and the memory each starts
from (`methods`), the batches (`inputs`), the choice of settings on validation (`protocol`), what a run leaves
(`outputs`), and the one protocol every script runs over its task's hooks (`task`: `run_protocol`)."""

from .arguments import (
    FineTuningArguments,
    ProtocolArguments,
    method_field,
    parse_fine_tuning_args,
    training_arguments,
)
from .inputs import DataCollatorWithSubgraph
from .methods import (
    METHODS,
    PRETRAINED_PATHS,
    WithEntityMemory,
    initial_memory,
    load_method,
    load_model,
    precision,
    pretrained_head,
    pretrained_path,
)
from .outputs import finished_results, save_results, start_or_resume
from .protocol import (
    HeadRateTrainer,
    ScoredTrainer,
    budget_steps,
    carve_validation,
    masked_accuracy,
    select_on_validation,
)
from .task import FineTuningTask, MethodStart, begin_fine_tuning, run_protocol

__all__ = [
    "METHODS",
    "PRETRAINED_PATHS",
    "DataCollatorWithSubgraph",
    "FineTuningArguments",
    "FineTuningTask",
    "HeadRateTrainer",
    "MethodStart",
    "ProtocolArguments",
    "ScoredTrainer",
    "WithEntityMemory",
    "begin_fine_tuning",
    "budget_steps",
    "carve_validation",
    "finished_results",
    "initial_memory",
    "load_method",
    "load_model",
    "masked_accuracy",
    "method_field",
    "parse_fine_tuning_args",
    "precision",
    "pretrained_head",
    "pretrained_path",
    "run_protocol",
    "save_results",
    "select_on_validation",
    "start_or_resume",
    "training_arguments",
]
