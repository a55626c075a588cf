"""JAKET's model inputs checked at one place, before any computation: `JaketModel.forward` calls
`validate_model_inputs` once (unless `config.validate_inputs` is off), and every error names the input that is wrong
and where. The knowledge module, usable on its own, checks its graph inputs with `check_graph_inputs`."""

import math

import torch


def is_int(value) -> bool:
    """An integer a user typed or a file held: `True` is an int to Python, not an id, count or size."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite number (not a bool): NaN passes every comparison's range check, and infinity poisons the forward."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_index_dtype(name: str, tensor: torch.Tensor) -> None:
    """Indices must be integers: a float would be truncated, a boolean True read as index 1."""
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise ValueError(f"{name} must be an integer tensor of indices, got {tensor.dtype}")


def check_finite(name: str, tensor: torch.Tensor) -> None:
    bad = ~torch.isfinite(tensor)
    if bad.any():
        row = int(bad.reshape(tensor.shape[0], -1).any(dim=1).nonzero()[0])
        raise ValueError(f"{name} row {row} holds NaN or infinity ({int(bad.sum())} such values in all)")


def check_spans(name: str, starts, ends, sequence_length: int) -> None:
    """Inclusive token spans [start, end] with 0 <= start <= end < sequence_length; -1 pads."""
    if starts is None or ends is None:
        raise ValueError(f"{name}_starts and {name}_ends must be given together")
    check_index_dtype(f"{name}_starts", starts)
    check_index_dtype(f"{name}_ends", ends)
    if starts.shape != ends.shape:
        raise ValueError(f"{name}_starts {tuple(starts.shape)} and {name}_ends {tuple(ends.shape)} differ in shape")
    padding = starts.lt(0) & (starts.ne(-1) | ends.ne(-1))
    if padding.any():  # -5 passed as padding
        b, m = padding.nonzero()[0].tolist()
        raise ValueError(
            f"{name} span {m} of example {b} is [{int(starts[b, m])}, {int(ends[b, m])}]: pad with -1 in both "
            "starts and ends, no other value below 0"
        )
    present = starts >= 0
    bad = present & ((ends < starts) | (ends >= sequence_length))
    if bad.any():
        b, m = bad.nonzero()[0].tolist()
        raise ValueError(
            f"{name} span {m} of example {b} is [{int(starts[b, m])}, {int(ends[b, m])}]: spans must be inclusive "
            f"token indices with start <= end < sequence_length ({sequence_length}); pad with -1"
        )


def check_graph_inputs(entity_embeddings, relation_embeddings, edge_index, edge_type) -> None:
    """Raise a `ValueError` naming the first inconsistent shape or out-of-range index of a knowledge-module input."""
    if entity_embeddings.dim() != 2 or relation_embeddings.dim() != 2:
        raise ValueError(
            "entity_embeddings and relation_embeddings must be 2-D [count, hidden], got shapes "
            f"{tuple(entity_embeddings.shape)} and {tuple(relation_embeddings.shape)}"
        )
    if entity_embeddings.shape[1] != relation_embeddings.shape[1]:
        raise ValueError(
            f"entity_embeddings width {entity_embeddings.shape[1]} != relation_embeddings width "
            f"{relation_embeddings.shape[1]}"
        )
    check_index_dtype("edge_index", edge_index)
    check_index_dtype("edge_type", edge_type)
    for name, tensor in (("entity_embeddings", entity_embeddings), ("relation_embeddings", relation_embeddings)):
        if not tensor.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, num_edges], got {tuple(edge_index.shape)}")
    if edge_type.shape != (edge_index.shape[1],):
        raise ValueError(
            f"edge_type must have shape [num_edges] = [{edge_index.shape[1]}], got {tuple(edge_type.shape)}"
        )
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= entity_embeddings.shape[0]):
        raise ValueError(
            f"edge_index holds entity indices in [{int(edge_index.min())}, {int(edge_index.max())}] but only "
            f"{entity_embeddings.shape[0]} entities were given"
        )
    if edge_type.numel() and (edge_type.min() < 0 or edge_type.max() >= relation_embeddings.shape[0]):
        raise ValueError(
            f"edge_type holds relation indices in [{int(edge_type.min())}, {int(edge_type.max())}] but only "
            f"{relation_embeddings.shape[0]} relations were given"
        )


def check_text(config, input_ids=None, attention_mask=None, inputs_embeds=None, token_type_ids=None) -> None:
    """One of `input_ids` ([batch, length], ids below the vocabulary size) or `inputs_embeds` ([batch, length,
    hidden]), non-empty, with an attention mask and token type ids (below `type_vocab_size`) of the same [batch,
    length]."""
    if input_ids is not None and inputs_embeds is not None:
        raise ValueError("pass input_ids or inputs_embeds, not both")
    if input_ids is not None:
        check_index_dtype("input_ids", input_ids)
        if input_ids.dim() != 2 or input_ids.numel() == 0:
            raise ValueError(
                f"input_ids must be a non-empty [batch, length] tensor, got shape {tuple(input_ids.shape)}"
            )
        if input_ids.min() < 0 or input_ids.max() >= config.vocab_size:
            raise ValueError(
                f"input_ids holds ids in [{int(input_ids.min())}, {int(input_ids.max())}] but the vocabulary has "
                f"{config.vocab_size} (resize_token_embeddings after adding tokens)"
            )
        shape = tuple(input_ids.shape)
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[1] == 0 or inputs_embeds.shape[-1] != config.hidden_size:
            raise ValueError(
                f"inputs_embeds must be [batch, length, hidden_size={config.hidden_size}] with length > 0, got "
                f"{tuple(inputs_embeds.shape)}"
            )
        shape = tuple(inputs_embeds.shape[:2])
    if attention_mask is not None and tuple(attention_mask.shape) != shape:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} and the text {shape} differ in shape")
    if token_type_ids is not None:
        check_index_dtype("token_type_ids", token_type_ids)
        if tuple(token_type_ids.shape) != shape:
            raise ValueError(f"token_type_ids {tuple(token_type_ids.shape)} and the text {shape} differ in shape")
        if token_type_ids.numel() and (token_type_ids.min() < 0 or token_type_ids.max() >= config.type_vocab_size):
            raise ValueError(
                f"token_type_ids holds types in [{int(token_type_ids.min())}, {int(token_type_ids.max())}] but the "
                f"model has {config.type_vocab_size} (type_vocab_size; RoBERTa has one, BERT two)"
            )


def validate_model_inputs(
    config,
    input_ids=None,
    attention_mask=None,
    inputs_embeds=None,
    token_type_ids=None,
    mention_entity_ids=None,
    mention_starts=None,
    mention_ends=None,
    subgraph_entity_ids=None,
    edge_index=None,
    edge_type=None,
    entity_init_embeddings=None,
    relation_embeddings=None,
    model_dtype=torch.float32,
) -> None:
    """Every check of `JaketModel.forward`'s inputs: the text, the subgraph and the mentions that join them."""
    has_text = input_ids is not None or inputs_embeds is not None
    if not has_text and entity_init_embeddings is None:
        raise ValueError("JaketModel needs input_ids (or inputs_embeds), entity_init_embeddings, or both")
    if has_text:
        check_text(config, input_ids, attention_mask, inputs_embeds, token_type_ids)

    if entity_init_embeddings is not None:
        if relation_embeddings is None:
            raise ValueError("entity_init_embeddings was given without relation_embeddings")
        if entity_init_embeddings.dim() != 2 or entity_init_embeddings.shape[1] != config.hidden_size:
            raise ValueError(
                f"entity_init_embeddings must be [num_subgraph_entities, hidden_size={config.hidden_size}], got "
                f"{tuple(entity_init_embeddings.shape)}"
            )
        for name, tensor in (
            ("entity_init_embeddings", entity_init_embeddings),
            ("relation_embeddings", relation_embeddings),
        ):
            if tensor.dtype == torch.float64 and model_dtype != torch.float64:  # lower precisions are cast up
                raise ValueError(f"{name} is float64 but the model computes in {model_dtype}: pass .float() of it")
        if (edge_index is None) != (edge_type is None):
            raise ValueError("edge_index and edge_type must be given together")
        if edge_index is not None:
            check_graph_inputs(entity_init_embeddings, relation_embeddings, edge_index, edge_type)
        if config.check_finite_inputs:
            check_finite("entity_init_embeddings", entity_init_embeddings)
            check_finite("relation_embeddings", relation_embeddings)

    if subgraph_entity_ids is not None:
        check_index_dtype("subgraph_entity_ids", subgraph_entity_ids)
        if entity_init_embeddings is None or subgraph_entity_ids.shape != entity_init_embeddings.shape[:1]:
            rows = None if entity_init_embeddings is None else entity_init_embeddings.shape[0]
            raise ValueError(
                f"subgraph_entity_ids has shape {tuple(subgraph_entity_ids.shape)} but entity_init_embeddings has "
                f"{rows} rows: one id per row"
            )
        unique, counts = subgraph_entity_ids.unique(return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"subgraph_entity_ids holds entity {int(unique[counts > 1][0])} more than once")

    if mention_entity_ids is None:
        return
    check_index_dtype("mention_entity_ids", mention_entity_ids)
    if not has_text or subgraph_entity_ids is None:
        raise ValueError(
            "mention_entity_ids needs the text and the subgraph: pass input_ids, subgraph_entity_ids, edge_index, "
            "edge_type, entity_init_embeddings and relation_embeddings"
        )
    length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
    check_spans("mention", mention_starts, mention_ends, length)
    if mention_entity_ids.shape != mention_starts.shape:
        raise ValueError(
            f"mention_entity_ids {tuple(mention_entity_ids.shape)} and mention_starts {tuple(mention_starts.shape)} "
            "differ in shape"
        )
    present = mention_starts >= 0
    missing = present & ~torch.isin(mention_entity_ids, subgraph_entity_ids)
    if missing.any():
        b, m = missing.nonzero()[0].tolist()
        raise ValueError(
            f"mention {m} of example {b} links entity {int(mention_entity_ids[b, m])}, which is not in "
            f"subgraph_entity_ids ({int(missing.sum())} such mentions): sample the subgraph around the mentioned "
            "entities"
        )
