"""Pre-training checkpoints: written atomically (a kill at any moment leaves `latest` naming a complete one), as
safetensors and JSON only, with the settings and numerics they depend on; resumed, pruned, resolved."""

import json
import os
import shutil
from pathlib import Path

import torch
from accelerate.logging import get_logger
from accelerate.utils import load as accelerate_load

from modeling_jaket import EntityContextMemory, RefreshSchedule
from modeling_jaket.hub import read_json
from modeling_jaket.memory import MEMORY_WEIGHTS_NAME, read_memory_tables

logger = get_logger(__name__)

TRAINING_STATE_NAME = "training_state.json"


def numerics_fingerprint(num_processes: int) -> dict:
    """What decides how floating-point reductions are split, so what a resumed run must share with the run that
    wrote its checkpoint to continue it bit for bit: CPU matmuls and sums are split across threads, gradients summed
    across processes, and kernels change between torch versions."""
    return {"num_processes": num_processes, "num_threads": torch.get_num_threads(), "torch": torch.__version__}


def run_settings(args, config, graph) -> dict:
    """What a checkpoint's state depends on: resuming under other settings would load tables and weights of other
    shapes or meaning."""
    return {
        "backbone": args.backbone or "default (all-MiniLM-L6-v2)",
        "dataset": args.dataset,
        "num_entities": graph.num_entities,
        "num_relations": graph.num_relations,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_lm1_layers": config.num_lm1_layers,
        "km_num_layers": config.km_num_layers,
        "losses": sorted(args.losses),
    }


def save_training_state(
    directory: Path,
    memory: EntityContextMemory,
    schedule: RefreshSchedule,
    completed_steps: int,
    num_processes: int,
    settings: dict,
):
    """What a checkpoint holds beyond Accelerate's own state, as safetensors and JSON only: nothing in a checkpoint
    is unpickled on resume except through `torch.load(weights_only=True)`, so a downloaded checkpoint cannot run
    code (Accelerate loads registered objects' `custom_checkpoint_*.pkl` with `weights_only=False`)."""
    memory.save_pretrained(directory)
    state = {
        "completed_steps": completed_steps,
        "refresh_schedule": schedule.state_dict(),
        "numerics": numerics_fingerprint(num_processes),
        "settings": settings,
    }
    (directory / TRAINING_STATE_NAME).write_text(json.dumps(state))


