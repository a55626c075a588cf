"""`JaketProcessor`: text and its entity mentions -> every input of `JaketModel.forward`, with the tokenizer, the
knowledge graph and the entity context memory saved together (`AutoProcessor.from_pretrained(folder,
trust_remote_code=True)` loads them)."""

import difflib
import os
from collections.abc import Sequence

import torch
from transformers import BatchEncoding, ProcessorMixin
from transformers.utils import logging

from .collator import DataCollatorWithMentions, pad_rows
from .graph import DEFAULT_FANOUTS, KnowledgeGraph
from .hub import read_json, resolve_file
from .memory import EntityContextMemory
from .mentions import MentionFinder
from .tokenization_jaket import check_span, tokenize_with_mentions
from .validation import is_int

GRAPH_SUBFOLDER = "graph"
PROCESSOR_SETTINGS_NAME = "processor_config.json"
logger = logging.get_logger(__name__)


def check_texts(text) -> list[str]:
    """`text` (a string or a list of them) as a non-empty list of strings, or a ValueError naming what is not."""
    if not isinstance(text, (str, list, tuple)):
        raise ValueError(f"text must be a string or a list of strings, got {type(text).__name__}")
    texts = [text] if isinstance(text, str) else list(text)
    if not texts:
        raise ValueError("JaketProcessor got no text")
    for example, example_text in enumerate(texts):
        if not isinstance(example_text, str):
            raise ValueError(f"example {example}: text must be a string, got {type(example_text).__name__}")
    return texts


def check_settings(**settings) -> None:
    """The processor's settings given (`fanouts`, `max_length`, `seed`), or a ValueError naming the one that is
    wrong."""
    if "fanouts" in settings:
        fanouts = settings["fanouts"]
        if isinstance(fanouts, (str, bytes)) or not isinstance(fanouts, Sequence):
            raise ValueError(f"fanouts must be a list of neighbour counts, one a hop, got {fanouts!r}")
        if not all(is_int(fanout) and 0 <= fanout < 2**31 for fanout in fanouts):
            raise ValueError(
                f"fanouts must be integers in [0, 2**31) (neighbours sampled a hop), got {list(fanouts)!r}"
            )
    max_length = settings.get("max_length", 3)
    if not is_int(max_length) or not 3 <= max_length < 2**31:
        raise ValueError(
            f"max_length must be an integer in [3, 2**31) (a start token, some text, an end token), got {max_length!r}"
        )
    seed = settings.get("seed", 0)
    if not is_int(seed) or not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [-2**63, 2**64) (torch.Generator.manual_seed), got {seed!r}")


def check_parts(graph, memory) -> None:
    """The memory holds a row for every entity and relation of the graph."""
    if graph is None or memory is None:
        return
    for what, in_graph, in_memory in (
        ("entities", graph.num_entities, memory.num_entities),
        ("relations", graph.num_relations, memory.num_relations),
    ):
        if in_graph != in_memory:
            raise ValueError(f"the graph has {in_graph} {what} but the memory {in_memory}")


