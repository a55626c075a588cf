"""Batch collation: padding (`DataCollatorWithMentions`), and a pre-training step's inputs built from the padded
batch and the knowledge graph (`DataCollatorForJaketPreTraining`)."""

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from .graph import DEFAULT_FANOUTS, KnowledgeGraph
from .tokenization_jaket import mention_coverage
from .validation import is_int, is_number

TOKEN_KEYS = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0, "labels": -100}
MENTION_KEYS = ("mention_entity_ids", "mention_starts", "mention_ends")
METADATA_KEYS = ("num_truncated_mentions", "mention_indices")


@dataclass
class DataCollatorWithMentions:
    """Collates the output of `tokenize_with_mentions` (one dict per example) into padded tensors.

    Token-level lists (`input_ids`, `attention_mask`, `token_type_ids`, `labels`) are right-padded to the longest
    example (rounded up to `pad_to_multiple_of`); mention lists are padded with -1 to the most mentions in the batch;
    any other numeric field, and a `labels` that holds one value per example, is stacked as is.
    `num_truncated_mentions` and `mention_indices` (what the tokenization kept) are dropped.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("DataCollatorWithMentions got an empty batch")
        keys = [key for key in features[0] if key not in METADATA_KEYS]
        for index, feature in enumerate(features):
            if set(k for k in feature if k not in METADATA_KEYS) != set(keys):
                raise ValueError(f"feature {index} has keys {sorted(feature)}, but feature 0 has {sorted(keys)}")
        batch = {}
        length = max(len(feature["input_ids"]) for feature in features) if "input_ids" in keys else 0
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        mention_key = next((key for key in MENTION_KEYS if key in keys), None)  # text without mentions has none
        num_mentions = max((len(feature[mention_key]) for feature in features), default=0) if mention_key else 0
        for key in keys:
            values = [feature[key] for feature in features]
            if key in TOKEN_KEYS and isinstance(values[0], (list, tuple)):  # token-level, not a sequence label
                pad = self.pad_token_id if key == "input_ids" else TOKEN_KEYS[key]
                batch[key] = pad_rows(values, length, pad, key)
            elif key in MENTION_KEYS:
                batch[key] = pad_rows(values, num_mentions, -1, key)
            else:
                batch[key] = torch.tensor(values)
        return batch


def pad_rows(rows, length, value, key):
    """`rows` (lists of ids) right-padded with `value` to `length` columns; a longer row is refused, naming `key`."""
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for index, row in enumerate(rows):
        if len(row) > length:
            raise ValueError(f"{key} of feature {index} has {len(row)} entries, more than the batch's {length}")
        out[index, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def mask_tokens(
    input_ids, attention_mask, special_ids, mask_token_id: int, vocab_size: int, probability: float, generator
):
    """BERT's masking: `probability` of the real tokens (not padding, none of `special_ids`) become targets; of those
    80% are replaced by the mask token, 10% by a random one of `vocab_size`, 10% kept. Returns (masked input_ids,
    labels with -100 elsewhere)."""
    special = torch.isin(input_ids, special_ids) | (attention_mask == 0)
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels = torch.where(chosen, input_ids, -100)
    draw = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (draw < 0.8)] = mask_token_id
    randomised = chosen & (draw >= 0.8) & (draw < 0.9)
    masked[randomised] = torch.randint(vocab_size, (int(randomised.sum()),), generator=generator)
    return masked, labels


def holds_target(labels, starts, ends) -> torch.Tensor:
    """[batch, mentions]: whether a mention's tokens (inclusive spans, -1 pads) hold a masked-token target of L_t."""
    return (mention_coverage(starts, ends, labels.shape[1]) & (labels != -100).unsqueeze(1)).any(-1)


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


CATEGORY_TARGETS = ("all", "sampled")


