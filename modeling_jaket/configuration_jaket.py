"""JAKET model configuration."""

import dataclasses
import difflib

from transformers import PreTrainedConfig
from transformers.utils import logging

from .activations import ACTIVATIONS
from .validation import is_int, is_number

logger = logging.get_logger(__name__)

_AUTO_MAP = {
    "AutoConfig": "configuration_jaket.JaketConfig",
    "AutoModel": "modeling_jaket.JaketModel",
    "AutoModelForPreTraining": "modeling_jaket.JaketForPreTraining",
    "AutoModelForMaskedLM": "modeling_jaket.JaketForPreTraining",  # its masked-token head: the fill-mask pipeline
    "AutoModelForSequenceClassification": "modeling_jaket.JaketForSequenceClassification",
}


_POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_lm1_layers",
    "km_num_heads",
    "memory_refresh_init_interval",
    "memory_refresh_ratio",
    "memory_refresh_repeats",
    "memory_refresh_max_interval",
)
_OPTIONAL_POSITIVE_INTS = ("num_entity_categories", "num_relation_types")
_PROBABILITIES = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "km_dropout",
    "classifier_dropout",
    "memory_momentum",
)
_CHOICES = {
    "backbone_type": ("roberta", "bert"),
    "km_composition": ("add", "mlp"),
    "merge_layer_norm": ("all", "mentions"),
    "hidden_act": tuple(ACTIVATIONS),
    "km_hidden_act": tuple(ACTIVATIONS),
}