class JaketProcessor(ProcessorMixin):
    r"""Builds `JaketModel`'s inputs from text in one call, as LUKE's tokenizer does from `entity_spans`:

    ```python
    processor = AutoProcessor.from_pretrained("jaket-base", trust_remote_code=True)
    inputs = processor("The dog barked.", entity_spans=[(4, 7)], entities=["dog"])
    output = model(**inputs)
    ```

    Steps: 1. resolve each mention's entity (an id, a key of `graph.entity_ids`, or a name or alias of exactly one
    entity); 2. tokenize, mapping each mention's character span to its tokens; 3. sample the subgraph around the
    mentioned entities (§3.2: `fanouts` neighbours a hop, seeded so that a call is reproducible); 4. read their
    initial embeddings E^(0) and the relation embeddings from the memory. The processor runs no model: text whose
    entities are not known is linked first (`link_mentions(model, processor, text)`, or the `entity-linking`
    pipeline), which reads the processor's text inputs alone (`return_graph_inputs=False`).

    Args:
        tokenizer: a fast tokenizer (character offsets map the spans).
        graph (`KnowledgeGraph`): the entities the mentions name; saved in the `graph` subfolder.
        memory (`EntityContextMemory`): E^(0) of every entity and relation of `graph`.
        fanouts: neighbours sampled per entity at each hop.
        max_length: tokens kept per text; mentions beyond it are dropped, with a warning.
        seed: the neighbour sampling's seed.
    """

    def __init__(
        self,
        tokenizer=None,
        graph: KnowledgeGraph | None = None,
        memory: EntityContextMemory | None = None,
        fanouts: Sequence[int] = DEFAULT_FANOUTS,
        max_length: int = 512,
        seed: int = 0,
    ):
        super().__init__(tokenizer)
        check_settings(fanouts=fanouts, max_length=max_length, seed=seed)
        check_parts(graph, memory)
        self.graph = graph
        self.memory = memory
        self.fanouts = list(fanouts)
        self.max_length = max_length
        self.seed = seed
        self._mention_finder = None

    @property
    def mention_finder(self) -> MentionFinder:
        if self._mention_finder is None:
            self._mention_finder = MentionFinder(self.require("graph"))
        return self._mention_finder

    def require(self, part: str):
        if getattr(self, part) is None:
            raise ValueError(f"this JaketProcessor has no {part}: pass {part}= when building it")
        return getattr(self, part)

    def __call__(
        self,
        text: str | Sequence[str],
        entity_spans: Sequence | None = None,
        entities: Sequence | None = None,
        text_pair: str | Sequence[str] | None = None,
        entity_spans_pair: Sequence | None = None,
        entities_pair: Sequence | None = None,
        max_length: int | None = None,
        padding: bool | str = True,
        truncation: bool = True,
        return_tensors: str | None = "pt",
        return_graph_inputs: bool = True,
    ) -> BatchEncoding:
        """`text` (a string or a batch), `entity_spans` (characters `(start, end)`, Python-slice style; a list per
        text for a batch; omitted: every name or alias of the graph found in the text) and `entities` (one per span:
        an id, a key of `graph.entity_ids`, or a name or alias of one entity) -> `input_ids`, `attention_mask`,
        `mention_entity_ids`, `mention_starts`, `mention_ends` and, where there are mentions, `subgraph_entity_ids`,
        `edge_index`, `edge_type`, `entity_init_embeddings` and `relation_embeddings` (`return_graph_inputs=False`:
        the text's inputs alone; with `entities` omitted too, `mention_indices` in place of `mention_entity_ids`: which
        of the text's spans each mention is, -1 padding, for a linker to resolve). `text_pair` (with
        `entity_spans_pair` and `entities_pair`, as LUKE's tokenizer takes them) makes each text the first of a
        sequence pair; the pair's mentions follow the text's (and `token_type_ids` come with a tokenizer that has
        them). `max_length` (this call's, else the processor's) tokens are kept a text, or every token with
        `truncation=False` (the model then needs positions for the longest); `padding` True or `"longest"` pads to
        the longest text, `"max_length"` to `max_length` (to a multiple of it without truncation); `return_tensors`
        `"pt"`, `"np"` or None (lists), as a tokenizer's."""
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        if padding not in (True, "longest", "max_length"):
            raise ValueError(f"padding must be True, 'longest' or 'max_length', got {padding!r}")
        if max_length is None:
            max_length = self.max_length  # checked when the processor was built
        else:
            check_settings(max_length=max_length)
        single = isinstance(text, str)
        texts = check_texts(text)
        pairs = None
        if text_pair is not None:
            if isinstance(text_pair, str) != single:
                raise ValueError("text_pair must be a string for one text, a list of them for a batch")
            pairs = check_texts(text_pair)
            if len(pairs) != len(texts):
                raise ValueError(f"text_pair has {len(pairs)} texts for {len(texts)} texts")
        elif entity_spans_pair is not None or entities_pair is not None:
            raise ValueError("entity_spans_pair and entities_pair need text_pair, the text they are spans of")
        given = self._batched("entities", entities, single, len(texts))
        found = entity_spans is None  # then every name or alias found, in the pair too
        # 1. the entity of each mention
        mentions = self._mentions(texts, entity_spans, given, single, "", found)
        if given is None and return_graph_inputs:
            raise ValueError(
                "entities were not given: pass entities=, or link the mentions first (link_mentions(model, "
                "processor, text), or the entity-linking pipeline); return_graph_inputs=False gives the text's "
                "inputs alone"
            )
        pair_mentions = None
        if pairs is not None:
            given_pair = self._batched("entities_pair", entities_pair, single, len(pairs))
            if given is not None and given_pair is None:
                given_pair = [[] for _ in pairs]  # the pair then has no span either (checked below)
            pair_mentions = self._mentions(pairs, entity_spans_pair, given_pair, single, "_pair", found)
        # 2. tokens, and each mention's tokens
        encoding = tokenize_with_mentions(
            self.tokenizer,
            texts,
            mentions,
            max_length=max_length,
            text_pairs=pairs,
            pair_mentions=pair_mentions,
            truncation=truncation,
        )
        multiple = max_length if padding == "max_length" else None  # truncated, every row is at most max_length
        batch = DataCollatorWithMentions(self.tokenizer.pad_token_id, pad_to_multiple_of=multiple)(
            [{key: encoding[key][i] for key in encoding} for i in range(len(texts))]
        )
        if given is None:
            batch["mention_indices"] = pad_rows(
                encoding["mention_indices"], batch["mention_starts"].shape[1], -1, "mention_indices"
            )
        # 3.-4. the subgraph around them and its embeddings
        seeds = batch["mention_entity_ids"][batch["mention_entity_ids"] >= 0] if given is not None else None
        if return_graph_inputs and seeds.numel():
            batch.update(self.graph_inputs(seeds))
        if return_tensors != "pt":
            batch = {key: value.numpy() if return_tensors == "np" else value.tolist() for key, value in batch.items()}
        return BatchEncoding(batch, tensor_type=return_tensors)

    def _mentions(self, texts, entity_spans, given, single, suffix: str, found: bool) -> list[list[tuple]]:
        """Each text's mentions for `tokenize_with_mentions`: `(start, end, entity id)`, or `(start, end)` where no
        entity is given; the spans checked, or found by name (`found`). `suffix` ("" or "_pair") names the
        arguments in errors."""
        spans = self._batched(f"entity_spans{suffix}", entity_spans, single, len(texts))
        if spans is None:
            if given is not None and any(given):
                raise ValueError(
                    f"entities{suffix} were given without entity_spans{suffix}: say where each entity is mentioned"
                )
            spans = [[(start, end) for start, end, _ in self.mention_finder.find(t)] if found else [] for t in texts]
        for example, (example_text, example_spans) in enumerate(zip(texts, spans)):
            for index, span in enumerate(example_spans):
                check_span(span, f"example {example}, span{suffix} {index}", listed_in=f"entity_spans{suffix}")
            if given is not None and len(given[example]) != len(example_spans):
                raise ValueError(
                    f"example {example}: {len(example_spans)} entity_spans{suffix} but {len(given[example])} "
                    f"entities{suffix}"
                )
            if not example_text.strip():
                raise ValueError(f"example {example}: text{suffix} is empty")
        if given is None:
            return [list(example_spans) for example_spans in spans]
        return [
            [(*span, self.entity_id(entity, e, i)) for i, (span, entity) in enumerate(zip(spans[e], given[e]))]
            for e in range(len(texts))
        ]

    @staticmethod
    def _batched(name, values, single, count):
        if values is None:
            return None
        values = [list(values)] if single else [list(v) for v in values]
        if len(values) != count:
            raise ValueError(f"{name} has {len(values)} lists for {count} texts")
        return values

    def entity_id(self, entity, example: int = 0, index: int = 0) -> int:
        """An entity's id in the graph, from an id, a key of `graph.entity_ids`, or a name or alias of one entity."""
        graph = self.require("graph")
        where = f"example {example}, entity {index}"
        if is_int(entity):
            if not 0 <= entity < graph.num_entities:
                raise ValueError(f"{where}: entity id {entity} is outside [0, {graph.num_entities})")
            return entity
        if not isinstance(entity, str):
            raise ValueError(f"{where}: {entity!r} is neither an entity id nor a name")
        if graph.entity_index is not None and entity in graph.entity_index:
            return graph.entity_index[entity]
        candidates = self.mention_finder.candidates(entity)
        if len(candidates) != 1:
            named = "no entity" if not candidates else f"{len(candidates)} entities (ids {candidates[:5]}...)"
            raise ValueError(f"{where}: {entity!r} names {named}; give an id or a key of graph.entity_ids")
        return candidates[0]

    def graph_inputs(self, entity_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The knowledge module's inputs around `entity_ids` (the seeds, first in `subgraph_entity_ids`)."""
        graph, memory = self.require("graph"), self.require("memory")
        generator = torch.Generator().manual_seed(self.seed)
        subgraph = graph.sample_subgraph(entity_ids.cpu(), fanouts=self.fanouts, generator=generator)
        return {
            **subgraph.inputs(),
            "entity_init_embeddings": memory.lookup(subgraph.entity_ids).cpu(),
            "relation_embeddings": memory.relation_embeddings.float().cpu(),
        }

    def to_dict(self) -> dict:
        """The settings saved in `processor_config.json`; the graph and the memory are saved as their own files."""
        graph, memory, finder = self.graph, self.memory, self._mention_finder
        self.graph = self.memory = self._mention_finder = None  # not deep-copied nor serialised by ProcessorMixin
        try:
            output = super().to_dict()
        finally:
            self.graph, self.memory, self._mention_finder = graph, memory, finder
        for key in ("graph", "memory", "_mention_finder"):
            output.pop(key, None)
        return output

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """The tokenizer and `processor_config.json` (and this code, for `trust_remote_code`), the memory beside
        them, and the graph in the `graph` subfolder."""
        files = super().save_pretrained(save_directory, push_to_hub=False)
        if self.memory is not None:
            self.memory.save_pretrained(save_directory)
        if self.graph is not None:
            self.graph.save_pretrained(os.path.join(save_directory, GRAPH_SUBFOLDER))
        if push_to_hub:
            self.push_to_hub(kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory))), **kwargs)
        return files

    @staticmethod
    def _check_saved_settings(name_or_path, hub_kwargs) -> None:
        """`processor_config.json` read strictly before transformers reads it (which keeps the last of a repeated
        key and drops unknown ones): each setting checked, naming the file; an unknown key warned about."""
        try:
            path = resolve_file(name_or_path, PROCESSOR_SETTINGS_NAME, "processor settings", **hub_kwargs)
        except FileNotFoundError:
            return  # transformers' own loading says what is missing
        settings = read_json(path)
        if not isinstance(settings, dict):
            raise ValueError(f"{path}: expected a JSON object of settings, got {type(settings).__name__}")
        known = {"fanouts", "max_length", "seed"}
        for key in sorted(set(settings) - known - {"processor_class", "auto_map"}):
            close = difflib.get_close_matches(key, known, n=1)
            logger.warning(
                f"{path}: unknown setting {key!r} ignored" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
        try:
            check_settings(**{key: settings[key] for key in known if key in settings})
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """The processor `save_pretrained` wrote (or the folder pre-training writes), from a folder or a Hub repo."""
        hub_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir") if kwargs.get(k) is not None}
        cls._check_saved_settings(pretrained_model_name_or_path, hub_kwargs)
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        for part, load in (
            (
                "graph",
                lambda: KnowledgeGraph.from_pretrained(pretrained_model_name_or_path, GRAPH_SUBFOLDER, **hub_kwargs),
            ),
            ("memory", lambda: EntityContextMemory.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)),
        ):
            try:
                setattr(processor, part, load())
            except FileNotFoundError as missing:  # a model of text alone (a baseline without a graph) saves none
                logger.warning(f"{missing}: this processor has no {part}; it tokenizes text and mentions without it")
        try:
            check_parts(processor.graph, processor.memory)
        except ValueError as error:
            raise ValueError(f"{pretrained_model_name_or_path}: {error}") from None
        return processor