@dataclass
class DataCollatorForJaketPreTraining:
    """Collates tokenized linked text (`tokenize_with_mentions`' rows) into one pre-training step's inputs (§3.6):
    masked tokens (L_t), removed mentions and their candidates (L_e), and a subgraph of random-walk roots plus the
    mentioned entities with categories (L_c) and held-out edges to classify (L_r).

    L_e's candidates are the true entity, then `num_neighbour_negatives` of its neighbours, `num_hard_negatives`
    entities that share a surface form with it (from `confusables`, a graph of such pairs, `confusable_entities`;
    random where it has fewer) and `num_random_negatives` random entities.

    With `merge_masked_mentions=False`, a kept mention that holds a masked token (an L_t target) is not merged: its
    entity's E^KM would tell LM2 the token, so that L_t could become a lookup. Its entity stays in the subgraph.

    L_c's targets are every subgraph entity with a category (`category_targets="all"`), or only those that receive at
    least one visible sampled edge (`"sampled"`): an entity of the last hop gets no edge of its own, so its E^KM is
    its description's, and its category tells the module nothing about the graph.

    As a DataLoader's `collate_fn` it runs in the loader's workers. Its draws come from a generator seeded by
    (`seed`, the epoch given to `set_epoch`, `process_index`, the batch's token ids): the same batch of the same
    epoch gets the same inputs in whichever worker, and a resumed run the very ones it would have had. The epoch is
    kept in shared memory, so that `set_epoch` on the main process reaches workers that persist across epochs
    (`persistent_workers=True`), which hold a copy of this object made when they started. `build` takes
    a padded batch and a generator of the caller's. The ids hold no embedding: the entity context memory is looked
    up on the model's device.
    """

    tokenizer: object
    graph: KnowledgeGraph
    mlm_probability: float = 0.15
    entity_mask_probability: float = 0.15
    num_roots: int = 16
    fanouts: tuple = DEFAULT_FANOUTS
    num_relation_pairs: int = 16
    num_neighbour_negatives: int = 5
    num_random_negatives: int = 5
    num_hard_negatives: int = 0
    confusables: KnowledgeGraph | None = None
    merge_masked_mentions: bool = True
    category_targets: str = "all"
    seed: int = 0
    process_index: int = 0
    epoch: int = 0

    def __post_init__(self):
        for name in ("mlm_probability", "entity_mask_probability"):
            value = getattr(self, name)
            if not is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        counts = ("num_roots", "num_relation_pairs", "num_neighbour_negatives", "num_random_negatives")
        for name in (*counts, "num_hard_negatives", "seed", "process_index", "epoch"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if isinstance(self.fanouts, (str, bytes)) or not all(is_int(f) and f >= 0 for f in self.fanouts):
            raise ValueError(f"fanouts must be non-negative integers (neighbours sampled a hop), got {self.fanouts!r}")
        if self.category_targets not in CATEGORY_TARGETS:
            raise ValueError(f"category_targets must be one of {CATEGORY_TARGETS}, got {self.category_targets!r}")
        if self.num_hard_negatives and self.confusables is None:
            raise ValueError("num_hard_negatives needs `confusables`, the graph of entities that share a surface form")
        self.pad = DataCollatorWithMentions(self.tokenizer.pad_token_id)
        # read once here: a fast tokenizer's all_special_ids and len() rebuild their answer at every call
        self.special_ids = torch.tensor(self.tokenizer.all_special_ids)
        self.mask_token_id, self.vocab_size = self.tokenizer.mask_token_id, len(self.tokenizer)
        self.shared_epoch = torch.tensor(self.epoch).share_memory_()

    def set_epoch(self, epoch: int):
        """Called before each epoch's batches are drawn, on the main process: its workers, new or persistent, read
        the epoch from shared memory when they build a batch."""
        self.epoch = epoch
        self.shared_epoch.fill_(epoch)

    def batch_seed(self, input_ids: torch.Tensor) -> int:
        """A 63-bit seed from (seed, epoch, process, the batch's token ids)."""
        digest = hashlib.blake2b(input_ids.numpy().tobytes(), digest_size=8)
        digest.update(f"{self.seed} {int(self.shared_epoch)} {self.process_index}".encode())
        return int.from_bytes(digest.digest(), "little") >> 1

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.pad(features)
        return self.build(batch, torch.Generator().manual_seed(self.batch_seed(batch["input_ids"])))

    def build(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The step's inputs from a padded batch (`input_ids`, `attention_mask`, `mention_*`), drawing from
        `generator`."""
        input_ids, labels = mask_tokens(
            batch["input_ids"],
            batch["attention_mask"],
            self.special_ids,
            self.mask_token_id,
            self.vocab_size,
            self.mlm_probability,
            generator,
        )
        entity_ids, starts, ends = batch["mention_entity_ids"], batch["mention_starts"], batch["mention_ends"]
        present = starts >= 0
        removed = present & (torch.rand(starts.shape, generator=generator) < self.entity_mask_probability)
        kept = present & ~removed

        merged = kept if self.merge_masked_mentions else kept & ~holds_target(labels, starts, ends)
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
            if self.category_targets == "sampled":
                reached = torch.zeros(subgraph.entity_ids.numel(), dtype=torch.bool)
                reached[subgraph.edge_index[1, visible]] = True
                category_labels = category_labels.masked_fill(~reached, -1)
            category_labels = category_labels.masked_fill(category_labels < 0, -100)
        return {
            "input_ids": input_ids,
            "attention_mask": batch["attention_mask"],
            "labels": labels,
            "mention_entity_ids": torch.where(merged, entity_ids, -1),
            "mention_starts": torch.where(merged, starts, -1),
            "mention_ends": torch.where(merged, ends, -1),
            **subgraph.inputs(visible),
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


def confusable_entities(forms: list[set[str]], max_per_form: int = 64) -> KnowledgeGraph:
    """A graph whose edges join entities that share a surface form (WordNet: the senses of one lemma), from which L_e's
    hard negatives are sampled (`KnowledgeGraph.sample_neighbours`). A form shared by more than `max_per_form + 1`
    entities joins each to the next `max_per_form` of them (in entity order), cyclically, so the graph grows linearly
    with the KG. Built with arrays, not a set of pairs, so that Wikipedia's millions of forms fit."""
    form_ids, owners, owned = {}, [], []
    for entity, entity_forms in enumerate(forms):
        for form in entity_forms:
            owners.append(entity)
            owned.append(form_ids.setdefault(form, len(form_ids)))
    del form_ids
    owners, owned = np.asarray(owners, dtype=np.int64), np.asarray(owned, dtype=np.int64)
    order = np.lexsort((owners, owned))  # by form, then entity
    owners, owned = owners[order], owned[order]
    starts = np.flatnonzero(np.r_[True, owned[1:] != owned[:-1]]) if owned.size else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, owned.size])
    first, size = np.repeat(starts, sizes), np.repeat(sizes, sizes)
    position = np.arange(owned.size) - first
    keys = []
    for shift in range(1, max_per_form + 1):  # the entity `shift` places further round its form's circle
        members = size > shift
        if not members.any():
            break
        partner = first[members] + (position[members] + shift) % size[members]
        keys.append(owners[members] * len(forms) + owners[partner])
    pairs = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)  # sorted by (head, tail)
    heads, tails = pairs // max(len(forms), 1), pairs % max(len(forms), 1)
    return KnowledgeGraph(heads, np.zeros_like(heads), tails, len(forms), 1)