class JaketConfig(PreTrainedConfig):
    r"""
    Configuration of a JAKET model (Yu et al., "JAKET: Joint Pre-training of Knowledge Graph and Language
    Understanding"): a RoBERTa or BERT encoder split into LM1 and LM2, with a knowledge module (a multi-relational
    graph attention network) between them. The defaults are the paper's: RoBERTa-base split 6/6, a 2-layer 8-head
    knowledge module, and the entity context memory refreshed every 10, 10, 10, 20, 20, 20, 40, ... up to 500 steps.

    Backbone fields (as in [`RobertaConfig`] / [`BertConfig`]):
        backbone_type (`str`, defaults to `"roberta"`):
            `"roberta"` (positions counted from `pad_token_id + 1`) or `"bert"`.
        vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act,
        hidden_dropout_prob, attention_probs_dropout_prob, max_position_embeddings, type_vocab_size,
        initializer_range, layer_norm_eps, pad_token_id, bos_token_id, eos_token_id:
            as in the backbone's own config.

    JAKET fields:
        num_lm1_layers (`int`, *optional*):
            Layers in LM1, the part that encodes descriptions and whose output is merged with the knowledge module;
            the remaining `num_hidden_layers - num_lm1_layers` form LM2. Defaults to half the layers (6 of 12).
        km_num_layers (`int`, defaults to 2):
            Graph attention layers in the knowledge module.
        km_num_heads (`int`, defaults to 8):
            Attention heads K per knowledge-module layer; their outputs (each `hidden_size / K` wide) are concatenated.
        km_dropout (`float`, defaults to 0.1):
            Dropout on the attention coefficients and on each knowledge-module layer's output.
        km_negative_slope (`float`, defaults to 0.2):
            Slope of the LeakyReLU in the attention score.
        km_hidden_act (`str`, defaults to `"elu"`):
            The nonlinearity sigma applied to each head's aggregated message.
        km_composition (`str`, defaults to `"add"`):
            f(e, r) combining a neighbour's embedding with its relation's: `"add"` is e + r (the paper's), `"mlp"` is a
            two-layer MLP over [e; r].
        km_gather_max_edges (`int`, defaults to 256):
            A (sub)graph with at most this many edges runs the knowledge module's weighted sums as one message per
            edge (gather and scatter), a larger one as sparse products: below a few hundred edges the sparse
            products' fixed costs outweigh what they save (`bench/README.md`). Both compute Eq. 1-2; 0 always takes
            the sparse products.
        merge_layer_norm (`str`, defaults to `"all"`):
            Where the merge's LayerNorm (Eq. 3) applies once E^KM is added at the mention tokens: `"all"`, every
            position of Z^merge, as the paper writes it; `"mentions"`, the mention tokens only, the others passing to
            LM2 unchanged.
        num_entity_categories (`int`, *optional*):
            Classes of the entity-category pre-training task (L_c). Required by [`JaketForPreTraining`].
        num_relation_types (`int`, *optional*):
            Classes of the relation-type pre-training task (L_r). Required by [`JaketForPreTraining`].
        memory_refresh_init_interval (`int`, defaults to 10), memory_refresh_ratio (`int`, defaults to 2),
        memory_refresh_repeats (`int`, defaults to 3), memory_refresh_max_interval (`int`, defaults to 500):
            The entity context memory is refreshed every T(i) = min(init_interval * ratio^floor(i / repeats),
            max_interval) steps (Eq. 4).
        memory_momentum (`float`, defaults to 0.8):
            E <- momentum * E + (1 - momentum) * E_new on each refresh (Eq. 5).
        sparse_prediction (`bool`, defaults to `False`):
            With `labels`, [`JaketForPreTraining`] scores the labelled positions only: its masked-LM `logits` are
            `(num_labelled_tokens, vocab_size)` instead of `(batch_size, sequence_length, vocab_size)`, and the loss is
            the same. The vocabulary projection otherwise dominates a pre-training step; `examples/pretrain.py` turns
            it on (ModernBERT's field of the same name).
        classifier_dropout (`float`, *optional*):
            Dropout of the classification heads; defaults to `hidden_dropout_prob`.
        validate_inputs (`bool`, defaults to `True`):
            Check every input of the forward pass first (shapes, dtypes, id ranges, spans, mentions within the
            subgraph) and raise a `ValueError` naming what is wrong (`modeling_jaket/validation.py`). Turn off only on
            a measured hot path whose inputs come from this package's collators.
        check_finite_inputs (`bool`, defaults to `False`):
            With `validate_inputs`, also raise when the initial entity or relation embeddings hold NaN or infinity,
            naming the first bad row, instead of letting it spread through the knowledge module. Costs one pass over
            them.

    Example:

    ```python
    >>> from modeling_jaket import JaketConfig, JaketModel
    >>> config = JaketConfig(num_entity_categories=45, num_relation_types=18)
    >>> model = JaketModel(config)
    ```"""

    model_type = "jaket"

    backbone_type: str = "roberta"
    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    is_decoder: bool = False
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True

    num_lm1_layers: int | None = None
    km_num_layers: int = 2
    km_num_heads: int = 8
    km_dropout: float | int = 0.1
    km_negative_slope: float = 0.2
    km_hidden_act: str = "elu"
    km_composition: str = "add"
    km_gather_max_edges: int = 256
    merge_layer_norm: str = "all"
    num_entity_categories: int | None = None
    num_relation_types: int | None = None
    memory_refresh_init_interval: int = 10
    memory_refresh_ratio: int = 2
    memory_refresh_repeats: int = 3
    memory_refresh_max_interval: int = 500
    memory_momentum: float = 0.8
    sparse_prediction: bool = False
    classifier_dropout: float | int | None = None
    validate_inputs: bool = True
    check_finite_inputs: bool = False

    def __post_init__(self, **kwargs):
        if self.num_lm1_layers is None and isinstance(self.num_hidden_layers, int):
            self.num_lm1_layers = self.num_hidden_layers // 2
        self.validate_fields()
        # transformers keeps unknown keys as attributes (a saved config carries some); one a typo away from a field
        # is most likely that field misspelt, which would otherwise go unnoticed
        fields = [field.name for field in dataclasses.fields(JaketConfig)]
        for key in kwargs:
            if key not in fields and (close := difflib.get_close_matches(key, fields, n=1, cutoff=0.85)):
                logger.warning(f"JaketConfig got {key}={kwargs[key]!r}, which is no field: did you mean {close[0]}?")
        if kwargs.get("auto_map") is None:
            kwargs["auto_map"] = dict(_AUTO_MAP)
        super().__post_init__(**kwargs)

    def validate_fields(self) -> None:
        """Raise a `ValueError` naming the first field whose value is of the wrong type or out of its range."""

        def fail(name, requirement):
            raise ValueError(f"JaketConfig.{name} must be {requirement}, got {getattr(self, name)!r}")

        for name in _POSITIVE_INTS:
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive integer")
        for name in _OPTIONAL_POSITIVE_INTS:
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 1):
                fail(name, "a positive integer or None")
        for name in ("km_num_layers", "km_gather_max_edges"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 0:
                fail(name, "an integer >= 0")
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not (value is None and name == "classifier_dropout") and (not is_number(value) or not 0 <= value < 1):
                fail(name, "a number in [0, 1)")
        for name in ("initializer_range", "layer_norm_eps"):
            if not is_number(getattr(self, name)) or getattr(self, name) <= 0:
                fail(name, "a finite positive number")
        if not is_number(self.km_negative_slope) or self.km_negative_slope < 0:
            fail("km_negative_slope", "a finite number >= 0")
        for name in ("validate_inputs", "check_finite_inputs", "sparse_prediction"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "True or False")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                fail(name, " or ".join(repr(choice) for choice in choices))
        if self.pad_token_id is not None and (
            not is_int(self.pad_token_id) or not 0 <= self.pad_token_id < self.vocab_size
        ):
            fail("pad_token_id", f"None or an id in [0, vocab_size={self.vocab_size})")
        if self.num_lm1_layers > self.num_hidden_layers:
            fail("num_lm1_layers", f"in [1, num_hidden_layers={self.num_hidden_layers}]")
        if self.memory_refresh_max_interval < self.memory_refresh_init_interval:
            fail(
                "memory_refresh_max_interval", f">= memory_refresh_init_interval ({self.memory_refresh_init_interval})"
            )
        for heads in ("num_attention_heads", "km_num_heads"):
            if self.hidden_size % getattr(self, heads):
                raise ValueError(
                    f"JaketConfig.hidden_size ({self.hidden_size}) must be divisible by {heads} "
                    f"({getattr(self, heads)}): the heads' outputs are concatenated back to hidden_size"
                )

    @property
    def num_lm2_layers(self) -> int:
        return self.num_hidden_layers - self.num_lm1_layers
