"""A RoBERTa or BERT checkpoint's weights under JAKET's names: one rename table from the backbone's parameter names
to this model's (as transformers' `key_mapping`), and the checkpoint read by transformers itself; or a saved JAKET
model's language model, read back under a checkpoint's names."""

import json
import re
from contextlib import contextmanager

import torch
from safetensors import safe_open
from transformers import AutoModelForMaskedLM
from transformers.utils import logging

from .hub import resolve_file

WEIGHTS_NAME, WEIGHTS_INDEX_NAME = (
    "model.safetensors",
    "model.safetensors.index.json",
)  # as save_pretrained writes them

# the backbone's LM head in both checkpoint families -> JAKET's `lm_head`
LM_HEAD_RENAMES = {
    "lm_head.dense.": "lm_head.dense.",
    "lm_head.layer_norm.": "lm_head.layer_norm.",
    "lm_head.bias": "lm_head.bias",
    "cls.predictions.transform.dense.": "lm_head.dense.",
    "cls.predictions.transform.LayerNorm.": "lm_head.layer_norm.",
    "cls.predictions.bias": "lm_head.bias",
    # tied copies of the word embeddings and of `bias`: nothing to load
    "lm_head.decoder.": None,
    "cls.predictions.decoder.": None,
}


def rename_table(config, base_prefix: str, has_lm_head: bool) -> dict[str, str | None]:
    """Backbone key prefix (after `roberta.`/`bert.`) -> this model's key prefix, or None for a key that is skipped:
    the embeddings, the first `num_lm1_layers` layers as LM1 and the rest as LM2, and the LM head where the model has
    one."""
    table = {"embeddings.": f"{base_prefix}embeddings.", "merge.": f"{base_prefix}merge."}  # merge: a JAKET's own
    for index in range(config.num_hidden_layers):
        part, local = ("lm1", index) if index < config.num_lm1_layers else ("lm2", index - config.num_lm1_layers)
        table[f"encoder.layer.{index}."] = f"{base_prefix}{part}.{local}."
    if has_lm_head:
        table.update(LM_HEAD_RENAMES)
    return table


def rename_state_dict(state_dict: dict, table: dict, skipped: set) -> tuple[dict, list[str]]:
    """(the tensors under this model's names, the checkpoint keys the table has no place for). `skipped`: this
    model's names that are never loaded (non-persistent buffers, rebuilt)."""
    renamed, unused = {}, []
    for key, value in state_dict.items():
        name = key.removeprefix("roberta.").removeprefix("bert.")
        source = next((prefix for prefix in table if name.startswith(prefix)), None)
        if source is None:
            unused.append(key)
        elif table[source] is not None and (target := table[source] + name[len(source) :]) not in skipped:
            renamed[target] = value
    return renamed, unused


@contextmanager
def _quiet_transformers():
    """transformers' warnings and progress bars off: a backbone load's 'newly initialised' messages would name the
    masked-LM model it loads through, not JAKET (whose own loading report `from_backbone` logs)."""
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def load_backbone_state_dict(pretrained_model_name_or_path) -> tuple[dict, list[str]]:
    """The weights of a RoBERTa/BERT checkpoint in any layout transformers loads (one or sharded safetensors files,
    `pytorch_model.bin` read with `weights_only`, a hub name), loaded by transformers itself as a masked-LM model:
    (the tensors the checkpoint holds, keyed as in the checkpoint; the checkpoint keys that model does not use)."""
    with _quiet_transformers():
        backbone, info = AutoModelForMaskedLM.from_pretrained(
            pretrained_model_name_or_path, output_loading_info=True, dtype=torch.float32
        )
    # what the checkpoint lacks was initialised at random by that load; tied copies are the embeddings again
    skipped = set(info["missing_keys"]) | set(backbone.all_tied_weights_keys)
    state_dict = {key: value for key, value in backbone.state_dict().items() if key not in skipped}
    return state_dict, list(info["unexpected_keys"])


def load_saved_weights(pretrained_model_name_or_path, keep=lambda key: True) -> dict:
    """The tensors of a model saved by `save_pretrained` (a folder or a Hub repo, one safetensors file or shards) whose
    keys `keep` accepts: only the shards that hold one are read."""
    what = "model weights (save_pretrained's)"
    try:
        with open(resolve_file(pretrained_model_name_or_path, WEIGHTS_INDEX_NAME, what), encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted({file for key, file in weight_map.items() if keep(key)})
    except FileNotFoundError:  # one file, not shards
        files = [WEIGHTS_NAME]
    tensors = {}
    for file in files:
        with safe_open(resolve_file(pretrained_model_name_or_path, file, what), framework="pt") as weights:
            tensors.update({key: weights.get_tensor(key) for key in weights.keys() if keep(key)})
    return tensors


def load_jaket_language_model(pretrained_model_name_or_path, config, num_lm1_layers: int) -> tuple[dict, list[str]]:
    """The language model of a saved JAKET model (`config`: its `JaketConfig`) under a RoBERTa/BERT checkpoint's names:
    its embeddings, LM1 and LM2 as one stack of layers (`encoder.layer.<i>.`, LM1's first), its masked-LM head where
    it has one, and, where the new model splits the layers where it did (`num_lm1_layers`), the merge's LayerNorm,
    which every position passes between LM1 and LM2. (the tensors, the keys left out: the knowledge module, the task
    heads and a merge that would sit elsewhere, which a model built on it starts afresh)."""
    renamed, unused = {}, []
    for key, value in load_saved_weights(pretrained_model_name_or_path).items():
        name = key.removeprefix("jaket.")
        layer = re.match(r"(lm1|lm2)\.(\d+)\.(.*)", name)
        if layer:
            number = int(layer.group(2)) + (config.num_lm1_layers if layer.group(1) == "lm2" else 0)
            renamed[f"encoder.layer.{number}.{layer.group(3)}"] = value
        elif (
            name.startswith("embeddings.")
            or (name.startswith("lm_head.") and not name.startswith("lm_head.decoder."))
            or (name.startswith("merge.") and num_lm1_layers == config.num_lm1_layers)
        ):
            renamed[name] = value
        elif not name.startswith("lm_head.decoder."):  # the decoder is the tied word embeddings again
            unused.append(key)
    return renamed, unused
