"""The knowledge module (JAKET §3.2, Eq. 1-2): a multi-relational graph attention network.

For each target entity v and each head k, over v's incoming edges (u -r-> v):

    alpha^k_{v,r,u} = softmax_{(r,u) in N(v)} LeakyReLU(a^k . [W^k E_v ; W^k f(E_u, R_r)])
    E'_v = LayerNorm(concat_k sigma(sum_{(r,u)} alpha^k_{v,r,u} W^k f(E_u, R_r)) + E_v)

`edge_index[0]` holds the neighbour u and `edge_index[1]` the target v, as in torch_geometric. Relation embeddings
are shared by all layers.
"""

import warnings

import torch
from torch import nn

from .activations import get_activation
from .validation import check_graph_inputs

try:  # optional: torch-scatter's kernels, used when installed (`pip install -e ".[scatter]"`)
    import torch_scatter
except ImportError:
    torch_scatter = None


# torch warns once that its sparse CSR tensors are "in beta"; the two products used here are tested against Eq. (1)-(2)
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


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


class EdgeLayout:
    """A subgraph's edges as one sparse pattern, built once per graph, that the attention's weighted sums run on.

    Each edge u -r-> v has two entries in row v of an [N, N + P] matrix: column u (the neighbour's projected
    embedding) and column N + r (the relation's). With the attention weights as values, one sparse-dense product per
    head computes sum_e alpha_e (W E_u + W R_r) for every target at once, without an [E, heads, head_size] tensor of
    messages; its transpose gives the gradients. Entries that fall on the same (row, column) (two edges from one
    neighbour, or two edges of one relation, into v) are coalesced into one whose value is their sum, so that every
    row's column indices are sorted and distinct: the CSR invariants that GPU kernels assume.
    """

    def __init__(self, edge_index: torch.Tensor, edge_type: torch.Tensor, num_entities: int, num_relations: int):
        neighbour, target = edge_index[0], edge_index[1]
        self.num_entities, self.num_columns = num_entities, num_entities + num_relations
        self.order = torch.argsort(target, stable=True)  # edge i of the sorted layout is edge order[i]
        self.neighbour, self.target, self.edge_type = neighbour[self.order], target[self.order], edge_type[self.order]
        rows = self.target.repeat_interleave(2)
        columns = torch.stack([self.neighbour, num_entities + self.edge_type], dim=1).reshape(-1)
        # entry (edge i, slot s) of the sorted layout sums into coalesced entry `self.entry[2 i + s]`
        keys, self.entry = torch.unique(rows * self.num_columns + columns, sorted=True, return_inverse=True)
        self.num_entries = keys.numel()
        entry_rows, self.col = keys // self.num_columns, keys % self.num_columns
        self.crow = torch.cat([keys.new_zeros(1), torch.bincount(entry_rows, minlength=num_entities).cumsum(0)])
        # the transpose, as a pattern of its own: entry j of it is entry transpose_order[j] above
        self.transpose_order = torch.argsort(self.col * num_entities + entry_rows)
        column_counts = torch.bincount(self.col, minlength=self.num_columns)
        self.transpose_crow = torch.cat([column_counts.new_zeros(1), column_counts.cumsum(0)])
        self.transpose_col = entry_rows[self.transpose_order]

    def entry_values(self, attention: torch.Tensor) -> torch.Tensor:
        """[num_entries] values from one head's [E] attention weights (layout order): both of an edge's entries
        carry its weight, coalesced entries the sum of theirs."""
        return attention.new_zeros(self.num_entries).index_add_(0, self.entry, attention.repeat_interleave(2))

    def edge_scores(self, entry_scores: torch.Tensor) -> torch.Tensor:
        """The transpose of `entry_values`: each edge's score is the sum of its two entries' scores."""
        return entry_scores.index_select(0, self.entry).view(-1, 2).sum(1)

    def matrix(self, values: torch.Tensor, transpose: bool = False, check_invariants: bool | None = None):
        """The [N, N + P] matrix (or its transpose) with `values` [num_entries] in the pattern's entry order. Its
        invariants are checked where `check_invariants`, or by default where
        `torch.sparse.check_sparse_tensor_invariants` is enabled (the tests enable it)."""
        if transpose:
            return torch.sparse_csr_tensor(
                self.transpose_crow,
                self.transpose_col,
                values[self.transpose_order],
                size=(self.num_columns, self.num_entities),
                check_invariants=check_invariants,
            )
        return torch.sparse_csr_tensor(
            self.crow, self.col, values, size=(self.num_entities, self.num_columns), check_invariants=check_invariants
        )


