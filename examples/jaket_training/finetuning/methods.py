"""The paper's baselines (§4.1) and JAKET as fine-tuning methods: what each loads, the entity context memory each
starts from (computed from the descriptions, cached, or random) and the wrapper that reads it for the `Trainer`."""

import copy
import hashlib
import json
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, set_seed
from transformers.utils import logging

import modeling_jaket
from modeling_jaket import EntityContextMemory, JaketConfig, KnowledgeGraph
from modeling_jaket.backbone import load_saved_weights
from modeling_jaket.memory import MEMORY_WEIGHTS_NAME
from tokenization import description_inputs

from ..data import check_saved_files

logger = logging.get_logger(__name__)


METHODS = {
    "lm": "the language model alone, no knowledge module: the un-pretrained LM fine-tuned on the task's text (for "
    "entity classification, each entity's description)",
    "lm_gnn": "LM + GNN: the knowledge module over a random (fixed) memory",
    "lm_gnn_m": "LM + GNN + M: the knowledge module over a memory computed by the un-pretrained LM",
    "gnn": "GNN: the knowledge module alone over trainable, randomly initialised entity embeddings (no text)",
    "jaket": "JAKET: the pre-trained model, its memory recomputed from the descriptions by its pre-trained LM1",
    "lm_mlm": "the control for what pre-training's text alone gives: LM+GNN+M over a language model continued with "
    "L_t alone on the pre-training text, with no knowledge module (examples/pretrain.py --losses masked_lm; "
    "--mlm_control_path)",
}


# method -> the flag naming the examples/pretrain.py output it starts from; the others start from --backbone
PRETRAINED_PATHS = {"jaket": "model_name_or_path", "lm_mlm": "mlm_control_path"}


def precision(args, device_type: str = "cpu"):
    """--bf16 / --fp16 for what runs outside the `Trainer` (LM1 over the descriptions, where the model is loaded on
    the CPU; a script's own test loop): autocast, as the `Trainer` applies it to training and evaluation."""
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def load_model(method: str, model_class, pretrained: str | None, backbone: str, **config):
    """JAKET from a pre-training output folder; the baselines from the backbone with fresh knowledge modules."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if method in PRETRAINED_PATHS:
        if not pretrained:
            raise ValueError(
                f"--method {method} needs --{PRETRAINED_PATHS[method]}, the output folder of examples/pretrain.py"
            )
        if Path(pretrained).is_dir():
            check_saved_files(pretrained)
        return model_class.from_pretrained(pretrained, **config)
    if method == "lm":
        config["km_num_layers"] = 0
    return model_class.from_backbone(backbone, **config)


def initial_memory(
    method, model, tokenizer, graph: KnowledgeGraph, seed=0, batch_size=64, max_length=64, cache_dir=None
) -> EntityContextMemory:
    """The entity context memory `method` starts from: E^(0) for every entity and R for every relation, from the
    descriptions (LM methods and JAKET, `EntityContextMemory.from_descriptions`), or random (`lm_gnn`, `gnn`).

    With `cache_dir`, a memory computed from descriptions is saved there (`save_pretrained`) under a key of
    everything it depends on (LM1's weights, the tokenized descriptions, the batch size, the modeling code, torch's
    version): the JAKET methods of one pre-trained model, or the baselines of one backbone, then encode the
    descriptions once. A damaged cache is computed again, with a warning."""
    if method in ("lm_gnn", "gnn"):
        generator = torch.Generator().manual_seed(seed)
        memory = EntityContextMemory.from_config(model.config, graph.num_entities, graph.num_relations)
        hidden = model.config.hidden_size
        memory.update(
            torch.randn(graph.num_entities, hidden, generator=generator),
            torch.randn(graph.num_relations, hidden, generator=generator),
        )
        return memory
    folder, tokenized = None, None
    if cache_dir is not None:
        tokenized = description_inputs(tokenizer, graph, max_length)
        key = memory_key(model, *tokenized, batch_size)
        folder = Path(cache_dir) / f"memory-{key}"
        if (folder / MEMORY_WEIGHTS_NAME).is_file():
            try:
                memory = EntityContextMemory.from_pretrained(folder)
                if (memory.num_entities, memory.num_relations) == (graph.num_entities, graph.num_relations):
                    return memory
                problem = f"has {memory.num_entities} entity rows for {graph.num_entities} entities"
            except ValueError as error:  # a damaged file: its reader names what is wrong
                problem = str(error)
            logger.warning(f"the memory cache {folder}: {problem}; computing it again")
    memory = EntityContextMemory.from_descriptions(
        model, tokenizer, graph, batch_size, max_length, progress_bar=True, tokenized=tokenized
    )
    if folder is not None:
        memory.save_pretrained(folder)
    return memory


# the methods built from the backbone whose model merges E^KM into the text through a LayerNorm no pre-training trained
FRESH_MERGE_METHODS = ("lm_gnn", "lm_gnn_m")


@torch.no_grad()
def start_merge_norm_as_identity(model, tokenizer, graph: KnowledgeGraph, max_length=64, count=256) -> None:
    """Fit the merge LayerNorm (Eq. 3) of a model built from the backbone so that it passes LM1's output Z through
    as nearly unchanged as a LayerNorm can: for each feature, the least-squares gain and bias from LayerNorm(Z)'s
    normalised values to Z's, over the tokens of the graph's first `count` descriptions. LayerNorm's own start (gain 1,
    bias 0) rescales every position between LM1 and LM2, which the backbone's LM2 never saw."""
    base = model.base_model
    texts = graph.entity_descriptions[:count]
    encoding = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    was_training = base.training
    base.eval()
    hidden = base(**encoding, output_hidden_states=True).hidden_states[base.config.num_lm1_layers]
    base.train(was_training)
    norm = base.merge.layer_norm
    tokens = hidden[encoding["attention_mask"].bool()].float()  # [tokens, hidden]
    normalised = torch.nn.functional.layer_norm(tokens, tokens.shape[-1:], eps=norm.eps)
    centred = normalised - normalised.mean(0)
    gain = (centred * (tokens - tokens.mean(0))).sum(0) / centred.square().sum(0).clamp_min(1e-12)
    norm.weight.copy_(gain)
    norm.bias.copy_(tokens.mean(0) - gain * normalised.mean(0))


