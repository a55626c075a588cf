"""The knowledge graph (JAKET §3.1), its neighbour sampling (§3.2) and the random walks that pick root entities
(§3.6). All sampling is vectorised torch code: no Python loop over entities."""

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers.utils import logging

from .hub import read_json, resolve_file

logger = logging.get_logger(__name__)

GRAPH_TENSORS_NAME = "graph.safetensors"
GRAPH_VOCAB_NAME = "graph.json"
CSR_CONFIG_NAME = "csr.json"
CSR_ARRAYS = ("rowptr", "targets", "neighbours", "edge_types")  # what `save_csr` writes and `from_csr` maps


# §3.2: two hops, 10 neighbours sampled per entity at each; every sampler's and every script's default
DEFAULT_FANOUTS = (10, 10)


@dataclass
class Subgraph:
    """A sampled subgraph in local indices.

    entity_ids: [n] global ids; the first `num_seeds` are the (deduplicated) seeds, in the order given.
    edge_index: [2, e] local indices, row 0 the neighbour u, row 1 the target v.
    edge_type: [e] relation id of each edge.
    edge_ids: [e] position of each edge in the graph's CSR arrays (distinct: sampling is without replacement).
    """

    entity_ids: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor
    edge_ids: torch.Tensor
    num_seeds: int

    def inputs(self, visible: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The knowledge module's graph inputs (`JaketModel.forward`'s `subgraph_entity_ids`, `edge_index`,
        `edge_type`), with only the edges where `visible` (a boolean per edge) is True, if given."""
        if visible is None:
            return {"subgraph_entity_ids": self.entity_ids, "edge_index": self.edge_index, "edge_type": self.edge_type}
        return {
            "subgraph_entity_ids": self.entity_ids,
            "edge_index": self.edge_index[:, visible],
            "edge_type": self.edge_type[visible],
        }


def unique_in_order(ids: torch.Tensor) -> torch.Tensor:
    """Distinct values of `ids` in order of first occurrence."""
    if ids.numel() == 0:
        return ids
    uniques, inverse = torch.unique(ids, return_inverse=True)
    positions = torch.arange(ids.numel(), device=ids.device)
    first = torch.full((uniques.numel(),), ids.numel(), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, positions, reduce="amin")
    return ids[first.sort().values]


def sample_without_replacement(degrees: torch.Tensor, k: int, generator=None) -> torch.Tensor:
    """k distinct offsets in [0, degree) for each row whose degree is >= k, by Floyd's algorithm vectorised over
    rows (k iterations, none over rows; none at all without rows, so a huge k costs nothing where no degree reaches
    it). Returns [rows, k]."""
    chosen = torch.empty(degrees.numel(), k, dtype=torch.long)
    if degrees.numel() == 0:
        return chosen
    for i in range(k):
        j = degrees - k + i
        t = (torch.rand(degrees.numel(), generator=generator) * (j + 1).to(torch.float64)).long().minimum(j)
        taken = (chosen[:, :i] == t.unsqueeze(1)).any(dim=1)
        chosen[:, i] = torch.where(taken, j, t)
    return chosen


def _columns(records, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, list]:
    """The named fields of `records` as lists: a `datasets.Dataset` by column (row by row is far slower), a list of
    dicts by key. An `optional` field is kept only when the (first) record has it."""
    if hasattr(records, "column_names"):
        present = [*names, *(name for name in optional if name in records.column_names)]
        return {name: records[name][:] for name in present}
    records = list(records)
    present = [*names, *(name for name in optional if records and name in records[0])]
    return {name: [record[name] for record in records] for name in present}


class KnowledgeGraph:
    """A multi-relational graph over entities 0..N-1 and relations 0..P-1 with, optionally, their names,
    descriptions, category labels and other names (`entity_aliases`: a list of strings per entity, which the
    processor's mention finder matches as it matches the names).

    Each triple (v, r, u) makes (r, u) a neighbour of v: edges are stored in CSR by target v (`rowptr`,
    `neighbours`, `edge_types`), and a sampled edge has u in `edge_index[0]` and v in `edge_index[1]`, as the
    knowledge module expects. Add reversed triples yourself where messages should flow both ways.
    """

    def __init__(
        self,
        heads,
        relations,
        tails,
        num_entities: int,
        num_relations: int,
        entity_names: list[str] | None = None,
        relation_names: list[str] | None = None,
        entity_descriptions: list[str] | None = None,
        relation_descriptions: list[str] | None = None,
        entity_categories=None,
        category_names: list[str] | None = None,
        entity_ids: list[str] | None = None,
        relation_ids: list[str] | None = None,
        entity_aliases: list[list[str]] | None = None,
    ):
        heads, relations, tails = (
            as_index_tensor(x, f"triple {n}s").reshape(-1)
            for x, n in ((heads, "head"), (relations, "relation"), (tails, "tail"))
        )
        if not heads.shape == relations.shape == tails.shape:
            raise ValueError(
                f"heads, relations and tails differ in length: {heads.numel()}, {relations.numel()}, {tails.numel()}"
            )
        for name, values, bound in (("head", heads, num_entities), ("tail", tails, num_entities)):
            _check_range(f"triple {name}", values, bound, "num_entities")
        _check_range("triple relation", relations, num_relations, "num_relations")
        for name, values, count in (
            ("entity_names", entity_names, num_entities),
            ("entity_descriptions", entity_descriptions, num_entities),
            ("relation_names", relation_names, num_relations),
            ("relation_descriptions", relation_descriptions, num_relations),
            ("entity_ids", entity_ids, num_entities),
            ("relation_ids", relation_ids, num_relations),
            ("entity_aliases", entity_aliases, num_entities),
        ):
            _check_list(name, values)
            if values is not None and len(values) != count:
                raise ValueError(f"{name} has {len(values)} entries for {count} {name.split('_')[0]}s")
        _check_list("category_names", category_names)
        for name, values in (
            ("entity_names", entity_names),
            ("relation_names", relation_names),
            ("entity_ids", entity_ids),
            ("relation_ids", relation_ids),
            ("category_names", category_names),
        ):
            _check_strings(name, values)
        for name, values in (
            ("entity_descriptions", entity_descriptions),
            ("relation_descriptions", relation_descriptions),
        ):
            _check_strings(name, values, missing_allowed=True)  # encoding the memory refuses a missing one
        for entity, aliases in enumerate(entity_aliases or []):
            if aliases is not None and (isinstance(aliases, str) or not isinstance(aliases, (list, tuple))):
                raise ValueError(f"entity_aliases[{entity}] must be a list of strings, got {aliases!r}")
            _check_strings(f"entity_aliases[{entity}]", aliases)
        for name, keys in (("entity_ids", entity_ids), ("relation_ids", relation_ids)):
            _check_unique(name, keys)
        if entity_categories is not None:
            entity_categories = as_index_tensor(entity_categories, "entity_categories")
            if entity_categories.shape != (num_entities,):
                raise ValueError(
                    f"entity_categories has shape {tuple(entity_categories.shape)}, not ({num_entities},)"
                )
            bad = entity_categories < -1  # -1: an entity without a category
            if category_names is not None:
                bad |= entity_categories >= len(category_names)
            if bad.any():
                entity = int(bad.nonzero()[0])
                bound = f"len(category_names)={len(category_names)}" if category_names is not None else "..."
                raise ValueError(
                    f"entity_categories[{entity}] is {int(entity_categories[entity])}, outside [-1, {bound}) "
                    "(-1: no category)"
                )

        self.num_entities = num_entities
        self.num_relations = num_relations
        self.entity_names = entity_names
        self.relation_names = relation_names
        self.entity_descriptions = entity_descriptions
        self.relation_descriptions = relation_descriptions
        self.entity_categories = entity_categories
        self.category_names = category_names
        self.entity_ids = entity_ids
        self.relation_ids = relation_ids
        self.entity_aliases = [list(aliases or []) for aliases in entity_aliases] if entity_aliases else None
        self.entity_index = {key: i for i, key in enumerate(entity_ids)} if entity_ids is not None else None

        order = torch.argsort(heads, stable=True)
        self.targets = heads[order]
        self.neighbours = tails[order]
        self.edge_types = relations[order]
        self.rowptr = torch.zeros(num_entities + 1, dtype=torch.long)
        self.rowptr[1:] = torch.cumsum(torch.bincount(self.targets, minlength=num_entities), 0)

    @classmethod
    def from_records(
        cls, entities, relations, triples, category_names: list[str] | None = None, add_reverse: bool = False
    ) -> "KnowledgeGraph":
        """A graph from records in `datasets_scripts`' schema: entities with `id`, `name`, `description` and
        optionally `category` and `aliases`; relations with `id`, `name`, `description`; triples with `head`,
        `relation`, `tail` naming those ids. Triples whose ends are not among `entities` are left out (pass the
        triples of the part you want). `add_reverse` adds, for each relation r, an inverse relation `r^-1` and the
        reversed triples, so that messages flow both ways."""
        entities = _columns(entities, ("id", "name", "description"), optional=("category", "aliases"))
        relations = _columns(relations, ("id", "name", "description"))
        triples = _columns(triples, ("head", "relation", "tail"))
        entity_index = {key: i for i, key in enumerate(entities["id"])}
        relation_index = {key: i for i, key in enumerate(relations["id"])}
        if len(entity_index) != len(entities["id"]) or len(relation_index) != len(relations["id"]):
            raise ValueError("entity and relation ids must be distinct")
        heads, kinds, tails = [], [], []
        for number, (head, relation, tail) in enumerate(zip(triples["head"], triples["relation"], triples["tail"])):
            if relation not in relation_index:
                raise ValueError(f"triple {number} has relation {relation!r}, which is not among the relations")
            head, tail = entity_index.get(head), entity_index.get(tail)
            if head is not None and tail is not None:
                heads.append(head)
                kinds.append(relation_index[relation])
                tails.append(tail)
        if len(heads) < len(triples["head"]):  # by design (a part's graph), but counted
            logger.info(
                f"KnowledgeGraph.from_records: {len(triples['head']) - len(heads)} of {len(triples['head'])} triples "
                f"left out, an end outside the {len(entity_index)} entities"
            )
        relation_ids, relation_names = list(relations["id"]), list(relations["name"])
        relation_descriptions = list(relations["description"])
        if add_reverse:
            count = len(relation_ids)
            heads, kinds, tails = heads + tails, kinds + [k + count for k in kinds], tails + heads
            relation_ids += [f"{r}^-1" for r in relation_ids]
            relation_names += [f"inverse of {name}" for name in relation_names[:count]]
            relation_descriptions += [f"inverse of {text}" for text in relation_descriptions[:count]]
        return cls(
            heads,
            kinds,
            tails,
            len(entities["id"]),
            len(relation_ids),
            entity_names=entities["name"],
            relation_names=relation_names,
            entity_descriptions=entities["description"],
            relation_descriptions=relation_descriptions,
            entity_categories=entities.get("category"),
            category_names=category_names,
            entity_ids=entities["id"],
            relation_ids=relation_ids,
            entity_aliases=entities.get("aliases"),
        )

    @property
    def num_triples(self) -> int:
        return self.targets.numel()

    def degree(self, entity_ids: torch.Tensor | None = None) -> torch.Tensor:
        degrees = self.rowptr[1:] - self.rowptr[:-1]
        return degrees if entity_ids is None else degrees[entity_ids]

    def _sample_edges(self, targets: torch.Tensor, fanout: int, generator=None) -> torch.Tensor:
        """CSR positions of at most `fanout` distinct incoming edges of each target, uniformly without replacement."""
        starts, degrees = self.rowptr[targets], self.degree(targets)
        small = degrees <= fanout
        small_starts, small_degrees = starts[small], degrees[small]
        segment = torch.repeat_interleave(torch.arange(small_degrees.numel()), small_degrees)
        segment_begin = torch.cumsum(small_degrees, 0) - small_degrees
        all_edges = small_starts[segment] + torch.arange(segment.numel()) - segment_begin[segment]
        large = ~small
        sampled = self.rowptr[targets[large]].unsqueeze(1) + sample_without_replacement(
            degrees[large], fanout, generator
        )
        return torch.cat([all_edges, sampled.reshape(-1)])

    def sample_subgraph(
        self, seed_entities, fanouts=DEFAULT_FANOUTS, generator: torch.Generator | None = None
    ) -> Subgraph:
        """The multi-hop neighbourhood of `seed_entities`: at hop h, each entity first reached at hop h - 1 (the seeds
        at hop 1) gets up to `fanouts[h - 1]` of its incoming edges, sampled uniformly without replacement."""
        seeds = as_index_tensor(seed_entities, "seed entities").reshape(-1)
        if seeds.numel() == 0:
            raise ValueError("sample_subgraph needs at least one seed entity")
        _check_range("seed entity", seeds, self.num_entities, "num_entities")
        if any(f < 0 for f in fanouts):
            raise ValueError(f"fanouts must be non-negative, got {tuple(fanouts)}")
        nodes = unique_in_order(seeds)
        num_seeds = nodes.numel()
        frontier = nodes
        edge_ids = [torch.zeros(0, dtype=torch.long)]  # no hops: the seeds alone
        for fanout in fanouts:
            sampled = self._sample_edges(frontier, fanout, generator)
            edge_ids.append(sampled)
            reached = self.neighbours[sampled]
            frontier = unique_in_order(reached[~torch.isin(reached, nodes)])
            nodes = torch.cat([nodes, frontier])
        edge_ids = torch.cat(edge_ids)
        sorted_nodes, permutation = nodes.sort()

        def local(ids):
            return permutation[torch.searchsorted(sorted_nodes, ids)]

        edge_index = torch.stack([local(self.neighbours[edge_ids]), local(self.targets[edge_ids])])
        return Subgraph(nodes, edge_index, self.edge_types[edge_ids], edge_ids, num_seeds)

    def sample_neighbours(self, entity_ids: torch.Tensor, count: int, generator=None) -> torch.Tensor:
        """[len(entity_ids), count] neighbours of each entity, distinct where the degree allows, padded with random
        entities where it is smaller than `count`: the masked-entity task's hard negatives."""
        degrees = self.degree(entity_ids)
        offsets = torch.empty(entity_ids.numel(), count, dtype=torch.long)
        large = degrees >= count
        offsets[large] = sample_without_replacement(degrees[large], count, generator)
        small = ~large
        offsets[small] = torch.arange(count).expand(int(small.sum()), count)
        positions = (self.rowptr[entity_ids].unsqueeze(1) + offsets).clamp(max=max(self.num_triples - 1, 0))
        neighbours = self.neighbours[positions] if self.num_triples else torch.zeros_like(positions)
        padding = torch.randint(self.num_entities, neighbours.shape, generator=generator)
        return torch.where(offsets < degrees.unsqueeze(1), neighbours, padding)

    def random_walks(self, num_walks: int, walk_length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """[num_walks, walk_length + 1] entity ids of uniform random walks from uniform random starts; a walk that
        reaches an entity without neighbours restarts at a random entity."""
        current = torch.randint(self.num_entities, (num_walks,), generator=generator)
        path = [current]
        for _ in range(walk_length):
            degrees = self.degree(current)
            offsets = (torch.rand(num_walks, generator=generator) * degrees).long().minimum((degrees - 1).clamp(min=0))
            restart = torch.randint(self.num_entities, (num_walks,), generator=generator)
            if not self.num_triples:  # a graph without triples: every walk restarts
                current = restart
            else:
                step = self.neighbours[(self.rowptr[current] + offsets).clamp(max=self.num_triples - 1)]
                current = torch.where(degrees > 0, step, restart)
            path.append(current)
        return torch.stack(path, dim=1)

    def sample_roots(self, num_roots: int, walk_length: int = 4, generator: torch.Generator | None = None):
        """`num_roots` distinct root entities (all of them if the graph has fewer) for a pre-training step, taken
        from random walks (§3.6), so that the roots are near each other and their subgraphs overlap."""
        num_walks = max(1, -(-num_roots // (walk_length + 1)))
        visited = torch.empty(0, dtype=torch.long)
        while visited.numel() < min(num_roots, self.num_entities):  # walks that double back visit fewer entities
            walks = self.random_walks(num_walks, walk_length, generator).reshape(-1)
            visited = unique_in_order(torch.cat([visited, walks]))
        return visited[:num_roots]

    def save_csr(self, directory: str | os.PathLike) -> None:
        """The graph's structure alone, one `.npy` file an array (the CSR by target, the categories) beside
        `csr.json` (the counts and category names): what `from_csr` maps, so that the processes and loader workers of
        one machine share a single copy in the page cache."""
        os.makedirs(directory, exist_ok=True)
        arrays = {name: getattr(self, name) for name in CSR_ARRAYS}
        if self.entity_categories is not None:
            arrays["entity_categories"] = self.entity_categories
        for name, tensor in arrays.items():
            np.save(os.path.join(directory, f"{name}.npy"), tensor.numpy())
        counts = {"num_entities": self.num_entities, "num_relations": self.num_relations}
        with open(os.path.join(directory, CSR_CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump({**counts, "category_names": self.category_names}, f, ensure_ascii=False)

    @classmethod
    def from_csr(cls, directory: str | os.PathLike) -> "KnowledgeGraph":
        """A graph of structure alone (no names, descriptions or ids) from `save_csr`, its arrays memory-mapped
        read-only: sampling reads them, nothing writes them."""
        directory = Path(directory)
        try:
            counts = read_json(directory / CSR_CONFIG_NAME)
            names = [*CSR_ARRAYS, *(["entity_categories"] if (directory / "entity_categories.npy").is_file() else [])]
            with warnings.catch_warnings():  # read-only by design: torch warns that it cannot write to them
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                arrays = {name: torch.from_numpy(np.load(directory / f"{name}.npy", mmap_mode="r")) for name in names}
        except (OSError, ValueError) as error:
            raise ValueError(f"{directory}: not a graph saved by save_csr ({type(error).__name__}: {error})") from None
        rowptr, targets = arrays["rowptr"], arrays["targets"]
        if (
            rowptr.shape != (counts["num_entities"] + 1,)
            or int(rowptr[-1]) != targets.numel()
            or not (targets.shape == arrays["neighbours"].shape == arrays["edge_types"].shape)
        ):
            raise ValueError(f"{directory}: the saved CSR arrays do not hold together")
        graph = cls.__new__(cls)  # the fields `__init__` sets, from arrays already in CSR order
        graph.num_entities, graph.num_relations = counts["num_entities"], counts["num_relations"]
        graph.category_names = counts["category_names"]
        graph.entity_categories = arrays.get("entity_categories")
        graph.entity_names = graph.relation_names = graph.entity_descriptions = graph.relation_descriptions = None
        graph.entity_ids = graph.relation_ids = graph.entity_aliases = graph.entity_index = None
        graph.rowptr, graph.targets = rowptr, targets
        graph.neighbours, graph.edge_types = arrays["neighbours"], arrays["edge_types"]
        return graph

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        os.makedirs(directory, exist_ok=True)
        tensors = {"heads": self.targets, "relations": self.edge_types, "tails": self.neighbours}
        if self.entity_categories is not None:
            tensors["entity_categories"] = self.entity_categories
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(directory, GRAPH_TENSORS_NAME))
        vocab = {
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "entity_names": self.entity_names,
            "relation_names": self.relation_names,
            "entity_descriptions": self.entity_descriptions,
            "relation_descriptions": self.relation_descriptions,
            "category_names": self.category_names,
            "entity_ids": self.entity_ids,
            "relation_ids": self.relation_ids,
            "entity_aliases": self.entity_aliases,
        }
        with open(os.path.join(directory, GRAPH_VOCAB_NAME), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, subfolder: str = "", **hub_kwargs) -> "KnowledgeGraph":
        """A graph saved with `save_pretrained`, from a folder or a Hub repo id: a pre-training run saves it in the
        `graph` subfolder of the model (`KnowledgeGraph.from_pretrained("jaket-base", subfolder="graph")`)."""
        what = "knowledge graph file (save one with KnowledgeGraph.save_pretrained)"
        tensors_path = resolve_file(name_or_path, GRAPH_TENSORS_NAME, what, subfolder, **hub_kwargs)
        vocab_path = resolve_file(name_or_path, GRAPH_VOCAB_NAME, what, subfolder, **hub_kwargs)
        try:
            tensors = load_file(tensors_path)
        except Exception as error:  # safetensors raises its own error types for a damaged file
            raise ValueError(
                f"{tensors_path}: not a readable safetensors file ({type(error).__name__}: {error})"
            ) from None
        missing = sorted({"heads", "relations", "tails"} - set(tensors))
        if missing:
            raise ValueError(f"{tensors_path}: no {missing} table; it holds {sorted(tensors)}")
        vocab = read_json(vocab_path)
        if not isinstance(vocab, dict):
            raise ValueError(
                f"{vocab_path}: expected a JSON object of names and descriptions, got {type(vocab).__name__}"
            )
        try:
            return cls(
                tensors["heads"],
                tensors["relations"],
                tensors["tails"],
                entity_categories=tensors.get("entity_categories"),
                **vocab,
            )
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{os.path.dirname(tensors_path)}: the saved graph does not hold together ({error})"
            ) from None


def as_index_tensor(values, name: str) -> torch.Tensor:
    """`values` as a long tensor of ids; floats (which would be truncated) and booleans (True would be id 1) are
    refused, naming `name`."""
    tensor = torch.as_tensor(values)
    if tensor.numel() and (tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex()):
        raise ValueError(f"{name} must be integer ids, got a {tensor.dtype} tensor")
    return tensor.long()


def _check_list(name: str, values) -> None:
    if values is not None and (isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__")):
        raise ValueError(f"{name} must be a list, got {values!r:.80}")


def _check_strings(name: str, values, missing_allowed: bool = False) -> None:
    """Every value of `values` (where given) a string, or None where `missing_allowed`."""
    if values is None or set(map(type, values)) <= ({str, type(None)} if missing_allowed else {str}):
        return
    for index, value in enumerate(values):
        if not isinstance(value, str) and not (missing_allowed and value is None):
            raise ValueError(f"{name}[{index}] must be a string, got {value!r}")


def _check_unique(name: str, keys) -> None:
    if keys is None or len(set(keys)) == len(keys):
        return
    first = {}
    for index, key in enumerate(keys):
        if key in first:
            raise ValueError(f"{name}[{index}] repeats {key!r} (also {name}[{first[key]}]): keys must be unique")
        first[key] = index


def _check_range(what: str, values: torch.Tensor, bound: int, bound_name: str) -> None:
    if values.numel() and (values.min() < 0 or values.max() >= bound):
        bad = ((values < 0) | (values >= bound)).nonzero()[0].item()
        raise ValueError(f"{what} at position {bad} is {int(values[bad])}, outside [0, {bound_name}={bound})")
