"""The entity context memory (JAKET §3.5, Eq. 4-5): E^(0) of every entity and relation, computed by LM1 from the
descriptions and refreshed on a growing schedule, so that a training step needs no LM call for the graph."""

import json
import math
import os

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.utils import logging

from .graph import as_index_tensor
from .hub import resolve_file
from .validation import check_finite

MEMORY_WEIGHTS_NAME = "entity_memory.safetensors"
MEMORY_CONFIG_NAME = "entity_memory.json"
# the storage dtypes a memory may be saved in: read from a file, a name is looked up here, never on `torch`
MEMORY_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# The JaketConfig fields that set the memory and its refresh schedule, their one source: pretrain.py's flags carry
# these names into the saved config, and `RefreshSchedule.from_config` and `EntityContextMemory.from_config` read them
MEMORY_FIELDS = (
    "memory_refresh_init_interval",
    "memory_refresh_ratio",
    "memory_refresh_repeats",
    "memory_refresh_max_interval",
    "memory_momentum",
)
MEMORY_KEYS = ("entity_embeddings", "initialized", "relation_embeddings")


class RefreshSchedule:
    """When to refresh the memory (Eq. 4): the i-th refresh comes T(i) = min(init_interval * ratio^floor(i / repeats),
    max_interval) steps after the previous one (10, 10, 10, 20, 20, 20, 40, ... up to 500 with the defaults)."""

    def __init__(self, init_interval: int = 10, ratio: int = 2, repeats: int = 3, max_interval: int = 500):
        if init_interval < 1 or ratio < 1 or repeats < 1 or max_interval < init_interval:
            raise ValueError(
                "RefreshSchedule needs init_interval >= 1, ratio >= 1, repeats >= 1 and "
                f"max_interval >= init_interval, got {init_interval}, {ratio}, {repeats}, {max_interval}"
            )
        self.init_interval = init_interval
        self.ratio = ratio
        self.repeats = repeats
        self.max_interval = max_interval
        self.num_refreshes = 0
        self.next_refresh_step = self.interval(0)

    @classmethod
    def from_config(cls, config) -> "RefreshSchedule":
        """The schedule a `JaketConfig`'s `memory_refresh_*` fields describe."""
        return cls(
            config.memory_refresh_init_interval,
            config.memory_refresh_ratio,
            config.memory_refresh_repeats,
            config.memory_refresh_max_interval,
        )

    def interval(self, i: int) -> int:
        """T(i), the number of steps between refresh i-1 (or the start) and refresh i."""
        exponent = i // self.repeats
        # Stop growing the power once it passes max_interval: ratio ** exponent can get astronomically large.
        if self.ratio > 1 and exponent > (self.max_interval // self.init_interval).bit_length():
            return self.max_interval
        return min(self.init_interval * self.ratio**exponent, self.max_interval)

    def should_refresh(self, step: int) -> bool:
        """Whether the memory is due for a refresh after `step` optimisation steps."""
        return step >= self.next_refresh_step

    def mark_refreshed(self, step: int) -> None:
        """Record a refresh done at `step`; the next one falls T(i + 1) steps later."""
        self.num_refreshes += 1
        self.next_refresh_step = step + self.interval(self.num_refreshes)

    def state_dict(self) -> dict:
        return {"num_refreshes": self.num_refreshes, "next_refresh_step": self.next_refresh_step}

    def load_state_dict(self, state: dict) -> None:
        self.num_refreshes = int(state["num_refreshes"])
        self.next_refresh_step = int(state["next_refresh_step"])


def pad_batch(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into `(input_ids, attention_mask)`."""
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask


class EntityContextMemory(nn.Module):
    """E^context for all entities and relations, as buffers (so `.to(device)` and `state_dict` work), kept apart
    from the model's own weights and saved beside them as `entity_memory.safetensors`.

    Descriptions are given pre-tokenized, as a dict with `input_ids` (a list of token id lists) and `mention_starts`
    / `mention_ends` (inclusive token indices of the entity's first mention in its own description, -1 for none),
    which is what `tokenization.encode_descriptions` returns.

    Args:
        num_entities, num_relations, hidden_size: table sizes.
        momentum: m in E <- m E + (1 - m) E_new (Eq. 5).
        dtype: storage dtype; float16 or bfloat16 halve the table for millions of entities. Updates are computed in
            float32.
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        hidden_size: int,
        momentum: float = 0.8,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"EntityContextMemory momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.register_buffer("entity_embeddings", torch.zeros(num_entities, hidden_size, dtype=dtype))
        self.register_buffer("relation_embeddings", torch.zeros(num_relations, hidden_size, dtype=dtype))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @classmethod
    def from_config(
        cls, config, num_entities: int, num_relations: int, dtype: torch.dtype = torch.float32
    ) -> "EntityContextMemory":
        """A memory of the width and momentum a `JaketConfig` (`hidden_size`, `memory_momentum`) gives."""
        return cls(num_entities, num_relations, config.hidden_size, config.memory_momentum, dtype)

    @property
    def num_entities(self) -> int:
        return self.entity_embeddings.shape[0]

    @property
    def num_relations(self) -> int:
        return self.relation_embeddings.shape[0]

    @staticmethod
    @torch.no_grad()
    def compute(
        model, descriptions: dict, batch_size: int = 64, indices=None, progress_bar: bool = False
    ) -> torch.Tensor:
        """LM1's embedding of each description (or of those at `indices`), in length-sorted batches, in float32.

        `model` is a [`JaketModel`] or any JAKET head, sharded or not (its `encode_descriptions` is what runs); its
        training mode is restored afterwards. `progress_bar` shows the descriptions done (transformers'
        `logging.disable_progress_bar()` hides it).
        """
        config = model.config
        sequences = descriptions["input_ids"]
        starts = torch.as_tensor(descriptions["mention_starts"], dtype=torch.long)
        ends = torch.as_tensor(descriptions["mention_ends"], dtype=torch.long)
        if not len(sequences) == len(starts) == len(ends):
            raise ValueError(
                f"descriptions have {len(sequences)} input_ids but {len(starts)} mention_starts and {len(ends)} "
                "mention_ends"
            )
        indices = torch.arange(len(sequences)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        if indices.numel() and (indices.min() < 0 or indices.max() >= len(sequences)):
            raise ValueError(f"indices must lie in [0, {len(sequences)}), got [{indices.min()}, {indices.max()}]")
        lengths = torch.tensor([len(sequences[i]) for i in indices.tolist()], dtype=torch.long)
        if lengths.numel() and lengths.min() == 0:
            empty = indices[lengths == 0][0]
            raise ValueError(f"description {int(empty)} is empty: every entity needs a description")
        order = torch.argsort(lengths, descending=True)
        device = next(model.parameters()).device
        result = torch.empty(len(indices), config.hidden_size, dtype=torch.float32)
        was_training = model.training
        model.eval()
        bar = logging.tqdm(
            total=len(order), desc="LM1 over descriptions", unit="description", leave=False, disable=not progress_bar
        )
        try:
            for begin in range(0, len(order), batch_size):
                rows = order[begin : begin + batch_size]
                chosen = indices[rows]
                input_ids, attention_mask = pad_batch([sequences[i] for i in chosen.tolist()], config.pad_token_id)
                embeddings = model.encode_descriptions(
                    input_ids.to(device), attention_mask.to(device), starts[chosen].to(device), ends[chosen].to(device)
                )
                result[rows] = embeddings.float().cpu()
                bar.update(len(rows))
        finally:
            bar.close()
            model.train(was_training)
        return result

    @torch.no_grad()
    def update(self, new_entity_embeddings: torch.Tensor, new_relation_embeddings: torch.Tensor | None = None):
        """Apply Eq. (5), E <- m E + (1 - m) E_new; the first update sets E = E_new."""
        if new_entity_embeddings.shape != self.entity_embeddings.shape:
            raise ValueError(
                f"new entity embeddings {tuple(new_entity_embeddings.shape)} do not match the memory "
                f"{tuple(self.entity_embeddings.shape)}"
            )
        pairs = [(self.entity_embeddings, new_entity_embeddings)]
        if new_relation_embeddings is not None:
            if new_relation_embeddings.shape != self.relation_embeddings.shape:
                raise ValueError(
                    f"new relation embeddings {tuple(new_relation_embeddings.shape)} do not match the memory "
                    f"{tuple(self.relation_embeddings.shape)}"
                )
            pairs.append((self.relation_embeddings, new_relation_embeddings))
        momentum = self.momentum if bool(self.initialized) else 0.0
        for table, new in pairs:
            new = new.to(device=table.device, dtype=torch.float32)
            table.copy_(momentum * table.float() + (1.0 - momentum) * new)
        self.initialized.fill_(True)

    def refresh(
        self,
        model,
        entity_descriptions: dict,
        relation_descriptions: dict | None = None,
        batch_size=64,
        progress_bar: bool = False,
        shard: tuple[int, int] = (0, 1),
        all_gather=None,
    ):
        """Recompute every description's embedding with LM1 and fold it in with the momentum rule (Eq. 5).

        Across processes, `shard=(rank, world)`: this process encodes descriptions rank, rank + world, ... and
        `all_gather` (a `[rows, hidden]` tensor -> every process's, `[world * rows, hidden]`, e.g.
        `accelerator.gather`) joins the shares. Every process encodes as many descriptions (a short share repeats
        one): a model sharded across processes gathers its layers' weights collectively, so all must run alike."""
        new_entities = self._encode_shared(model, entity_descriptions, batch_size, progress_bar, shard, all_gather)
        new_relations = None
        if relation_descriptions:
            new_relations = self._encode_shared(
                model, relation_descriptions, batch_size, progress_bar, shard, all_gather
            )
        self.update(new_entities, new_relations)

    def _encode_shared(self, model, descriptions, batch_size, progress_bar, shard, all_gather) -> torch.Tensor:
        rank, world = shard
        if world == 1:
            return self.compute(model, descriptions, batch_size, progress_bar=progress_bar)
        count = len(descriptions["input_ids"])
        rows = math.ceil(count / world)
        indices = torch.arange(rank, count, world)
        filler = indices[-1:] if len(indices) else torch.zeros(1, dtype=torch.long)
        padded = torch.cat([indices, filler.expand(rows - len(indices))])
        local = self.compute(model, descriptions, batch_size, padded, progress_bar)
        gathered = all_gather(local).cpu().view(world, rows, -1)
        full = torch.empty(count, local.shape[1])
        for other in range(world):
            share = torch.arange(other, count, world)
            full[share] = gathered[other, : len(share)]
        return full

    def lookup(self, entity_ids: torch.Tensor) -> torch.Tensor:
        """E^(0) rows for `entity_ids` of any shape, in float32: [*entity_ids.shape, hidden_size]."""
        entity_ids = as_index_tensor(entity_ids, "entity ids")
        if entity_ids.numel() and (entity_ids.min() < 0 or entity_ids.max() >= self.num_entities):
            raise ValueError(
                f"entity ids range over [{int(entity_ids.min())}, {int(entity_ids.max())}] but the memory holds "
                f"{self.num_entities} entities"
            )
        return self.entity_embeddings[entity_ids.to(self.entity_embeddings.device)].float()

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        os.makedirs(save_directory, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()},
            os.path.join(save_directory, MEMORY_WEIGHTS_NAME),
        )
        with open(os.path.join(save_directory, MEMORY_CONFIG_NAME), "w") as f:
            json.dump({"momentum": self.momentum, "dtype": str(self.entity_embeddings.dtype).split(".")[-1]}, f)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, subfolder: str = "", **hub_kwargs
    ) -> "EntityContextMemory":
        """A memory saved with `save_pretrained`, from a folder or a Hub repo id (`hub_kwargs`: revision, token)."""
        what = "entity memory (save one with EntityContextMemory.save_pretrained)"
        path = resolve_file(name_or_path, MEMORY_WEIGHTS_NAME, what, subfolder, **hub_kwargs)
        config_path = resolve_file(name_or_path, MEMORY_CONFIG_NAME, what, subfolder, **hub_kwargs)
        try:
            with open(config_path) as f:
                settings = json.load(f)
            momentum, dtype = float(settings["momentum"]), MEMORY_DTYPES[settings["dtype"]]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{config_path}: not a memory's settings (a JSON object with 'momentum' and 'dtype' among "
                f"{sorted(MEMORY_DTYPES)}): {type(error).__name__} {error}"
            ) from None
        state = read_memory_tables(path)
        entities, relations = state["entity_embeddings"], state["relation_embeddings"]
        memory = cls(entities.shape[0], relations.shape[0], entities.shape[1], momentum, dtype)
        memory.load_state_dict(state)
        return memory


def read_memory_tables(path) -> dict[str, torch.Tensor]:
    """The tables of a saved memory, checked: a truncated file, missing or extra keys, tables that are not 2-D or
    differ in width, and NaN or infinite rows are each a `ValueError` naming the file."""
    try:
        state = load_file(path)
    except Exception as error:  # safetensors raises its own error types for a damaged file
        raise ValueError(f"{path}: not a readable safetensors file ({type(error).__name__}: {error})") from None
    if sorted(state) != sorted(MEMORY_KEYS):
        raise ValueError(f"{path}: holds {sorted(state)}, a memory holds {list(MEMORY_KEYS)}")
    entities, relations = state["entity_embeddings"], state["relation_embeddings"]
    if entities.dim() != 2 or relations.dim() != 2 or entities.shape[1] != relations.shape[1]:
        raise ValueError(
            f"{path}: tables of shapes {tuple(entities.shape)} and {tuple(relations.shape)}; a memory holds two "
            "[count, hidden] tables of one width"
        )
    for key in ("entity_embeddings", "relation_embeddings"):
        check_finite(f"{path}: {key}", state[key])
    return state
