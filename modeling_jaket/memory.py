"""The entity context memory (JAKET §3.5, Eq. 4-5): E^(0) of every entity and relation, computed by LM1 from the
descriptions and refreshed on a growing schedule, so that a training step needs no LM call for the graph."""

import json
import math
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.utils import logging

from .graph import as_index_tensor
from .hub import read_json, resolve_file
from .tokenization_jaket import description_inputs
from .validation import check_finite, is_number

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
    which is what `tokenization.encode_descriptions` returns; or with `input_ids` a padded `[count, longest]` array
    and `lengths` beside it (a prepared folder's arrays, `jaket_training.prepared`).

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

    @classmethod
    @torch.no_grad()
    def from_descriptions(
        cls,
        model,
        tokenizer,
        graph,
        batch_size: int = 64,
        max_length: int = 64,
        dtype: torch.dtype = torch.float32,
        progress_bar: bool = False,
        tokenized: tuple | None = None,
    ) -> "EntityContextMemory":
        """The memory of a `KnowledgeGraph`: E^(0) of every entity and R of every relation, LM1 of `model` reading
        their descriptions (the first `max_length` tokens, §3.3), momentum from its config. All a new graph needs.
        `tokenized`: the descriptions as `description_inputs(tokenizer, graph, max_length)` gives them, where the
        caller has them already (tokenized here otherwise)."""
        memory = cls.from_config(model.config, graph.num_entities, graph.num_relations, dtype)
        entities, relations = tokenized or description_inputs(tokenizer, graph, max_length)
        memory.refresh(model, entities, relations, batch_size, progress_bar)
        return memory

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
        sequences, starts, ends = _description_columns(descriptions)
        indices = torch.arange(len(sequences)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        if indices.numel() and (indices.min() < 0 or indices.max() >= len(sequences)):
            raise ValueError(f"indices must lie in [0, {len(sequences)}), got [{indices.min()}, {indices.max()}]")
        order = torch.argsort(_lengths(sequences, indices), descending=True)
        result = torch.empty(len(indices), model.config.hidden_size, dtype=torch.float32)
        bar = logging.tqdm(
            total=len(order), desc="LM1 over descriptions", unit="description", leave=False, disable=not progress_bar
        )
        with _inference(model), bar:
            for begin in range(0, len(order), batch_size):
                rows = order[begin : begin + batch_size]
                result[rows] = _encode(model, sequences, starts, ends, indices[rows]).float().cpu()
                bar.update(len(rows))
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
            _fold_in(table, slice(None), new, momentum)
        self.initialized.fill_(True)

    @torch.no_grad()
    def refresh(
        self,
        model,
        entity_descriptions: dict,
        relation_descriptions: dict | None = None,
        batch_size=64,
        progress_bar: bool = False,
        shard: tuple[int, int] = (0, 1),
        all_gather=None,
        chunk_size: int | None = None,
    ):
        """Recompute every description's embedding with LM1 and fold it in with the momentum rule (Eq. 5).

        The table is updated in place, a chunk of `chunk_size` descriptions at a time (default: a 128th of the table,
        in whole batches), in its own dtype and on its own device: a refresh holds one chunk beside the table,
        never a second table, so that its extra peak stays a small share of the table (docs/scale.md).

        Across processes, `shard=(rank, world)`: each process encodes every world-th description of a chunk (the
        descriptions sorted by length, so that every process's batches are alike) and `all_gather` (a `[rows,
        hidden]` tensor -> every process's, `[world * rows, hidden]`, e.g. `accelerator.gather`) joins the shares.
        Every process encodes as many descriptions (a short share repeats one): a model sharded across processes
        gathers its layers' weights collectively, so all must run alike."""
        momentum = self.momentum if bool(self.initialized) else 0.0
        tables = [(self.entity_embeddings, entity_descriptions)]
        if relation_descriptions:
            tables.append((self.relation_embeddings, relation_descriptions))
        for table, descriptions in tables:
            sequences, starts, ends = _description_columns(descriptions)
            if len(sequences) != len(table):
                raise ValueError(f"{len(sequences)} descriptions for a table of {len(table)} rows")
            _refresh_table(
                table, model, (sequences, starts, ends), batch_size, progress_bar, shard, all_gather, chunk_size,
                momentum,
            )  # fmt: skip
        self.initialized.fill_(True)

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
            {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
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
        settings = read_json(config_path)
        try:
            momentum, dtype = settings["momentum"], MEMORY_DTYPES[settings["dtype"]]
            if not is_number(momentum) or not 0 <= momentum < 1:
                raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{config_path}: not a memory's settings (a JSON object with 'momentum' in [0, 1) and 'dtype' among "
                f"{sorted(MEMORY_DTYPES)}): {type(error).__name__} {error}"
            ) from None
        state = read_memory_tables(path)
        entities, relations = state["entity_embeddings"], state["relation_embeddings"]
        memory = cls(entities.shape[0], relations.shape[0], entities.shape[1], float(momentum), dtype)
        memory.load_state_dict(state)
        return memory


class PaddedRows:
    """Descriptions held as one padded array `[count, longest]` beside their `lengths` (a prepared folder's,
    memory-mapped, or any array): row i is the list of its token ids, as `encode_descriptions` gives them."""

    def __init__(self, input_ids, lengths):
        self.input_ids, self.lengths = input_ids, np.asarray(lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> list[int]:
        return self.input_ids[index, : self.lengths[index]].tolist()

    def batch(self, rows: torch.Tensor, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows as `pad_batch` pads them, `(input_ids, attention_mask)`, cut from the array in one slice."""
        index = rows.numpy()
        lengths = torch.from_numpy(self.lengths[index].astype(np.int64))
        longest = int(lengths.max()) if len(index) else 0
        input_ids = torch.from_numpy(np.array(self.input_ids[index, :longest], dtype=np.int64))
        attention_mask = (torch.arange(longest) < lengths.unsqueeze(1)).long()
        return input_ids.masked_fill(attention_mask == 0, pad_token_id), attention_mask


def _description_columns(descriptions: dict):
    """(token id sequences, mention starts, mention ends) of tokenized descriptions, checked to agree in length:
    `input_ids` as lists, or as a padded array with `lengths`."""
    sequences = descriptions["input_ids"]
    if "lengths" in descriptions:
        sequences = PaddedRows(sequences, descriptions["lengths"])
    # through a copy: a prepared folder's arrays are read-only memory maps, which torch will not wrap
    starts, ends = (
        torch.from_numpy(np.array(descriptions[key], dtype=np.int64)) for key in ("mention_starts", "mention_ends")
    )
    if not len(sequences) == len(starts) == len(ends):
        raise ValueError(
            f"descriptions have {len(sequences)} input_ids but {len(starts)} mention_starts and {len(ends)} "
            "mention_ends"
        )
    return sequences, starts, ends


def _lengths(sequences, indices: torch.Tensor) -> torch.Tensor:
    """The token counts of the descriptions at `indices`; an empty one is refused, naming it."""
    if isinstance(sequences, PaddedRows):
        lengths = torch.from_numpy(np.array(sequences.lengths, dtype=np.int64))[indices]
    else:  # every length, then those at `indices`: no Python list of the indices beside the table
        lengths = torch.tensor(list(map(len, sequences)), dtype=torch.long)[indices]
    if lengths.numel() and lengths.min() == 0:
        raise ValueError(f"description {int(indices[lengths == 0][0])} is empty: every entity needs a description")
    return lengths


class _inference:
    """The model in eval mode for a refresh, its training mode restored afterwards."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def _encode(model, sequences, starts, ends, chosen: torch.Tensor) -> torch.Tensor:
    """LM1's embeddings of the descriptions at `chosen` (one padded batch), on the model's device."""
    device = next(model.parameters()).device
    if isinstance(sequences, PaddedRows):
        input_ids, attention_mask = sequences.batch(chosen, model.config.pad_token_id)
    else:
        input_ids, attention_mask = pad_batch([sequences[i] for i in chosen.tolist()], model.config.pad_token_id)
    return model.encode_descriptions(
        input_ids.to(device), attention_mask.to(device), starts[chosen].to(device), ends[chosen].to(device)
    )


def _fold_in(table: torch.Tensor, rows, new: torch.Tensor, momentum: float, piece: int = 1024) -> None:
    """Eq. (5) on `table[rows]` in place: m E + (1 - m) E_new, computed in float32 and stored in the table's dtype,
    `piece` rows at a time, so that its float32 temporaries stay small beside a bfloat16 table."""
    if not isinstance(rows, torch.Tensor):  # a slice: the whole table, as `update` gives it
        rows = torch.arange(len(table), device=table.device)[rows]
    for first in range(0, len(rows), piece):
        part = rows[first : first + piece]
        fresh = new[first : first + piece].to(device=table.device, dtype=torch.float32)
        finite = torch.isfinite(fresh).all(dim=1)
        if not bool(finite.all()):  # a NaN row would be ranked first by every dot product
            row = int(part[int((~finite).nonzero()[0])])
            raise ValueError(f"the new embedding of memory row {row} holds NaN or infinity: the memory refuses it")
        if momentum == 0.0:
            table[part] = fresh.to(table.dtype)
        else:
            table[part] = (momentum * table[part].float() + (1.0 - momentum) * fresh).to(table.dtype)


def _refresh_table(table, model, columns, batch_size, progress_bar, shard, all_gather, chunk_size, momentum):
    """`EntityContextMemory.refresh` for one table: chunks of the length-sorted descriptions, each process's share
    encoded, gathered and folded in, in the table's dtype and on its device."""
    sequences, starts, ends = columns
    rank, world = shard
    count = len(sequences)
    order = torch.argsort(_lengths(sequences, torch.arange(count)), descending=True)
    step = batch_size * world  # whole batches on every process
    chunk_size = chunk_size or math.ceil(count / 128)
    chunk_size = max(step, chunk_size // step * step)
    bar = logging.tqdm(
        total=count, desc="LM1 over descriptions", unit="description", leave=False, disable=not progress_bar
    )
    with _inference(model), bar:
        for begin in range(0, count, chunk_size):
            chunk = order[begin : begin + chunk_size]
            if world == 1:
                for first in range(0, len(chunk), batch_size):
                    rows = chunk[first : first + batch_size]
                    _fold_in(table, rows.to(table.device), _encode(model, sequences, starts, ends, rows), momentum)
                    bar.update(len(rows))
                continue
            rows_per_rank = math.ceil(len(chunk) / world)
            own = chunk[rank::world]
            filler = own[-1:] if len(own) else chunk[-1:]  # a short share repeats a row
            own = torch.cat([own, filler.expand(rows_per_rank - len(own))])
            local = torch.empty(rows_per_rank, table.shape[1], dtype=table.dtype, device=table.device)
            for first in range(0, rows_per_rank, batch_size):
                local[first : first + batch_size] = _encode(
                    model, sequences, starts, ends, own[first : first + batch_size]
                ).to(table.dtype)
            gathered = all_gather(local).view(world, rows_per_rank, -1)
            for other in range(world):  # process `other` encoded chunk positions other, other + world, ...
                rows = chunk[other::world]
                _fold_in(table, rows.to(table.device), gathered[other, : len(rows)], momentum)
            bar.update(len(chunk))


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