def read_training_state(directory: Path, settings: dict) -> dict:
    """A checkpoint's `training_state.json`, checked field by field and against the run's `settings` (`run_settings`)
    before anything else of the checkpoint is loaded: a bad value names the file and the field, a setting that
    differs is named with both values."""
    state_file, memory_file = directory / TRAINING_STATE_NAME, directory / MEMORY_WEIGHTS_NAME
    for path in (state_file, memory_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {directory} is not a complete pre-training checkpoint")
    state = read_json(state_file)  # a repeated key, broken JSON or bytes that are not UTF-8: named by file
    if not isinstance(state, dict):
        raise ValueError(f"{state_file}: a training state is a JSON object, got {type(state).__name__}")

    def whole(value, field: str, least: int) -> None:
        if type(value) is not int or not least <= value < 2**63:  # bool is an int subclass; 2.9 or "3" no count
            raise ValueError(f"{state_file}: {field} must be a whole number in [{least}, 2**63), got {value!r}")

    whole(state.get("completed_steps"), "completed_steps", 0)
    schedule = state.get("refresh_schedule")
    if not isinstance(schedule, dict) or set(schedule) != {"num_refreshes", "next_refresh_step"}:
        raise ValueError(
            f"{state_file}: refresh_schedule must be an object of num_refreshes and next_refresh_step, got "
            f"{schedule!r}"
        )
    whole(schedule["num_refreshes"], "refresh_schedule.num_refreshes", 0)
    whole(schedule["next_refresh_step"], "refresh_schedule.next_refresh_step", 1)
    for field in ("settings", "numerics"):
        if not isinstance(state.get(field, {}), dict):
            raise ValueError(f"{state_file}: {field} must be an object, got {state[field]!r}")
    written = state.get("settings", {})
    differences = [  # a setting this run does not have is a difference too: another version wrote it
        f"{key}: {written.get(key)!r} there, {settings.get(key)!r} now"
        for key in [*settings, *(key for key in written if key not in settings)]
        if written.get(key) != settings.get(key) or (key in written) != (key in settings)
    ]
    if differences:
        raise ValueError(
            f"{directory} was written under other settings ({'; '.join(differences)}): resume with the run's flags"
        )
    return state


def load_training_state(
    directory: Path, memory: EntityContextMemory, schedule: RefreshSchedule, num_processes: int, settings: dict
) -> int:
    """Restore the memory and the refresh schedule from `directory`; return the steps the checkpoint had completed.
    The training state is checked first (`read_training_state`); a memory of other shapes is refused, naming the
    file and both shapes."""
    state = read_training_state(directory, settings)
    memory_file = directory / MEMORY_WEIGHTS_NAME
    tables = read_memory_tables(memory_file)
    for key in ("entity_embeddings", "relation_embeddings"):
        there, now = tuple(tables[key].shape), tuple(getattr(memory, key).shape)
        if there != now:
            raise ValueError(f"{memory_file}: {key} of shape {there} there, {now} in this run")
    memory.load_state_dict({k: v.to(memory.entity_embeddings.device) for k, v in tables.items()})
    schedule.load_state_dict(state["refresh_schedule"])
    written, now = state.get("numerics"), numerics_fingerprint(num_processes)
    if written is not None and written != now:
        changed = ", ".join(f"{key} {written.get(key)} -> {now[key]}" for key in now if written.get(key) != now[key])
        logger.warning(
            f"{directory} was written with other numerics ({changed}): the run goes on, but its results will differ "
            "in the last bits from those of a run that was never stopped"
        )
    return state["completed_steps"]


def load_accelerator_state(accelerator, checkpoint: Path) -> None:
    """`accelerator.load_state(checkpoint)`, with the file named when it fails: Accelerate's and torch's errors for
    a file that `weights_only` refuses (it would run code) or that is damaged name none. Each file is tried as
    Accelerate loads it (its own RNG states included); where every one loads, the error is Accelerate's, given with
    the checkpoint's name."""
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:
        refused = []
        for path in sorted(checkpoint.iterdir()):
            if path.suffix in (".bin", ".pkl", ".pt"):
                try:
                    accelerate_load(path, map_location="cpu")
                except Exception as reason:
                    refused.append(f"{path.name} ({type(reason).__name__}: {str(reason).splitlines()[0][:200]})")
        if refused:
            raise ValueError(
                f"{checkpoint}: cannot resume from {', '.join(refused)}; only tensors and plain values are loaded "
                "from a checkpoint, never code"
            ) from error
        first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise ValueError(
            f"{checkpoint}: Accelerate could not restore the model, optimizer, scheduler or RNG state from it "
            f"({type(error).__name__}: {first_line}); was it written by another run?"
        ) from error


def save_checkpoint(accelerator, output_dir: Path, step: int, memory, schedule, settings: dict):
    """Write the state to `checkpoint-<step>.tmp`, rename it, then point `latest` at it: a kill at any moment leaves
    `latest` naming a complete checkpoint."""
    final = output_dir / f"checkpoint-{step}"
    staging = output_dir / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_training_state(staging, memory, schedule, step, accelerator.num_processes, settings)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        pointer = output_dir / "latest.tmp"
        pointer.write_text(final.name)
        os.replace(pointer, output_dir / "latest")
    accelerator.wait_for_everyone()


def prune_checkpoints(output_dir: Path, limit: int) -> list[Path]:
    """Delete all but the `limit` newest complete checkpoints (never the one `latest` names); return those deleted.
    Done here rather than by Accelerate's `ProjectConfiguration(total_limit=...)`, which counts only the checkpoints
    its automatic naming writes, not these atomically renamed `checkpoint-<step>` folders."""
    complete = [
        path for path in output_dir.glob("checkpoint-*") if path.is_dir() and path.name.split("-")[1].isdigit()
    ]
    newest_first = sorted(complete, key=lambda path: int(path.name.split("-")[1]), reverse=True)
    pointer = output_dir / "latest"
    kept = {pointer.read_text().strip()} if pointer.is_file() else set()
    deleted = [path for path in newest_first[limit:] if path.name not in kept]
    for path in deleted:
        shutil.rmtree(path)
    return deleted


def resolve_checkpoint(output_dir: Path, name: str) -> Path:
    """The checkpoint folder that `--resume_from_checkpoint` names; checked before anything is loaded."""
    if name == "latest":
        pointer = output_dir / "latest"
        if not pointer.is_file():
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no {pointer}; no checkpoint was completed yet")
        name = output_dir / pointer.read_text().strip()
    checkpoint = Path(name)
    if not (checkpoint / TRAINING_STATE_NAME).is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {checkpoint}: no {TRAINING_STATE_NAME} there; not a checkpoint"
        )
    return checkpoint
