"""A pre-training step's inputs as the script uses them: the collator from the flags, the inputs of the losses a
run trains (the controls), and the memory's embeddings looked up on the model's device."""

import os

import torch

from modeling_jaket import EntityContextMemory
from modeling_jaket.collator import DataCollatorForJaketPreTraining
from modeling_jaket.memory import MEMORY_DTYPES

# Each pre-training loss and the inputs that only it reads.
LOSS_INPUTS = {
    "masked_lm": ("labels",),
    "masked_entity": (
        "masked_entity_starts",
        "masked_entity_ends",
        "masked_entity_candidate_ids",
        "masked_entity_labels",
    ),
    "entity_category": ("entity_category_labels",),
    "relation_type": ("relation_head_index", "relation_tail_index", "relation_labels"),
}
TEXT_INPUTS = ("input_ids", "attention_mask")
MENTION_INPUTS = ("mention_entity_ids", "mention_starts", "mention_ends")  # text and graph both: gone with either
GRAPH_INPUTS = ("subgraph_entity_ids", "edge_index", "edge_type", *MENTION_INPUTS)


def select_losses(inputs: dict, losses: set[str]) -> dict:
    """A step's inputs for `losses` alone, the controls of the joint objective: without the text when no text loss
    (L_t, L_e) is asked for, so that only the knowledge module and its heads train; without the graph when L_t alone
    is, so that the language model continues on the same text with no knowledge module."""
    if unknown := losses - LOSS_INPUTS.keys():
        raise ValueError(f"unknown losses {sorted(unknown)}; choose from {sorted(LOSS_INPUTS)}")
    dropped = {key for loss, keys in LOSS_INPUTS.items() if loss not in losses for key in keys}
    if not losses & {"masked_lm", "masked_entity"}:
        dropped.update(TEXT_INPUTS, MENTION_INPUTS)
    if losses == {"masked_lm"}:
        dropped.update(GRAPH_INPUTS)
    return {key: value for key, value in inputs.items() if key not in dropped}


def to_model_inputs(inputs: dict, memory: EntityContextMemory, device, relation_embeddings: bool = False) -> dict:
    """Look E^(0) up for the subgraph and the candidates, and move everything to `device`.

    §3.5: "we use relation embeddings only during fine-tuning". Without `relation_embeddings` the knowledge module
    gets R = 0, so f(E_u, R_r) = E_u and the edges' types reach it only through L_r's labels."""
    inputs = {k: v.to(device) for k, v in inputs.items() if v is not None}
    if "subgraph_entity_ids" in inputs:
        inputs["entity_init_embeddings"] = memory.lookup(inputs["subgraph_entity_ids"])
        relations = memory.relation_embeddings.float()
        inputs["relation_embeddings"] = relations if relation_embeddings else torch.zeros_like(relations)
    if "masked_entity_candidate_ids" in inputs:  # [batch, removed mentions, candidates, hidden]; may have no mention
        inputs["masked_entity_candidate_embeddings"] = memory.lookup(inputs.pop("masked_entity_candidate_ids"))
    return inputs


def pretraining_collator(
    args, tokenizer, graph, confusables, process_index: int = 0
) -> DataCollatorForJaketPreTraining:
    """What builds a step's inputs (masks, removed mentions and their candidates, subgraph, held pairs), from the
    flags; `confusables` joins the entities that share a surface form (`confusable_entities`), among which L_e's hard
    negatives are drawn (and the held-out evaluation's, whatever the run's)."""
    return DataCollatorForJaketPreTraining(
        tokenizer,
        graph,
        args.mlm_probability,
        args.entity_mask_probability,
        args.num_roots,
        tuple(args.fanouts),
        args.num_relation_pairs,
        args.num_neighbour_negatives,
        args.num_random_negatives,
        args.num_hard_negatives,
        confusables,
        args.merge_masked_mentions,
        category_targets=args.category_targets,
        seed=args.seed,
        process_index=process_index,
    )


def default_num_workers(processes_per_node: int, most: int = 4) -> int:
    """Loader workers for one of `processes_per_node` training processes: the cores its share of this machine has,
    less one for the process itself, at most `most`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(most, cores // max(1, processes_per_node) - 1))


def memory_dtype(name: str, device: torch.device) -> torch.dtype:
    """--memory_dtype: a storage dtype by name, or `auto`: bfloat16 on a GPU (half the table, where memory is
    scarce), float32 on a CPU (where the embedded default's figures were measured)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return MEMORY_DTYPES[name]
