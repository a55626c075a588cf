"""Turning a padded text batch and the knowledge graph into one JAKET pre-training step's inputs (§3.6)."""

from dataclasses import dataclass

import torch

from modeling_jaket import EntityContextMemory, KnowledgeGraph

from .data import confusable_entities


def mask_tokens(input_ids, attention_mask, tokenizer, probability: float, generator: torch.Generator):
    """BERT's masking: `probability` of the real (non-special) tokens become targets; of those 80% are replaced by
    the mask token, 10% by a random token, 10% kept. Returns (masked input_ids, labels with -100 elsewhere)."""
    special = torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids)) | (attention_mask == 0)
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels = torch.where(chosen, input_ids, -100)
    draw = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (draw < 0.8)] = tokenizer.mask_token_id
    randomised = chosen & (draw >= 0.8) & (draw < 0.9)
    masked[randomised] = torch.randint(len(tokenizer), (int(randomised.sum()),), generator=generator)
    return masked, labels


def left_pack(values, keep, fill):
    """Move the kept entries of each row to its front: [batch, n] -> [batch, max kept per row], padded with `fill`."""
    width = int(keep.sum(dim=1).max()) if keep.numel() else 0
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]
    kept = torch.gather(keep, 1, order)
    return torch.where(kept, torch.gather(values, 1, order), fill)


def hold_out_pairs(subgraph, count: int, generator: torch.Generator):
    """L_r's pairs: up to `count` sampled edges (at most half of them) to classify, and a mask of the edges the
    knowledge module may see, which hides every edge between a held pair in both directions: nearly every WordNet
    pointer has its inverse (hypernym / hyponym), which names the answer. Returns (held edge positions, visible)."""
    num_edges = subgraph.edge_type.numel()
    held = torch.randperm(num_edges, generator=generator)[: min(count, num_edges // 2)]
    ends = subgraph.edge_index
    pairs = ends.min(dim=0).values * subgraph.entity_ids.numel() + ends.max(dim=0).values  # same for (u, v), (v, u)
    return held, ~torch.isin(pairs, pairs[held])


@dataclass
class PretrainingInputs:
    """Builds a step's inputs: masked tokens (L_t), removed mentions and their candidates (L_e), and a subgraph of
    random-walk roots plus the mentioned entities with categories (L_c) and held-out edges to classify (L_r).

    L_e's candidates are the true entity, then `num_neighbour_negatives` of its neighbours, `num_hard_negatives`
    entities that share a surface form with it (from `confusables`, a graph of such pairs; random where it has fewer)
    and `num_random_negatives` random entities.

    Memory lookups happen in `to_model_inputs`, on the memory's device, so that the data side holds only ids."""

    tokenizer: object
    graph: KnowledgeGraph
    mlm_probability: float = 0.15
    entity_mask_probability: float = 0.15
    num_roots: int = 16
    fanouts: tuple = (10, 10)
    num_relation_pairs: int = 16
    num_neighbour_negatives: int = 5
    num_random_negatives: int = 10
    num_hard_negatives: int = 0
    confusables: KnowledgeGraph | None = None

    def __post_init__(self):
        if self.num_hard_negatives and self.confusables is None:
            raise ValueError("num_hard_negatives needs `confusables`, the graph of entities that share a surface form")

    def __call__(self, batch: dict, generator: torch.Generator) -> dict:
        input_ids, labels = mask_tokens(
            batch["input_ids"], batch["attention_mask"], self.tokenizer, self.mlm_probability, generator
        )
        entity_ids, starts, ends = batch["mention_entity_ids"], batch["mention_starts"], batch["mention_ends"]
        present = starts >= 0
        removed = present & (torch.rand(starts.shape, generator=generator) < self.entity_mask_probability)
        kept = present & ~removed

        seeds = torch.cat([entity_ids[kept], self.graph.sample_roots(self.num_roots, generator=generator)])
        subgraph = self.graph.sample_subgraph(seeds, self.fanouts, generator)
        held, visible = hold_out_pairs(subgraph, self.num_relation_pairs, generator)

        true_entities = left_pack(entity_ids, removed, -1)
        true_or_zero = true_entities.clamp(min=0)  # padding rows get entity 0's candidates, labelled -100 below
        shape = true_entities.shape
        candidates = [
            true_or_zero.unsqueeze(-1),
            self.graph.sample_neighbours(true_or_zero.reshape(-1), self.num_neighbour_negatives, generator),
            torch.randint(
                self.graph.num_entities, (true_or_zero.numel(), self.num_random_negatives), generator=generator
            ),
        ]
        if self.num_hard_negatives:
            hard = self.confusables.sample_neighbours(true_or_zero.reshape(-1), self.num_hard_negatives, generator)
            candidates.insert(2, hard)
        candidates = torch.cat([c.view(*shape, c.shape[-1]) for c in candidates], dim=-1)
        category_labels = None
        if self.graph.entity_categories is not None:  # entities without a category (-1) are left out of L_c
            category_labels = self.graph.entity_categories[subgraph.entity_ids]
            category_labels = category_labels.masked_fill(category_labels < 0, -100)
        return {
            "input_ids": input_ids,
            "attention_mask": batch["attention_mask"],
            "labels": labels,
            "mention_entity_ids": torch.where(kept, entity_ids, -1),
            "mention_starts": torch.where(kept, starts, -1),
            "mention_ends": torch.where(kept, ends, -1),
            "subgraph_entity_ids": subgraph.entity_ids,
            "edge_index": subgraph.edge_index[:, visible],
            "edge_type": subgraph.edge_type[visible],
            "entity_category_labels": category_labels,
            "relation_head_index": subgraph.edge_index[1, held],
            "relation_tail_index": subgraph.edge_index[0, held],
            "relation_labels": subgraph.edge_type[held],
            "masked_entity_starts": left_pack(starts, removed, -1),
            "masked_entity_ends": left_pack(ends, removed, -1),
            "masked_entity_candidate_ids": candidates,
            # the true entity is candidate 0; a random negative that happens to be the true entity counts as wrong
            "masked_entity_labels": torch.where(true_entities >= 0, 0, -100),
        }


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


def pretraining_inputs(args, tokenizer, graph, forms) -> PretrainingInputs:
    """What builds a step's inputs (masks, removed mentions and their candidates, subgraph, held pairs), from the
    flags; `forms` are the entities' surface forms, which L_e's hard negatives share."""
    return PretrainingInputs(
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
        confusable_entities(forms) if args.num_hard_negatives else None,
    )