class AttentionWeightedSum(torch.autograd.Function):
    """out[v, k] = sum over v's incoming edges e of attention[e, k] * columns[column of e, k], for both of an edge's
    entries in an [`EdgeLayout`]: a sparse-dense product per head forward; backward, the transpose's product for the
    columns and a sampled dense-dense product (the scores at the pattern's entries only) for the attention."""

    @staticmethod
    def forward(ctx, attention, columns, layout):
        # attention: [E, K] in the layout's edge order; columns: [N + P, K, D] = [W E ; W R]
        ctx.layout, ctx.dtypes = layout, (attention.dtype, columns.dtype)
        # torch's sparse CSR products have no half-precision kernels on CPU: half inputs (autocast, a .half() or
        # .bfloat16() model) are summed in float32, which also keeps the sums of many small weights accurate
        compute_dtype = torch.promote_types(columns.dtype, torch.float32)
        attention, columns = attention.to(compute_dtype), columns.to(compute_dtype)
        ctx.save_for_backward(attention, columns)
        with torch.autocast(columns.device.type, enabled=False):
            heads = [
                layout.matrix(layout.entry_values(attention[:, k])) @ columns[:, k] for k in range(attention.shape[1])
            ]
        return torch.stack(heads, dim=1).to(ctx.dtypes[1])

    @staticmethod
    def backward(ctx, grad_output):
        with torch.autocast(grad_output.device.type, enabled=False):
            return AttentionWeightedSum._backward(ctx, grad_output)

    @staticmethod
    def _backward(ctx, grad_output):
        attention, columns = ctx.saved_tensors
        layout = ctx.layout
        grad_output = grad_output.to(columns.dtype)
        grad_attention = grad_columns = None
        num_heads = attention.shape[1]
        if ctx.needs_input_grad[0]:
            grad_attention = torch.empty_like(attention)
            pattern = layout.matrix(attention.new_zeros(layout.num_entries))
            for k in range(num_heads):
                scores = torch.sparse.sampled_addmm(
                    pattern, grad_output[:, k].contiguous(), columns[:, k].t(), beta=0.0
                )
                grad_attention[:, k] = layout.edge_scores(scores.values())
        if ctx.needs_input_grad[1]:
            grad_columns = torch.stack(
                [
                    layout.matrix(layout.entry_values(attention[:, k]), transpose=True)
                    @ grad_output[:, k].contiguous()
                    for k in range(num_heads)
                ],
                dim=1,
            )
        if grad_attention is not None:
            grad_attention = grad_attention.to(ctx.dtypes[0])
        if grad_columns is not None:
            grad_columns = grad_columns.to(ctx.dtypes[1])
        return grad_attention, grad_columns, None


