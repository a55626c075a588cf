"""Pre-training data prepared once (`pretrain.py --prepare_only`, or the first launch), into files that every rank
maps instead of building them: tokenized windows as Arrow (memory-mapped), descriptions as int32 arrays (memory-
mapped), the graph's structure and the confusable entities as tensors. A folder is named by the fingerprint of its
inputs (the sources, the builders' and the tokenization's code, the tokenizer, the data flags), so that a changed input
prepares anew and an unchanged one is read in seconds.

    <prepared_dir>/<key>/
        windows/           the training text in windows (datasets' save_to_disk)
        structure/         the graph's CSR arrays (`KnowledgeGraph.save_csr`), memory-mapped: what the collator samples
                           from, one copy in the page cache for every process of a machine
        graph/             the whole graph, copied beside the saved model for its processor
        entity_ids.json    the entities' ids, in the graph's order: what the held-out evaluation needs of the graph
        confusables/       entities that share a surface form (CSR, memory-mapped), L_e's hard negatives
        aliases/           each entity's surface forms (Arrow: a list of strings a row), the held-out evaluation's
                           string-match floor
        heldout/           the held-out text, as the builder gives it (where --heldout_text_fraction holds some out)
        descriptions/      entity_* and relation_* arrays, one .npy each: input_ids [count, length] int32 (padded
                           with -1), lengths, mention_starts, mention_ends
        manifest.json      the flags and counts it was prepared with; written last: it marks the folder complete
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from transformers.utils import logging

import datasets_scripts
from datasets_scripts.common import source_fingerprint
from modeling_jaket import KnowledgeGraph
from modeling_jaket.collator import confusable_entities
from modeling_jaket.hub import read_json
from modeling_jaket.tokenization_jaket import description_inputs

from .data import load_flagged_data, surface_forms, tokenize_linked_text, tokenizer_vocabulary

logger = logging.get_logger(__name__)

MANIFEST_NAME = "manifest.json"
ENTITY_IDS_NAME = "entity_ids.json"
# the flags whose values shape the prepared data
DATA_FLAGS = (
    "dataset",
    "max_entities",
    "max_train_samples",
    "heldout_text_fraction",
    "heldout_seed",
    "max_seq_length",
    "window_stride",
    "description_length",
)
# the code that shapes it, beside the builders (`datasets_scripts.code_hash`)
CODE = ("data.py", "prepared.py", "../../modeling_jaket/tokenization_jaket.py", "../../modeling_jaket/collator.py")


def prepared_key(args, tokenizer, data_dir) -> str:
    """The fingerprint of what a prepared folder is made from: the source files under `data_dir` (sizes and times),
    the builders' and the tokenization's code, the tokenizer's vocabulary and the data flags."""
    digest = hashlib.sha256(datasets_scripts.code_hash().encode())
    for name in CODE:
        digest.update((Path(__file__).parent / name).read_bytes())
    digest.update(source_fingerprint(data_dir).encode())
    digest.update(tokenizer_vocabulary(tokenizer).encode())
    digest.update(json.dumps({flag: getattr(args, flag) for flag in DATA_FLAGS}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def default_prepared_dir(cache_dir=None) -> Path:
    """Beside datasets' cache (`--dataset_cache_dir`, else `$HF_DATASETS_CACHE`)."""
    return Path(cache_dir or datasets.config.HF_DATASETS_CACHE).expanduser() / "jaket_prepared"


class AliasIndex:
    """Each entity's known surface forms (`surface_forms`), read from a memory-mapped Arrow column as they are asked
    for: `aliases[entity]` is a set of strings, as `surface_forms`' list gives it."""

    def __init__(self, forms: datasets.Dataset):
        self.forms = forms.data.column("forms")

    def __len__(self) -> int:
        return len(self.forms)

    def __getitem__(self, entity: int) -> set[str]:
        return set(self.forms[entity].as_py())


@dataclass
class PreparedData:
    """What every rank maps: the graph's structure (tensors, no names), the windows (Arrow, memory-mapped), the
    descriptions as arrays (memory-mapped), the confusable entities' graph, and the folder (for the entity ids, the
    alias index and the held-out text, which the evaluating process reads, and the whole graph, which the saved model
    gets a copy of)."""

    folder: Path
    structure: KnowledgeGraph
    windows: datasets.Dataset
    entity_descriptions: dict
    relation_descriptions: dict
    confusables: KnowledgeGraph

    def graph_with_ids(self) -> KnowledgeGraph:
        """The mapped structure with the entities' ids, what the held-out evaluation maps mentions through: not the
        names and descriptions of the whole graph's JSON, which grow the evaluating process by kilobytes an entity."""
        graph = KnowledgeGraph.from_csr(self.folder / "structure")
        graph.entity_ids = read_json(self.folder / ENTITY_IDS_NAME)
        graph.entity_index = {key: index for index, key in enumerate(graph.entity_ids)}
        return graph

    def aliases(self) -> AliasIndex:
        return AliasIndex(datasets.load_from_disk(str(self.folder / "aliases")))

    def heldout_text(self) -> datasets.Dataset | None:
        """The held-out text, or None where nothing was held out."""
        folder = self.folder / "heldout"
        return datasets.load_from_disk(str(folder)) if folder.is_dir() else None


def descriptions_as_arrays(encoding) -> dict[str, np.ndarray]:
    """`encode_descriptions`' lists as arrays: input_ids [count, longest] int32 padded with -1, and lengths,
    mention_starts, mention_ends [count] int32."""
    lengths = np.array([len(ids) for ids in encoding["input_ids"]], dtype=np.int32)
    input_ids = np.full((len(lengths), int(lengths.max(initial=0))), -1, dtype=np.int32)
    for row, ids in enumerate(encoding["input_ids"]):
        input_ids[row, : len(ids)] = ids
    starts, ends = (np.asarray(encoding[key], dtype=np.int32) for key in ("mention_starts", "mention_ends"))
    return {"input_ids": input_ids, "lengths": lengths, "mention_starts": starts, "mention_ends": ends}


def prepare(args, tokenizer, data_dir, folder: Path) -> None:
    """Build the prepared data for `args` into `folder` with `args.preprocessing_num_workers` processes: the
    builders' data, the graph, the windows, the descriptions and the confusable entities. Written to a staging
    folder first and renamed into place, so that a folder that exists is complete."""
    num_proc = args.preprocessing_num_workers
    seconds, start = {}, time.perf_counter()
    data = load_flagged_data(args, data_dir, num_proc)
    graph = data.graph
    seconds["sources"] = time.perf_counter() - start
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".preparing-"))
    try:
        windows = tokenize_linked_text(
            data.text, tokenizer, graph, args.max_seq_length, args.window_stride, num_proc, staging / "tokenized"
        )
        seconds["windows"] = time.perf_counter() - start - seconds["sources"]
        windows.save_to_disk(str(staging / "windows"), num_proc=num_proc)
        shutil.rmtree(staging / "tokenized")  # mapped by `windows` still, which only its length is read from now
        graph.save_pretrained(staging / "graph")
        graph.save_csr(staging / "structure")
        (staging / ENTITY_IDS_NAME).write_text(json.dumps(graph.entity_ids, ensure_ascii=False), encoding="utf-8")
        forms = surface_forms(graph, data.text)
        confusable_entities(forms).save_csr(staging / "confusables")
        datasets.Dataset.from_dict({"forms": [sorted(entity_forms) for entity_forms in forms]}).save_to_disk(
            str(staging / "aliases")
        )
        del forms
        if data.heldout_text is not None:
            data.heldout_text.save_to_disk(str(staging / "heldout"))
        entities, relations = description_inputs(tokenizer, graph, args.description_length)
        (staging / "descriptions").mkdir()
        for prefix, encoding in (("entity", entities), ("relation", relations)):
            for key, array in descriptions_as_arrays(encoding).items():
                np.save(staging / "descriptions" / f"{prefix}_{key}.npy", array)
        manifest = {
            "flags": {flag: getattr(args, flag) for flag in DATA_FLAGS},
            "data_dir": str(data_dir),
            "entities": graph.num_entities,
            "relations": graph.num_relations,
            "triples": graph.num_triples,
            "texts": len(data.text),
            "windows": len(windows),
            "heldout_texts": len(data.heldout_text) if data.heldout_text is not None else 0,
            # the builders (the graph's two passes and the text), the tokenization, and the rest (writing, the
            # descriptions, the confusable entities)
            "seconds": {**seconds, "rest": time.perf_counter() - start - sum(seconds.values())},
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(staging, folder)
    except OSError:
        if not (folder / MANIFEST_NAME).is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)  # another process prepared it first
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.warning(f"prepared the pre-training data in {folder}: {json.dumps(manifest)}")


def load_prepared(folder: Path) -> PreparedData:
    """Map a prepared folder: nothing is tokenized or built, the windows and descriptions are read from disk as
    they are used."""
    if not (folder / MANIFEST_NAME).is_file():
        raise FileNotFoundError(f"{folder} is no complete prepared folder (no {MANIFEST_NAME})")
    descriptions = [
        {
            key: np.load(folder / "descriptions" / f"{prefix}_{key}.npy", mmap_mode="r")
            for key in ("input_ids", "lengths", "mention_starts", "mention_ends")
        }
        for prefix in ("entity", "relation")
    ]
    return PreparedData(
        folder,
        KnowledgeGraph.from_csr(folder / "structure"),
        datasets.load_from_disk(str(folder / "windows")),
        *descriptions,
        KnowledgeGraph.from_csr(folder / "confusables"),
    )