def load_method(args, method: str, model_class, graph: KnowledgeGraph, pretrained: str | None = None, **config):
    """What every fine-tuning run of `method` starts from, with `args.seed` set first (so that a method's result does
    not depend on the methods run before it in the process): (tokenizer, model, entity context memory). `pretrained`
    (default: the one its flag in `PRETRAINED_PATHS` names) is the pre-training output a method of them loads."""
    set_seed(args.seed)
    pretrained = pretrained or pretrained_path(args, method)
    tokenizer = AutoTokenizer.from_pretrained(pretrained if method in PRETRAINED_PATHS else args.backbone)
    model = load_model(method, model_class, pretrained, args.backbone, **config)
    if args.merge_norm_start == "identity" and method in FRESH_MERGE_METHODS:
        start_merge_norm_as_identity(model, tokenizer, graph)
    with precision(args):
        memory = initial_memory(method, model, tokenizer, graph, args.seed, cache_dir=args.memory_cache_dir)
    return tokenizer, model, memory


def pretrained_head(pretrained: str, head: str) -> dict[str, torch.Tensor]:
    """The weights of one head of a pre-trained `JaketForPreTraining` (`"entity_category_head"`,
    `"masked_entity_head"`), keyed as the head's own `state_dict`, read from the saved safetensors alone (a folder or
    a Hub repo, one file or shards): a fine-tuning head that starts from it need not build the whole model."""
    saved = load_saved_weights(pretrained, keep=lambda key: key.startswith(f"{head}."))
    tensors = {key.removeprefix(f"{head}."): value for key, value in saved.items()}
    if not tensors:
        raise ValueError(
            f"{pretrained} has no {head}: it is not the output of examples/pretrain.py with the loss that trains it"
        )
    return tensors


def pretrained_path(args, method: str) -> str | None:
    """The examples/pretrain.py output `method` starts from (None for the methods built from the backbone)."""
    return getattr(args, PRETRAINED_PATHS[method]) if method in PRETRAINED_PATHS else None


def memory_key(model, entities: dict, relations: dict, batch_size: int) -> str:
    """A digest of what LM1's encoding of the descriptions depends on (see `initial_memory`)."""
    digest = hashlib.sha256()
    base = model.base_model
    for name, tensor in sorted(base.state_dict().items()):
        if name.startswith(("embeddings.", "lm1.")):
            digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    texts = [dict(entities), dict(relations)]
    autocast = torch.is_autocast_enabled("cpu") and str(torch.get_autocast_dtype("cpu"))  # a bf16 memory differs
    digest.update(json.dumps([texts, batch_size, base.config.num_lm1_layers, autocast]).encode())
    folder = Path(modeling_jaket.__file__).parent  # the modeling code: a change of it is a new key
    for text in [path.read_text() for path in sorted(folder.glob("*.py"))] + [torch.__version__]:
        digest.update(text.encode())
    return digest.hexdigest()[:24]


class WithEntityMemory(PreTrainedModel):
    """A JAKET model whose inputs name entities by id: it reads their E^(0) from the entity context memory held beside
    it (`lookup`), fixed (the paper does not update the memory while fine-tuning) or, for the GNN baseline, trained.

    A `PreTrainedModel`, so that `Trainer` treats it as one: its checkpoints (`save_pretrained`: config.json and one
    state dict, the memory left out where it is fixed) load back for `load_best_model_at_end` and for resuming, and
    `--gradient_checkpointing` reaches the encoder's layers. It is a fine-tuning wrapper, never loaded on its own: the
    fine-tuned model is saved as the model and its memory (`save_fine_tuned`)."""

    config_class = JaketConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, model, memory: EntityContextMemory, trainable: bool = False):
        super().__init__(model.config)
        self.model = model
        self.memory = memory
        if trainable:  # the GNN baseline learns its entity embeddings: a copy's table becomes a parameter
            self.memory = memory = copy.deepcopy(memory)
            memory.entity_embeddings = nn.Parameter(memory._buffers.pop("entity_embeddings"))
        self.post_init()
        if not trainable:  # a fixed memory (11 GiB at the paper's 3.66M entities) stays out of every checkpoint
            self._keys_to_ignore_on_save = {f"memory.{name}" for name in memory.state_dict()}

    def _init_weights(self, module):
        """Nothing to initialise: the model arrives with its weights, pre-trained or fresh (`post_init` would
        otherwise draw them again)."""

    def forward(self, subgraph_entity_ids, **inputs):
        return self.model(
            subgraph_entity_ids=subgraph_entity_ids,
            entity_init_embeddings=self.memory.lookup(subgraph_entity_ids),
            relation_embeddings=self.memory.relation_embeddings,
            **inputs,
        )
