"""PyTorch JAKET model: LM1, the knowledge module, the merge (Eq. 3), LM2, and the task heads."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import AutoConfig, PreTrainedModel
from transformers import initialization as init
from transformers.dynamic_module_utils import get_relative_imports
from transformers.modeling_outputs import ModelOutput, SequenceClassifierOutput
from transformers.utils import logging

from .activations import get_activation
from .backbone import load_backbone_state_dict, load_jaket_language_model, rename_state_dict, rename_table
from .configuration_jaket import JaketConfig
from .encoder import JaketEmbeddings, JaketLayer, expand_attention_mask
from .hub import resolve_file
from .knowledge_module import KnowledgeLayer, KnowledgeModule
from .tokenization_jaket import mention_coverage
from .validation import check_spans, check_text, is_int, validate_model_inputs

logger = logging.get_logger(__name__)


@dataclass
class JaketModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
        Z^LM, the output of LM2 (None when no text was given).
    lm1_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
        Z, the output of LM1 before the knowledge module's embeddings are merged in.
    entity_embeddings (`torch.FloatTensor` of shape `(num_subgraph_entities, hidden_size)`):
        E^KM, the knowledge module's output for each entity of the subgraph (None when no subgraph was given).
    hidden_states (`tuple(torch.FloatTensor)`, returned with `output_hidden_states=True`):
        The embedding output and each transformer layer's output, LM1's then LM2's.
    attentions (`tuple(torch.FloatTensor)`, returned with `output_attentions=True`):
        Each transformer layer's self-attention weights.
    knowledge_attentions (`tuple(torch.FloatTensor)`, returned with `output_attentions=True`):
        Each knowledge-module layer's attention weights, `(num_edges, km_num_heads)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    lm1_last_hidden_state: torch.FloatTensor | None = None
    entity_embeddings: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    knowledge_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class JaketForPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `(1,)`):
        Sum of the pre-training losses whose labels were given.
    entity_category_loss, relation_type_loss, masked_lm_loss, masked_entity_loss (`torch.FloatTensor` of shape `(1,)`):
        L_c, L_r, L_t and L_e, each present when its labels were given.
    logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)`):
        Masked language modeling scores. With `labels` and `config.sparse_prediction`, of shape
        `(num_masked_tokens, vocab_size)`: the positions whose label is not -100 only, in row-major order.
    entity_category_logits (`torch.FloatTensor` of shape `(num_subgraph_entities, num_entity_categories)`):
        Category scores of every subgraph entity, from E^KM.
    relation_type_logits (`torch.FloatTensor` of shape `(num_pairs, num_relation_types)`):
        Relation scores of each (head, tail) pair given.
    masked_entity_logits (`torch.FloatTensor` of shape `(batch_size, num_masked_mentions, num_candidates)`):
        Inner products of g((Z_s + Z_o) / 2) with each candidate's context embedding.
    entity_embeddings, hidden_states, attentions, knowledge_attentions:
        As in [`JaketModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    entity_category_loss: torch.FloatTensor | None = None
    relation_type_loss: torch.FloatTensor | None = None
    masked_lm_loss: torch.FloatTensor | None = None
    masked_entity_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    entity_category_logits: torch.FloatTensor | None = None
    relation_type_logits: torch.FloatTensor | None = None
    masked_entity_logits: torch.FloatTensor | None = None
    entity_embeddings: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    knowledge_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class EntityClassificationOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `(1,)`):
        Cross-entropy over the entities whose label is not -100.
    logits (`torch.FloatTensor` of shape `(num_subgraph_entities, num_labels)`):
        Class scores of every subgraph entity.
    entity_embeddings (`torch.FloatTensor` of shape `(num_subgraph_entities, hidden_size)`):
        E^KM.
    hidden_states, attentions, knowledge_attentions:
        As in [`JaketModelOutput`] (the first two only where text was given).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    entity_embeddings: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    knowledge_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class JaketSequenceClassifierOutput(SequenceClassifierOutput):
    r"""
    loss, logits, hidden_states, attentions:
        As in transformers' [`SequenceClassifierOutput`].
    knowledge_attentions:
        As in [`JaketModelOutput`], where a subgraph was given.
    """

    knowledge_attentions: tuple[torch.FloatTensor, ...] | None = None


class JaketMergeLayer(nn.Module):
    """Eq. (3): add E^KM_e at every token of each mention of e, then LayerNorm every position
    (`config.merge_layer_norm="all"`, the paper's) or the mention tokens only (`"mentions"`)."""

    def __init__(self, config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.normalize_every_position = config.merge_layer_norm == "all"

    def forward(self, hidden_states, mention_embeddings=None, mention_starts=None, mention_ends=None):
        """Without mentions nothing is added, and the LayerNorm still runs where it covers every position."""
        if mention_embeddings is None:
            return self.layer_norm(hidden_states) if self.normalize_every_position else hidden_states
        covers = mention_coverage(mention_starts, mention_ends, hidden_states.shape[1])  # [batch, mentions, tokens]
        added = torch.einsum("bml,bmh->blh", covers.to(hidden_states.dtype), mention_embeddings)
        if self.normalize_every_position:
            return self.layer_norm(hidden_states + added)
        is_mention = covers.any(dim=1).unsqueeze(-1)
        return torch.where(is_mention, self.layer_norm(hidden_states + added), hidden_states)


class JaketLMHead(nn.Module):
    """Masked-token head (RoBERTa's): dense, activation, LayerNorm, decoder tied to the word embeddings, bias.

    The bias is the head's own parameter, not the decoder's: FSDP2 (through Accelerate) shards the decoder together
    with the word embeddings it is tied to, and a bias shared by the decoder and the head would sit in two FSDP groups.
    `resize_bias` follows `resize_token_embeddings` instead (JaketForPreTraining calls it)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = get_activation(config.hidden_act)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states):
        return self.decoder(self.layer_norm(self.activation(self.dense(hidden_states)))) + self.bias

    def resize_bias(self, vocab_size: int) -> None:
        """Keep the bias of the tokens that remain; a new token's starts at zero."""
        kept = min(vocab_size, self.bias.shape[0])
        bias = self.bias.new_zeros(vocab_size)
        bias[:kept] = self.bias.detach()[:kept]
        self.bias = nn.Parameter(bias, requires_grad=self.bias.requires_grad)


class JaketRelationTypeHead(nn.Module):
    """L_r: the relation between a head and a tail entity, from [E^KM_h ; E^KM_t]."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.activation = get_activation(config.hidden_act)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.num_relation_types)

    def forward(self, head_embeddings, tail_embeddings):
        pair = torch.cat([head_embeddings, tail_embeddings], dim=-1)
        return self.decoder(self.layer_norm(self.activation(self.dense(pair))))


class JaketMaskedEntityHead(nn.Module):
    """L_e's g(x) = ReLU(x W1) W2, applied to the mean of a removed mention's first and last token outputs."""

    def __init__(self, config):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.w2 = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.w2(torch.relu(self.w1(x)))


class JaketClassificationHead(nn.Module):
    """Sentence-level head on the start token (RoBERTa's): dense, tanh, dropout, projection."""

    def __init__(self, config):
        super().__init__()
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features):
        x = self.dropout(features[:, 0, :])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


def _readable(path) -> bool:
    """Whether every tensor of a safetensors file can be read."""
    try:
        with safe_open(path, framework="pt") as weights:
            for key in weights.keys():
                weights.get_tensor(key)
        return True
    except SafetensorError:
        return False


def span_mean(hidden_states, starts, ends):
    """(Z_start + Z_end) / 2 for each span; `starts`/`ends` are [batch, spans] token indices (clamped at 0)."""
    batch_index = torch.arange(hidden_states.shape[0], device=hidden_states.device).unsqueeze(-1)
    return (hidden_states[batch_index, starts.clamp(min=0)] + hidden_states[batch_index, ends.clamp(min=0)]) / 2


def _cross_entropy(logits, labels, name: str, num_items_in_batch=None):
    """Cross-entropy over labels != -100: their mean, or, given `num_items_in_batch` (what `Trainer` counts over all
    the micro-batches of a gradient-accumulation step), their sum divided by it, so that accumulating micro-batches
    gives the gradient of the whole batch. Zero (kept in the graph) when no label counts. A label outside the
    logits' classes (other than -100) is a `ValueError` naming the input `name`, the label and the classes."""
    labels = labels.to(logits.device).reshape(-1)
    logits = logits.reshape(-1, logits.shape[-1])
    counted = labels != -100
    outside = counted & ((labels < 0) | (labels >= logits.shape[-1]))
    if outside.any():
        raise ValueError(
            f"{name} holds {int(labels[outside][0])}: labels must lie in [0, {logits.shape[-1]}) (the classes of "
            "the head), or be -100 to be left out"
        )
    if not counted.any():
        return logits.sum() * 0.0
    if num_items_in_batch is None:
        return CrossEntropyLoss()(logits, labels)
    return CrossEntropyLoss(reduction="sum")(logits, labels) / num_items_in_batch


def _as_output(output: ModelOutput, return_dict: bool | None, config) -> ModelOutput | tuple:
    """The output dataclass, or with `return_dict=False` (or `config.return_dict` False) its non-None fields as a
    tuple, as every transformers head returns."""
    return_dict = return_dict if return_dict is not None else config.return_dict
    return output if return_dict else output.to_tuple()


def _locate_entities(mention_entity_ids, subgraph_entity_ids):
    """Position of each mention's (global) entity id inside `subgraph_entity_ids` (padding -1 gets any position)."""
    sorted_ids, order = subgraph_entity_ids.sort()
    position = torch.searchsorted(sorted_ids, mention_entity_ids).clamp(max=sorted_ids.numel() - 1)
    return order[position]


# The code a saved folder's processor and pipelines run, beside the modeling code transformers itself saves.
PROCESSING_CODE = ("processing_jaket.py", "pipeline_jaket.py")


class JaketPreTrainedModel(PreTrainedModel):
    config_class = JaketConfig
    config: JaketConfig
    base_model_prefix = "jaket"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # the units that sharding and device maps keep whole; not the embeddings, whose word table the LM head shares
    # (Accelerate's FSDP2 shards the tied input and output embeddings together, as one unit of their own)
    _no_split_modules = ["JaketLayer"]
    # The pipelines this head serves: task -> (class in pipeline_jaket.py, the Auto class that loads the head)
    _pipelines: dict[str, tuple[str, str]] = {}

    def save_pretrained(self, save_directory, *args, processor=None, **kwargs):
        """As every transformers model saves; for `trust_remote_code`, the folder also gets the code that the
        processor and the pipelines run, and config.json declares this head's pipelines (`custom_pipelines`).

        `processor` (a `JaketProcessor`) is saved beside the model (tokenizer, graph, memory), so that one call
        makes a folder every documented use loads; without it, a head with pipelines warns where the folder holds no
        processor (`Trainer` saves its `processing_class` right after the model)."""
        code = self._processing_code()  # before anything is written: an origin without it fails here
        declared = getattr(self.config, "custom_pipelines", None)
        if self._pipelines:  # in the saved config only: in memory, the registry serves the pipelines
            self.config.custom_pipelines = {
                task: {"impl": f"pipeline_jaket.{name}", "pt": [auto], "type": "text"}
                for task, (name, auto) in self._pipelines.items()
            }
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.config.__dict__.pop("custom_pipelines", None)
            if declared is not None:
                self.config.custom_pipelines = declared
        if kwargs.get("is_main_process", True):
            for source in code:
                if Path(save_directory, source.name).resolve() != source.resolve():
                    shutil.copy(source, Path(save_directory, source.name))
            if processor is not None:
                processor.save_pretrained(save_directory)
            elif self._pipelines and not Path(save_directory, "processor_config.json").is_file():
                logger.warning_once(
                    f"{save_directory} holds no processor, which its pipelines ({', '.join(self._pipelines)}) need: "
                    "pass processor= to save_pretrained, or call processor.save_pretrained on the same folder"
                )

    def _processing_code(self) -> list[Path]:
        """`PROCESSING_CODE` and, recursively, every module it imports relatively, found by file name (importing them
        here would make an import circle: they import this module): in this package, or, for a model loaded through
        `trust_remote_code` (whose module folder holds only the modeling code), in the folder or Hub repo the model
        came from."""
        pending, found = list(PROCESSING_CODE), {}
        while pending:
            name = pending.pop()
            if name in found:
                continue
            source = Path(__file__).with_name(name)
            if not source.is_file():
                revision = getattr(self.config, "_commit_hash", None)
                source = Path(resolve_file(self.config._name_or_path, name, "code file", revision=revision))
            found[name] = source
            pending += [f"{module}.py" for module in get_relative_imports(source)]
        return list(found.values())

    def resize_token_embeddings(self, new_num_tokens=None, *args, **kwargs):
        """As transformers resizes, with a size that is no positive integer refused by name (-5 failed deep inside
        torch with a negative dimension)."""
        if new_num_tokens is not None and (not is_int(new_num_tokens) or new_num_tokens < 1):
            raise ValueError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        return super().resize_token_embeddings(new_num_tokens, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, KnowledgeLayer):
            init.normal_(module.attention_target, mean=0.0, std=std)
            init.normal_(module.attention_neighbour, mean=0.0, std=std)
        elif isinstance(module, JaketLMHead):
            init.zeros_(module.bias)
        elif isinstance(module, JaketEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)

    def encode_descriptions(self, input_ids, attention_mask=None, mention_starts=None, mention_ends=None):
        """E^(0) from descriptions by LM1, as [`JaketModel.encode_descriptions`]. A method of every JAKET class, so
        that a sharded model can run it as a forward method of its own (FSDP2's `register_fsdp_forward_method`),
        gathering its weights as its forward does."""
        return self.base_model.encode_descriptions(input_ids, attention_mask, mention_starts, mention_ends)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As transformers' `from_pretrained`; a damaged weights file (safetensors raises an error that names no
        file) becomes an `OSError` naming the folder and the file."""
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as error:
            folder = Path(pretrained_model_name_or_path)
            damaged = [path.name for path in sorted(folder.glob("*.safetensors")) if not _readable(path)]
            raise OSError(
                f"{pretrained_model_name_or_path}: damaged weights {damaged or 'file'} ({error}); save or download "
                "the model again"
            ) from None
        if not cls.__module__.startswith("transformers_modules"):  # the installed package registers its pipelines
            loaded = model[0] if isinstance(model, tuple) else model  # (model, loading info) on request
            loaded.config.__dict__.pop("custom_pipelines", None)  # the folder declares them for remote code only
        return model

    @classmethod
    def from_backbone(cls, pretrained_model_name_or_path, output_loading_info: bool = False, **config_overrides):
        """Build a JAKET model around a pretrained RoBERTa or BERT checkpoint (a local folder or a hub name), or
        around the language model of a saved JAKET model (its embeddings, LM1 and LM2, its masked-LM head, and its
        merge LayerNorm where the layers are split as they were, the default), whose knowledge module and heads start
        afresh.

        The backbone's embeddings and layers become LM1 and LM2, and its masked-LM head (where it has one) becomes
        `lm_head`. Everything else starts from `_init_weights`. Every model key that was not loaded and every
        checkpoint key that was not used is logged; with `output_loading_info=True` they are also returned as
        `(model, {"missing_keys": [...], "unexpected_keys": [...]})`.

        `config_overrides` set JAKET fields (`num_lm1_layers`, `num_entity_categories`, ...).
        """
        backbone_config = AutoConfig.from_pretrained(pretrained_model_name_or_path)
        from_jaket = isinstance(backbone_config, JaketConfig)
        if from_jaket:
            backbone_type = backbone_config.backbone_type
            config_overrides = {"num_lm1_layers": backbone_config.num_lm1_layers, **config_overrides}
        else:
            backbone_type = {"roberta": "roberta", "bert": "bert"}.get(backbone_config.model_type)
        if backbone_type is None:
            raise ValueError(
                f"{pretrained_model_name_or_path} is a {backbone_config.model_type!r} model; JAKET builds on "
                "'roberta' or 'bert' checkpoints, or on a saved JAKET model's language model"
            )
        fields = {
            name: getattr(backbone_config, name)
            for name in (
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "hidden_act",
                "hidden_dropout_prob",
                "attention_probs_dropout_prob",
                "max_position_embeddings",
                "type_vocab_size",
                "initializer_range",
                "layer_norm_eps",
                "pad_token_id",
                "bos_token_id",
                "eos_token_id",
            )
        }
        config = JaketConfig(backbone_type=backbone_type, **{**fields, **config_overrides})
        model = cls(config)

        if from_jaket:
            state_dict, not_in_checkpoint = load_jaket_language_model(
                pretrained_model_name_or_path, backbone_config, config.num_lm1_layers
            )
        else:
            state_dict, not_in_checkpoint = load_backbone_state_dict(pretrained_model_name_or_path)
        base_prefix = "" if isinstance(model, JaketModel) else f"{cls.base_model_prefix}."
        table = rename_table(config, base_prefix, has_lm_head=hasattr(model, "lm_head"))
        rebuilt_buffers = {name for name, _ in model.named_buffers()} - set(model.state_dict())
        mapped, unused = rename_state_dict(state_dict, table, skipped=rebuilt_buffers)
        unused += not_in_checkpoint
        result = model.load_state_dict(mapped, strict=False)
        tied = set(model.all_tied_weights_keys)
        missing = sorted(k for k in result.missing_keys if k not in tied)
        unexpected = sorted(set(unused) | set(result.unexpected_keys))
        if missing:
            logger.warning(
                f"{cls.__name__}.from_backbone({pretrained_model_name_or_path!s}): {len(missing)} weights are newly "
                f"initialised (not in the backbone): {missing}"
            )
        if unexpected:
            logger.warning(
                f"{cls.__name__}.from_backbone({pretrained_model_name_or_path!s}): {len(unexpected)} backbone weights "
                f"were not used: {unexpected}"
            )
        if output_loading_info:
            return model, {"missing_keys": missing, "unexpected_keys": unexpected}
        return model


class JaketModel(JaketPreTrainedModel):
    """LM1 -> merge with the knowledge module's entity embeddings (Eq. 3) -> LM2.

    Without a knowledge module (`km_num_layers=0`) it is a plain RoBERTa/BERT encoder. With one, text without mentions
    still passes the merge's LayerNorm where it covers every position (`merge_layer_norm="all"`), as in pre-training;
    without text it runs the knowledge module only.
    """

    def __init__(self, config: JaketConfig):
        super().__init__(config)
        self.embeddings = JaketEmbeddings(config)
        self.lm1 = nn.ModuleList([JaketLayer(config) for _ in range(config.num_lm1_layers)])
        self.knowledge_module = KnowledgeModule(config)
        self.merge = JaketMergeLayer(config)
        self.lm2 = nn.ModuleList([JaketLayer(config) for _ in range(config.num_lm2_layers)])
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def _run_layers(self, layers, hidden_states, mask, all_hidden_states=None, all_attentions=None):
        """Run `layers` in turn; append each output to `all_hidden_states` and each attention map to
        `all_attentions` where those lists are given."""
        output_attentions = all_attentions is not None
        for layer in layers:
            hidden_states, weights = layer(hidden_states, mask, output_attentions)
            if all_hidden_states is not None:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(weights)
        return hidden_states

    def _run_lm1(
        self, input_ids, inputs_embeds, attention_mask, token_type_ids, position_ids, all_hidden_states, all_attentions
    ):
        """LM1 over the text: (Z, the expanded attention mask LM2 reuses)."""
        hidden_states = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        if all_hidden_states is not None:
            all_hidden_states.append(hidden_states)
        mask = expand_attention_mask(attention_mask)
        return self._run_layers(self.lm1, hidden_states, mask, all_hidden_states, all_attentions), mask

    def _merge(
        self, hidden_states, entity_embeddings, mention_entity_ids, mention_starts, mention_ends, subgraph_entity_ids
    ):
        """Eq. 3 where mentions link entities of the subgraph. A model without a knowledge module stays a plain
        encoder while nothing is merged."""
        if mention_entity_ids is None or not (self.config.km_num_layers or (mention_starts >= 0).any()):
            return self.merge(hidden_states) if self.config.km_num_layers else hidden_states
        mention_embeddings = entity_embeddings[_locate_entities(mention_entity_ids, subgraph_entity_ids)]
        return self.merge(hidden_states, mention_embeddings, mention_starts, mention_ends)

    def encode_descriptions(self, input_ids, attention_mask=None, mention_starts=None, mention_ends=None):
        """E^(0) of entities (or relations) from their descriptions: LM1 only, then (Z_s + Z_o) / 2 at the first
        mention of the entity in its own description. A description without such a mention (start -1) uses the first
        token after the start token.

        Args:
            input_ids: [num_descriptions, length].
            mention_starts, mention_ends: [num_descriptions] inclusive token indices, or -1 where there is no mention.

        Returns:
            [num_descriptions, hidden_size].
        """
        check_text(self.config, input_ids, attention_mask)
        hidden_states, _ = self._run_lm1(input_ids, None, attention_mask, None, None, None, None)
        count = input_ids.shape[0]
        if mention_starts is None:
            mention_starts = mention_ends = torch.full((count,), -1, dtype=torch.long, device=input_ids.device)
        check_spans("mention", mention_starts.view(count, 1), mention_ends.view(count, 1), input_ids.shape[1])
        no_mention = mention_starts < 0
        starts = torch.where(no_mention, 1, mention_starts).view(count, 1)
        ends = torch.where(no_mention, 1, mention_ends).view(count, 1)
        return span_mean(hidden_states, starts, ends).squeeze(1)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        mention_entity_ids: torch.LongTensor | None = None,
        mention_starts: torch.LongTensor | None = None,
        mention_ends: torch.LongTensor | None = None,
        subgraph_entity_ids: torch.LongTensor | None = None,
        edge_index: torch.LongTensor | None = None,
        edge_type: torch.LongTensor | None = None,
        entity_init_embeddings: torch.FloatTensor | None = None,
        relation_embeddings: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> JaketModelOutput | tuple:
        r"""
        input_ids, attention_mask, token_type_ids, position_ids:
            The text, as for RoBERTa/BERT. May be omitted to run the knowledge module alone.
        mention_entity_ids (`torch.LongTensor` of shape `(batch_size, num_mentions)`):
            Global id of the entity each mention links; -1 pads.
        mention_starts, mention_ends (`torch.LongTensor` of shape `(batch_size, num_mentions)`):
            Inclusive token indices of each mention; -1 pads.
        subgraph_entity_ids (`torch.LongTensor` of shape `(num_subgraph_entities,)`):
            Global ids of the sampled subgraph's entities; every mentioned entity must be among them.
        edge_index (`torch.LongTensor` of shape `(2, num_edges)`):
            The subgraph's edges in local indices: row 0 the neighbour u, row 1 the target v.
        edge_type (`torch.LongTensor` of shape `(num_edges,)`):
            The relation of each edge.
        entity_init_embeddings (`torch.FloatTensor` of shape `(num_subgraph_entities, hidden_size)`):
            E^(0) of the subgraph's entities, from the entity context memory.
        relation_embeddings (`torch.FloatTensor` of shape `(num_relations, hidden_size)`):
            R, from the relation memory.
        output_attentions, output_hidden_states, return_dict:
            As for every transformers model; each defaults to the config's setting.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        if self.config.validate_inputs:
            validate_model_inputs(
                self.config,
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                token_type_ids=token_type_ids,
                mention_entity_ids=mention_entity_ids,
                mention_starts=mention_starts,
                mention_ends=mention_ends,
                subgraph_entity_ids=subgraph_entity_ids,
                edge_index=edge_index,
                edge_type=edge_type,
                entity_init_embeddings=entity_init_embeddings,
                relation_embeddings=relation_embeddings,
                model_dtype=self.dtype,
            )
        has_text = input_ids is not None or inputs_embeds is not None
        all_hidden_states = [] if output_hidden_states and has_text else None
        all_attentions = [] if output_attentions and has_text else None

        # 1. LM1 over the text: Z
        lm1_output = hidden_states = mask = None
        if has_text:
            lm1_output, mask = self._run_lm1(
                input_ids,
                inputs_embeds,
                attention_mask,
                token_type_ids,
                position_ids,
                all_hidden_states,
                all_attentions,
            )

        # 2. The knowledge module over the subgraph (Eq. 1-2): E^KM
        entity_embeddings = knowledge_attentions = None
        if entity_init_embeddings is not None:
            if edge_index is None:
                edge_index = entity_init_embeddings.new_empty(2, 0, dtype=torch.long)
                edge_type = entity_init_embeddings.new_empty(0, dtype=torch.long)
            entity_embeddings, knowledge_attentions = self.knowledge_module(
                entity_init_embeddings,
                relation_embeddings,
                edge_index,
                edge_type,
                output_attentions=True,
                validate=False,
            )

        if has_text:
            # 3. Merge (Eq. 3): E^KM_e added at every token of a mention of e, then LayerNorm
            hidden_states = self._merge(
                lm1_output, entity_embeddings, mention_entity_ids, mention_starts, mention_ends, subgraph_entity_ids
            )
            # 4. LM2: Z^LM
            hidden_states = self._run_layers(self.lm2, hidden_states, mask, all_hidden_states, all_attentions)

        output = JaketModelOutput(
            last_hidden_state=hidden_states,
            lm1_last_hidden_state=lm1_output,
            entity_embeddings=entity_embeddings,
            hidden_states=tuple(all_hidden_states) if all_hidden_states is not None else None,
            attentions=tuple(all_attentions) if all_attentions is not None else None,
            knowledge_attentions=knowledge_attentions if output_attentions else None,
        )
        return _as_output(output, return_dict, self.config)


class JaketForPreTraining(JaketPreTrainedModel):
    """JAKET with its four pre-training heads (§3.6): entity category (L_c) and relation type (L_r) on the knowledge
    module's output, masked tokens (L_t) and masked entities (L_e) on LM2's. Each loss is computed when its labels
    are given; `loss` is their sum."""

    _tied_weights_keys = {"lm_head.decoder.weight": "jaket.embeddings.word_embeddings.weight"}
    _pipelines = {
        "entity-linking": ("EntityLinkingPipeline", "AutoModelForPreTraining"),
        "entity-classification": ("EntityClassificationPipeline", "AutoModelForPreTraining"),
    }
    # Four losses, each a mean over its own items: `Trainer` divides the total by the accumulation steps itself.
    accepts_loss_kwargs = False

    def __init__(self, config: JaketConfig):
        super().__init__(config)
        if not config.num_entity_categories or not config.num_relation_types:
            raise ValueError(
                "JaketForPreTraining needs config.num_entity_categories and config.num_relation_types, got "
                f"{config.num_entity_categories} and {config.num_relation_types}"
            )
        self.jaket = JaketModel(config)
        self.lm_head = JaketLMHead(config)
        self.entity_category_head = nn.Linear(config.hidden_size, config.num_entity_categories)
        self.relation_type_head = JaketRelationTypeHead(config)
        self.masked_entity_head = JaketMaskedEntityHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """As every transformers model does; the LM head's bias follows the new vocabulary size."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        self.lm_head.resize_bias(embeddings.num_embeddings)
        return embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        mention_entity_ids: torch.LongTensor | None = None,
        mention_starts: torch.LongTensor | None = None,
        mention_ends: torch.LongTensor | None = None,
        subgraph_entity_ids: torch.LongTensor | None = None,
        edge_index: torch.LongTensor | None = None,
        edge_type: torch.LongTensor | None = None,
        entity_init_embeddings: torch.FloatTensor | None = None,
        relation_embeddings: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        entity_category_labels: torch.LongTensor | None = None,
        relation_head_index: torch.LongTensor | None = None,
        relation_tail_index: torch.LongTensor | None = None,
        relation_labels: torch.LongTensor | None = None,
        masked_entity_starts: torch.LongTensor | None = None,
        masked_entity_ends: torch.LongTensor | None = None,
        masked_entity_candidate_embeddings: torch.FloatTensor | None = None,
        masked_entity_labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> JaketForPreTrainingOutput | tuple:
        r"""
        Takes [`JaketModel`]'s inputs, and:

        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Masked-token targets (L_t); -100 where no token was masked.
        entity_category_labels (`torch.LongTensor` of shape `(num_subgraph_entities,)`):
            Category of each subgraph entity (L_c); -100 to leave one out.
        relation_head_index, relation_tail_index (`torch.LongTensor` of shape `(num_pairs,)`):
            Local subgraph indices of entity pairs; relation_labels (`(num_pairs,)`) their relation (L_r).
        masked_entity_starts, masked_entity_ends (`torch.LongTensor` of shape `(batch_size, num_masked)`):
            Inclusive token spans of the mentions removed from the merge (L_e); -1 pads.
        masked_entity_candidate_embeddings (`torch.FloatTensor`, shape `(batch_size, num_masked, num_candidates, d)`):
            Context-memory embeddings (d = hidden_size) of each removed mention's candidates: the true entity, its
            neighbours, random entities.
        masked_entity_labels (`torch.LongTensor` of shape `(batch_size, num_masked)`):
            Index of the true entity among the candidates; -100 pads.
        """
        outputs = self.jaket(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            mention_entity_ids=mention_entity_ids,
            mention_starts=mention_starts,
            mention_ends=mention_ends,
            subgraph_entity_ids=subgraph_entity_ids,
            edge_index=edge_index,
            edge_type=edge_type,
            entity_init_embeddings=entity_init_embeddings,
            relation_embeddings=relation_embeddings,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        entity_embeddings = outputs.entity_embeddings
        losses = {}

        logits = None
        if outputs.last_hidden_state is not None:
            if labels is not None and self.config.sparse_prediction:  # the labelled positions only
                masked = labels.to(outputs.last_hidden_state.device) != -100
                logits = self.lm_head(outputs.last_hidden_state[masked])
                losses["masked_lm_loss"] = _cross_entropy(logits, labels.to(logits.device)[masked], "labels")
            else:
                logits = self.lm_head(outputs.last_hidden_state)
                if labels is not None:
                    losses["masked_lm_loss"] = _cross_entropy(logits, labels, "labels")

        category_logits = relation_logits = None
        if entity_embeddings is not None:
            category_logits = self.entity_category_head(entity_embeddings)
            if entity_category_labels is not None:
                losses["entity_category_loss"] = _cross_entropy(
                    category_logits, entity_category_labels, "entity_category_labels"
                )
            if relation_head_index is not None:
                relation_logits = self.relation_type_head(
                    entity_embeddings[relation_head_index], entity_embeddings[relation_tail_index]
                )
                if relation_labels is not None:
                    losses["relation_type_loss"] = _cross_entropy(relation_logits, relation_labels, "relation_labels")

        entity_logits = None
        if masked_entity_starts is not None:
            if outputs.last_hidden_state is None or masked_entity_candidate_embeddings is None:
                raise ValueError("masked_entity_starts needs input_ids and masked_entity_candidate_embeddings")
            check_spans("masked_entity", masked_entity_starts, masked_entity_ends, outputs.last_hidden_state.shape[1])
            if masked_entity_candidate_embeddings.shape[:2] != masked_entity_starts.shape:
                raise ValueError(
                    f"masked_entity_candidate_embeddings {tuple(masked_entity_candidate_embeddings.shape)} must start "
                    f"with masked_entity_starts' shape {tuple(masked_entity_starts.shape)}"
                )
            query = self.masked_entity_head(
                span_mean(outputs.last_hidden_state, masked_entity_starts, masked_entity_ends)
            )
            entity_logits = torch.einsum("bmh,bmch->bmc", query, masked_entity_candidate_embeddings.to(query.dtype))
            if masked_entity_labels is not None:
                losses["masked_entity_loss"] = _cross_entropy(
                    entity_logits, masked_entity_labels, "masked_entity_labels"
                )

        output = JaketForPreTrainingOutput(
            loss=sum(losses.values()) if losses else None,
            **losses,
            logits=logits,
            entity_category_logits=category_logits,
            relation_type_logits=relation_logits,
            masked_entity_logits=entity_logits,
            entity_embeddings=entity_embeddings,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            knowledge_attentions=outputs.knowledge_attentions,
        )
        return _as_output(output, return_dict, self.config)


class JaketForEntityClassification(JaketPreTrainedModel):
    """Entity classification from the knowledge module's output E^KM (the paper's unseen-KG task)."""

    _pipelines = {"entity-classification": ("EntityClassificationPipeline", "AutoModel")}

    # `Trainer` passes `num_items_in_batch`, the labelled items of the whole accumulated batch
    accepts_loss_kwargs = True

    def __init__(self, config: JaketConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.jaket = JaketModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        mention_entity_ids: torch.LongTensor | None = None,
        mention_starts: torch.LongTensor | None = None,
        mention_ends: torch.LongTensor | None = None,
        subgraph_entity_ids: torch.LongTensor | None = None,
        edge_index: torch.LongTensor | None = None,
        edge_type: torch.LongTensor | None = None,
        entity_init_embeddings: torch.FloatTensor | None = None,
        relation_embeddings: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> EntityClassificationOutput | tuple:
        r"""
        Takes [`JaketModel`]'s graph inputs (text is optional), and:

        labels (`torch.LongTensor` of shape `(num_subgraph_entities,)`):
            Class of each subgraph entity; -100 for entities not to be scored.
        num_items_in_batch (`int` or `torch.Tensor`, passed by `Trainer`):
            The labelled entities of all the micro-batches of one optimisation step: the loss is their summed
            cross-entropy divided by it, right under gradient accumulation.
        """
        outputs = self.jaket(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            mention_entity_ids=mention_entity_ids,
            mention_starts=mention_starts,
            mention_ends=mention_ends,
            subgraph_entity_ids=subgraph_entity_ids,
            edge_index=edge_index,
            edge_type=edge_type,
            entity_init_embeddings=entity_init_embeddings,
            relation_embeddings=relation_embeddings,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        if outputs.entity_embeddings is None:
            raise ValueError(
                "JaketForEntityClassification needs the subgraph: pass entity_init_embeddings and friends"
            )
        logits = self.classifier(self.dropout(outputs.entity_embeddings))
        loss = _cross_entropy(logits, labels, "labels", num_items_in_batch) if labels is not None else None
        output = EntityClassificationOutput(
            loss=loss,
            logits=logits,
            entity_embeddings=outputs.entity_embeddings,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            knowledge_attentions=outputs.knowledge_attentions,
        )
        return _as_output(output, return_dict, self.config)


class JaketForSequenceClassification(JaketPreTrainedModel):
    """Sequence classification or regression from LM2's start-token output (used for FewRel in PAIR form)."""

    # `Trainer` passes `num_items_in_batch`, the labelled items of the whole accumulated batch
    accepts_loss_kwargs = True

    def __init__(self, config: JaketConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.jaket = JaketModel(config)
        self.classifier = JaketClassificationHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        mention_entity_ids: torch.LongTensor | None = None,
        mention_starts: torch.LongTensor | None = None,
        mention_ends: torch.LongTensor | None = None,
        subgraph_entity_ids: torch.LongTensor | None = None,
        edge_index: torch.LongTensor | None = None,
        edge_type: torch.LongTensor | None = None,
        entity_init_embeddings: torch.FloatTensor | None = None,
        relation_embeddings: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> JaketSequenceClassifierOutput | tuple:
        r"""
        Takes [`JaketModel`]'s inputs, and:

        labels (`torch.LongTensor` of shape `(batch_size,)`, or `(batch_size, num_labels)` for multi-label):
            Class (or, with `num_labels == 1`, regression target) of each sequence.
        num_items_in_batch (`int` or `torch.Tensor`, passed by `Trainer`):
            The label values of all the micro-batches of one optimisation step: each loss is summed and divided by
            it, right under gradient accumulation.
        """
        outputs = self.jaket(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            mention_entity_ids=mention_entity_ids,
            mention_starts=mention_starts,
            mention_ends=mention_ends,
            subgraph_entity_ids=subgraph_entity_ids,
            edge_index=edge_index,
            edge_type=edge_type,
            entity_init_embeddings=entity_init_embeddings,
            relation_embeddings=relation_embeddings,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        if outputs.last_hidden_state is None:
            raise ValueError("JaketForSequenceClassification needs input_ids")
        logits = self.classifier(outputs.last_hidden_state)

        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            reduction = "mean" if num_items_in_batch is None else "sum"
            if self.config.problem_type == "single_label_classification":
                loss = _cross_entropy(logits, labels, "labels", num_items_in_batch)
            else:
                if self.config.problem_type == "regression":
                    loss = MSELoss(reduction=reduction)(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype))
                else:
                    loss = BCEWithLogitsLoss(reduction=reduction)(logits, labels.to(logits.dtype))
                if num_items_in_batch is not None:
                    loss = loss / num_items_in_batch

        output = JaketSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            knowledge_attentions=outputs.knowledge_attentions,
        )
        return _as_output(output, return_dict, self.config)
