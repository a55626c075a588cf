"""The entity memory's refresh across processes: `EntityContextMemory.refresh`, each process encoding a share of the
descriptions with LM1, the shares all-gathered (FSDP2 included: a sharded model runs LM1 on every rank together)."""

import time

from accelerate.utils import DistributedType


def is_sharded(accelerator) -> bool:
    """Whether the model is sharded across the processes (FSDP2), so that every process must run each of its
    forwards together, the evaluation's included. FSDP1 and DeepSpeed are refused: the memory refresh runs LM1
    outside the model's forward, where FSDP1 does not gather its flat parameters nor ZeRO-3 its partitions, and
    under DeepSpeed the engine owns clipping and the optimizer step that the script does itself."""
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ValueError(
            "pretrain.py does not run under DeepSpeed (its memory refresh calls LM1 outside the model's forward, and "
            "DeepSpeed's engine clips and steps the optimizer itself): use DDP (accelerate launch --multi_gpu) or, "
            "to shard the model, FSDP2 (--use_fsdp --fsdp_version 2)"
        )
    if accelerator.distributed_type != DistributedType.FSDP:
        return False
    if not accelerator.is_fsdp2:
        raise ValueError(
            "pretrain.py shards with FSDP2 only (accelerate launch --use_fsdp --fsdp_version 2 ...): the memory "
            "refresh runs LM1 outside the model's forward, where FSDP1 does not gather its flat parameters"
        )
    return True


def refresh_memory(accelerator, model, memory, entity_descriptions, relation_descriptions, batch_size) -> float:
    """`EntityContextMemory.refresh` with each process encoding its share, in the run's precision (--mixed_precision
    bf16: LM1 in bfloat16, the memory kept in --memory_dtype); returns the seconds it took."""
    start = time.perf_counter()
    with accelerator.autocast():
        memory.refresh(
            model,
            entity_descriptions,
            relation_descriptions,
            batch_size,
            progress_bar=accelerator.is_local_main_process,
            shard=(accelerator.process_index, accelerator.num_processes),
            all_gather=lambda local: accelerator.gather(local.to(accelerator.device)),
        )
    return time.perf_counter() - start
