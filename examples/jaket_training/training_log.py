"""What pre-training logs every `--logging_steps`: the losses averaged over the micro-batches since the last log
and over the processes, the learning rates, the throughput and the KG entities a step touches; written to the
train history beside the model and to the trackers."""

import json
import resource
import sys
import time
from pathlib import Path

import torch
from accelerate.logging import get_logger

from .curve import TRAIN_HISTORY_NAME, append_entry
from .optimization import group_learning_rates

logger = get_logger(__name__)

LOSSES = ("loss", "masked_lm_loss", "masked_entity_loss", "entity_category_loss", "relation_type_loss")


def trackers(report_to: str) -> list[str] | str | None:
    """--report_to as Accelerate's `log_with`: None for 'none', 'all', or the list of tracker names."""
    if report_to == "none":
        return None
    if report_to == "all":
        return "all"
    return [name.strip() for name in report_to.split(",") if name.strip()]


class StepLog:
    """Counts each micro-batch (`add`) and, at a logging step, writes the means since the last one (`write`)."""

    def __init__(self, accelerator, output_dir: Path, per_device_batch_size: int, accumulation: int, report_to):
        self.accelerator, self.output_dir, self.report_to = accelerator, output_dir, report_to
        self.per_device_batch_size, self.accumulation = per_device_batch_size, accumulation
        self.totals, self.micro_batches, self.entities, self.since = {}, 0, 0, time.perf_counter()

    def add(self, output, inputs: dict) -> None:
        """Count one micro-batch's losses and subgraph entities."""
        self.micro_batches += 1
        self.entities += inputs["subgraph_entity_ids"].numel() if "subgraph_entity_ids" in inputs else 0
        for key in LOSSES:
            if getattr(output, key) is not None:
                self.totals[key] = self.totals.get(key, 0.0) + output[key].detach().float()

    def write(self, step: int, optimizer, grad_norm: float | None, refreshes: int) -> None:
        """Log, record and report the means over the micro-batches and processes since the last write; start anew."""
        accelerator = self.accelerator
        means = {
            k: accelerator.gather(v.reshape(1)).mean().item() / self.micro_batches for k, v in self.totals.items()
        }
        elapsed, self.since = time.perf_counter() - self.since, time.perf_counter()
        samples = self.micro_batches * self.per_device_batch_size * accelerator.num_processes
        # KG entities that one optimisation step touches, over every micro-batch and process (the paper's 16,384)
        steps = self.micro_batches / self.accumulation
        entities = accelerator.gather(torch.tensor([self.entities], device=accelerator.device)).sum().item()
        means.update(
            group_learning_rates(optimizer),
            samples_per_second=samples / elapsed,
            kg_entities_per_step=entities / steps,
        )
        if grad_norm is not None:
            means["grad_norm"] = grad_norm  # the step's, before clipping
        logger.info(f"step {step}: " + json.dumps({k: float(f"{v:.6g}") for k, v in means.items()}))
        if accelerator.is_main_process:
            append_entry(self.output_dir / TRAIN_HISTORY_NAME, {"step": step, **means, "memory_refreshes": refreshes})
        if self.report_to:
            accelerator.log(means, step=step)
        self.totals, self.micro_batches, self.entities = {}, 0, 0


def memory_use() -> str:
    """This process's peak resident memory and, on Linux, its private memory now: memory-mapped files that several
    processes share (the prepared windows, descriptions and graph) count in each one's resident memory, once in a
    machine's. Of the private memory, the clean part is pages of files only this process has read (the kernel
    reclaims them under pressure); the rest is what the process wrote, its own allocations. (smaps' `Anonymous`
    would not do: it counts the pages a forked loader worker still shares too.)"""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    text = f"peak resident memory {peak:.0f} MiB"
    rollup = Path("/proc/self/smaps_rollup")
    if rollup.is_file():
        fields = dict(line.split(":", 1) for line in rollup.read_text().splitlines()[1:] if ":" in line)
        kib = {key: int(value.split()[0]) for key, value in fields.items() if value.strip().endswith("kB")}
        private = kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0)
        text += f", private now {private / 1024:.0f} MiB, of which clean {kib.get('Private_Clean', 0) / 1024:.0f} MiB"
    return text
