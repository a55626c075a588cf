"""What the fine-tuning scripts share, by job: their flags (`arguments`), the methods and the memory each starts
from (`methods`), the batches (`inputs`), the protocol that chooses settings on validation (`protocol`) and what a
run leaves (`outputs`)."""

from .arguments import (
    TRAINER_DEFAULTS,
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
    pretrained_path,
)
from .outputs import finished_results, push_results, save_fine_tuned, save_results, start_or_resume
from .protocol import (
    HeadRateTrainer,
    ScoredTrainer,
    budget_steps,
    carve_validation,
    masked_accuracy,
    select_on_validation,
)

__all__ = [
    "METHODS",
    "PRETRAINED_PATHS",
    "TRAINER_DEFAULTS",
    "DataCollatorWithSubgraph",
    "FineTuningArguments",
    "HeadRateTrainer",
    "ProtocolArguments",
    "ScoredTrainer",
    "WithEntityMemory",
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
    "pretrained_path",
    "push_results",
    "save_fine_tuned",
    "save_results",
    "select_on_validation",
    "start_or_resume",
    "training_arguments",
]
