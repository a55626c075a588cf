"""The entity memory's refresh across processes: each encodes a share of the descriptions with LM1, the shares are
all-gathered (FSDP2 included: a sharded model runs LM1 on every rank together)."""

import math

import torch
from accelerate.utils import DistributedType

from modeling_jaket import EntityContextMemory


def is_sharded(accelerator) -> bool:
    """Whether the model is sharded across the processes (FSDP2), so that every process must run each of its
    forwards together, the evaluation's included. FSDP1 is refused: the memory refresh runs LM1 outside the model's
    forward, where FSDP1 does not gather its flat parameters."""
    if accelerator.distributed_type != DistributedType.FSDP:
        return False
    if not accelerator.is_fsdp2:
        raise ValueError(
            "pretrain.py shards with FSDP2 only (accelerate launch --use_fsdp --fsdp_version 2 ...): the memory "
            "refresh runs LM1 outside the model's forward, where FSDP1 does not gather its flat parameters"
        )
    return True


def compute_sharded(accelerator, model, descriptions, batch_size):
    """LM1's embeddings of all descriptions: rank r computes rows r, r + world, ...; the shards are all-gathered."""
    count, world, rank = len(descriptions["input_ids"]), accelerator.num_processes, accelerator.process_index
    rows = math.ceil(count / world)
    indices = torch.arange(rank, count, world)
    # every rank encodes `rows` descriptions, so all run the same number of batches (what a model sharded across
    # ranks needs, whose layers gather their weights collectively): a short shard repeats a description
    filler = indices[-1:] if len(indices) else torch.zeros(1, dtype=torch.long)
    padded_indices = torch.cat([indices, filler.expand(rows - len(indices))])
    local = EntityContextMemory.compute(
        model, descriptions, batch_size, padded_indices, accelerator.is_local_main_process
    )
    gathered = accelerator.gather(local.to(accelerator.device)).cpu().view(world, rows, -1)
    full = torch.empty(count, local.shape[1])
    for r in range(world):
        shard = torch.arange(r, count, world)
        full[shard] = gathered[r, : len(shard)]
    return full


def refresh_memory(accelerator, model, memory, entity_descriptions, relation_descriptions, batch_size):
    # in the run's precision (--mixed_precision bf16: LM1 in bfloat16, the memory kept in --memory_dtype)
    with accelerator.autocast():
        new_entities = compute_sharded(accelerator, model, entity_descriptions, batch_size)
        new_relations = compute_sharded(accelerator, model, relation_descriptions, batch_size)
    memory.update(new_entities, new_relations)