class KnowledgeLayer(nn.Module):
    """One multi-relational graph attention layer (Eq. 1-2).

    `message_passing` computes the equations as written, one message per edge. `forward`'s fast path uses that, with
    f(e, r) = e + r and W^k linear, W^k f(E_u, R_r) = W^k E_u + W^k R_r: the projections and their attention scores
    are computed once per entity and once per relation, and the weighted sums run as sparse products (`EdgeLayout`)
    without an [E, heads, head_size] tensor of messages. Graphs of at most `config.km_gather_max_edges` edges take
    `message_passing`, which is faster there.
    """

    def __init__(self, config):
        super().__init__()
        hidden_size = config.hidden_size
        self.num_heads = config.km_num_heads
        self.head_size = hidden_size // config.km_num_heads
        self.composition = config.km_composition
        self.gather_max_edges = config.km_gather_max_edges
        if self.composition == "mlp":
            self.compose = nn.Sequential(
                nn.Linear(2 * hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size)
            )
        self.projection = nn.Linear(hidden_size, hidden_size, bias=False)  # W^k for all heads, stacked
        # a^k = [a_target^k ; a_neighbour^k]
        self.attention_target = nn.Parameter(torch.empty(self.num_heads, self.head_size))
        self.attention_neighbour = nn.Parameter(torch.empty(self.num_heads, self.head_size))
        self.leaky_relu = nn.LeakyReLU(config.km_negative_slope)
        self.activation = get_activation(config.km_hidden_act, field="km_hidden_act")
        self.dropout = nn.Dropout(config.km_dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.initializer_range = config.initializer_range
        self.reset_attention_parameters()

    def reset_attention_parameters(self):
        """Initialise a^k (also called by `JaketPreTrainedModel._init_weights`); a standalone layer needs it too."""
        nn.init.normal_(self.attention_target, mean=0.0, std=self.initializer_range)
        nn.init.normal_(self.attention_neighbour, mean=0.0, std=self.initializer_range)

    def takes_sparse_path(self, num_edges: int) -> bool:
        """Whether `forward` runs the sparse products (over an `EdgeLayout`) for a graph of `num_edges` edges."""
        return self.composition == "add" and num_edges > self.gather_max_edges

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x).view(-1, self.num_heads, self.head_size)

    def forward(
        self,
        entity_embeddings: torch.Tensor,
        relation_embeddings: torch.Tensor,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        return_attention_weights: bool = False,
        layout: EdgeLayout | None = None,
    ):
        """`layout`: the edges' [`EdgeLayout`], which a stack of layers over one graph builds once; built here when
        not given. Attention weights are returned in `edge_index`'s order."""
        if self.takes_sparse_path(edge_index.shape[1]):
            num_entities = entity_embeddings.shape[0]
            projected_entities = self._project(entity_embeddings)  # [N, K, D]
            if layout is None:
                layout = EdgeLayout(edge_index, edge_type, num_entities, relation_embeddings.shape[0])
            projected_relations = self._project(relation_embeddings)  # [P, K, D]
            target_scores = (projected_entities * self.attention_target).sum(-1)  # [N, K]
            neighbour_scores = (
                (projected_entities * self.attention_neighbour).sum(-1).index_select(0, layout.neighbour)
            )
            relation_scores = (
                (projected_relations * self.attention_neighbour).sum(-1).index_select(0, layout.edge_type)
            )
            scores = self.leaky_relu(target_scores.index_select(0, layout.target) + neighbour_scores + relation_scores)
            attention = segment_softmax(scores, layout.target, num_entities)
            columns = torch.cat([projected_entities, projected_relations], dim=0)
            aggregated = AttentionWeightedSum.apply(self.dropout(attention), columns, layout)
            if return_attention_weights:
                attention = torch.empty_like(attention).index_copy_(0, layout.order, attention)
            return self._update(aggregated, entity_embeddings, attention, return_attention_weights)
        return self.message_passing(
            entity_embeddings, relation_embeddings, edge_index, edge_type, return_attention_weights
        )

    def message_passing(
        self, entity_embeddings, relation_embeddings, edge_index, edge_type, return_attention_weights=False
    ):
        """Eq. 1-2 as written: one message W^k f(E_u, R_r) per edge (gather), its weight alpha^k_{v,r,u} (softmax
        over v's incoming edges), their weighted sum (scatter). The specification that `forward`'s sparse path is
        tested equal to, and the path of the MLP composition, whose f(e, r) does not split over e and r."""
        neighbour, target, num_entities = edge_index[0], edge_index[1], entity_embeddings.shape[0]
        e_u, r_r = entity_embeddings[neighbour], relation_embeddings[edge_type]
        f = e_u + r_r if self.composition == "add" else self.compose(torch.cat([e_u, r_r], dim=-1))
        messages = self._project(f)  # W^k f(E_u, R_r): [E, K, D]
        targets = self._project(entity_embeddings)[target]  # W^k E_v: [E, K, D]
        scores = (targets * self.attention_target).sum(-1) + (messages * self.attention_neighbour).sum(-1)
        attention = segment_softmax(self.leaky_relu(scores), target, num_entities)  # alpha^k_{v,r,u}: [E, K]
        aggregated = scatter_sum(self.dropout(attention).unsqueeze(-1) * messages, target, num_entities)
        return self._update(aggregated, entity_embeddings, attention, return_attention_weights)

    def _update(self, aggregated, entity_embeddings, attention, return_attention_weights):
        """E' = LayerNorm(concat_k sigma(aggregated_k) + E)."""
        width = self.num_heads * self.head_size
        update = self.dropout(self.activation(aggregated).reshape(entity_embeddings.shape[0], width))
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
        validate: bool = True,
    ):
        """
        Args:
            entity_embeddings: [N, hidden] initial embeddings E^(0) of the subgraph's entities.
            relation_embeddings: [P, hidden] embeddings R of all relations.
            edge_index: [2, E] local entity indices; row 0 the neighbour u, row 1 the target v.
            edge_type: [E] relation index of each edge.
            output_attentions: also return each layer's attention weights [E, K].
            validate: check the inputs' shapes and index ranges first (`JaketModel` has checked them already).

        Returns:
            E^KM [N, hidden], or `(E^KM, attentions)` when `output_attentions`.
        """
        if validate:
            check_graph_inputs(entity_embeddings, relation_embeddings, edge_index, edge_type)
        layout = None
        if self.layers and self.layers[0].takes_sparse_path(edge_index.shape[1]):  # built once for every layer
            layout = EdgeLayout(edge_index, edge_type, entity_embeddings.shape[0], relation_embeddings.shape[0])
        attentions = []
        for layer in self.layers:
            entity_embeddings, attention = layer(
                entity_embeddings,
                relation_embeddings,
                edge_index,
                edge_type,
                return_attention_weights=True,
                layout=layout,
            )
            attentions.append(attention)
        if output_attentions:
            return entity_embeddings, tuple(attentions)
        return entity_embeddings
