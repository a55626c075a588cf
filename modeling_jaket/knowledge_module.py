"""The knowledge module (JAKET §3.2, Eq. 1-2): a multi-relational graph attention network.

For each target entity v and each head k, over v's incoming edges (u -r-> v):

    alpha^k_{v,r,u} = softmax_{(r,u) in N(v)} LeakyReLU(a^k . [W^k E_v ; W^k f(E_u, R_r)])
    E'_v = LayerNorm(concat_k sigma(sum_{(r,u)} alpha^k_{v,r,u} W^k f(E_u, R_r)) + E_v)

`edge_index[0]` holds the neighbour u and `edge_index[1]` the target v, as in torch_geometric. Relation embeddings
are shared by all layers.
"""

import torch
from torch import nn
from transformers.activations import ACT2FN

try:  # optional: torch-scatter's kernels, used when installed (`pip install -e ".[scatter]"`)
    import torch_scatter
except ImportError:
    torch_scatter = None


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum the rows of `src` into `dim_size` rows by `index` (first dimension)."""
    if torch_scatter is not None:
        return torch_scatter.scatter_add(src, index, dim=0, dim_size=dim_size)
    out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.index_add_(0, index, src)


def scatter_max(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Row-wise maximum of `src` grouped by `index`; groups without rows get 0."""
    if torch_scatter is not None:
        return torch_scatter.scatter_max(src, index, dim=0, dim_size=dim_size)[0]
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.scatter_reduce_(0, expanded, src, reduce="amax", include_self=False)


def segment_softmax(scores: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Softmax of `scores` [E, ...] over the rows that share the same `index` [E] (the incoming edges of a target).

    The per-segment maximum is subtracted first so that large scores cannot overflow, as in torch_geometric's
    `utils.softmax`.
    """
    shifted = scores - scatter_max(scores.detach(), index, num_segments).index_select(0, index)
    exp = shifted.exp()
    denominator = scatter_sum(exp, index, num_segments).index_select(0, index)
    return exp / denominator


class KnowledgeLayer(nn.Module):
    """One multi-relational graph attention layer (Eq. 1-2).

    With f(e, r) = e + r and W^k linear, W^k f(E_u, R_r) = W^k E_u + W^k R_r: the projections and their attention
    scores are computed once per entity and once per relation, then gathered per edge.
    """

    def __init__(self, config):
        super().__init__()
        hidden_size = config.hidden_size
        self.num_heads = config.km_num_heads
        self.head_size = hidden_size // config.km_num_heads
        self.composition = config.km_composition
        if self.composition == "mlp":
            self.compose = nn.Sequential(
                nn.Linear(2 * hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size)
            )
        self.projection = nn.Linear(hidden_size, hidden_size, bias=False)  # W^k for all heads, stacked
        # a^k = [a_target^k ; a_neighbour^k]
        self.attention_target = nn.Parameter(torch.empty(self.num_heads, self.head_size))
        self.attention_neighbour = nn.Parameter(torch.empty(self.num_heads, self.head_size))
        self.leaky_relu = nn.LeakyReLU(config.km_negative_slope)
        # GAT's usual sigma is ELU, which transformers' ACT2FN does not list
        self.activation = nn.ELU() if config.km_hidden_act == "elu" else ACT2FN[config.km_hidden_act]
        self.dropout = nn.Dropout(config.km_dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.initializer_range = config.initializer_range
        self.reset_attention_parameters()

    def reset_attention_parameters(self):
        """Initialise a^k (also called by `JaketPreTrainedModel._init_weights`); a standalone layer needs it too."""
        nn.init.normal_(self.attention_target, mean=0.0, std=self.initializer_range)
        nn.init.normal_(self.attention_neighbour, mean=0.0, std=self.initializer_range)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x).view(-1, self.num_heads, self.head_size)

    def forward(
        self,
        entity_embeddings: torch.Tensor,
        relation_embeddings: torch.Tensor,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        return_attention_weights: bool = False,
    ):
        num_entities = entity_embeddings.shape[0]
        neighbour, target = edge_index[0], edge_index[1]

        projected_entities = self._project(entity_embeddings)  # [N, K, D]
        if self.composition == "add":
            projected_relations = self._project(relation_embeddings)  # [P, K, D]
            messages = projected_entities.index_select(0, neighbour) + projected_relations.index_select(0, edge_type)
            neighbour_scores = (projected_entities * self.attention_neighbour).sum(-1).index_select(0, neighbour) + (
                projected_relations * self.attention_neighbour
            ).sum(-1).index_select(0, edge_type)
        else:
            composed = self.compose(
                torch.cat(
                    [entity_embeddings.index_select(0, neighbour), relation_embeddings.index_select(0, edge_type)],
                    dim=-1,
                )
            )
            messages = self._project(composed)
            neighbour_scores = (messages * self.attention_neighbour).sum(-1)
        target_scores = (projected_entities * self.attention_target).sum(-1)  # [N, K]

        scores = self.leaky_relu(target_scores.index_select(0, target) + neighbour_scores)  # [E, K]
        attention = segment_softmax(scores, target, num_entities)
        aggregated = scatter_sum(self.dropout(attention).unsqueeze(-1) * messages, target, num_entities)

        update = self.dropout(self.activation(aggregated).reshape(num_entities, self.num_heads * self.head_size))
        output = self.layer_norm(update + entity_embeddings)
        if return_attention_weights:
            return output, attention
        return output


class KnowledgeModule(nn.Module):
    """Stack of `config.km_num_layers` [`KnowledgeLayer`]s over one (sub)graph, relation embeddings shared."""

    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList([KnowledgeLayer(config) for _ in range(config.km_num_layers)])

    def forward(
        self,
        entity_embeddings: torch.Tensor,
        relation_embeddings: torch.Tensor,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        output_attentions: bool = False,
    ):
        """
        Args:
            entity_embeddings: [N, hidden] initial embeddings E^(0) of the subgraph's entities.
            relation_embeddings: [P, hidden] embeddings R of all relations.
            edge_index: [2, E] local entity indices; row 0 the neighbour u, row 1 the target v.
            edge_type: [E] relation index of each edge.
            output_attentions: also return each layer's attention weights [E, K].

        Returns:
            E^KM [N, hidden], or `(E^KM, attentions)` when `output_attentions`.
        """
        check_graph_inputs(entity_embeddings, relation_embeddings, edge_index, edge_type)
        attentions = []
        for layer in self.layers:
            entity_embeddings, attention = layer(
                entity_embeddings, relation_embeddings, edge_index, edge_type, return_attention_weights=True
            )
            attentions.append(attention)
        if output_attentions:
            return entity_embeddings, tuple(attentions)
        return entity_embeddings


def check_index_dtype(name: str, tensor: torch.Tensor) -> None:
    """Indices must be integers: a float would be truncated, a boolean True read as index 1."""
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise ValueError(f"{name} must be an integer tensor of indices, got {tensor.dtype}")


def check_finite(name: str, tensor: torch.Tensor) -> None:
    bad = ~torch.isfinite(tensor)
    if bad.any():
        row = int(bad.reshape(tensor.shape[0], -1).any(dim=1).nonzero()[0])
        raise ValueError(f"{name} row {row} holds NaN or infinity ({int(bad.sum())} such values in all)")


def check_graph_inputs(entity_embeddings, relation_embeddings, edge_index, edge_type) -> None:
    """Raise a `ValueError` naming the first inconsistent shape or out-of-range index."""
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
