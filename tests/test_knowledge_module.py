import pytest
import torch
import torch.nn.functional as F

from conftest import random_graph, tiny_config
from modeling_jaket import KnowledgeModule, knowledge_module, segment_softmax
from modeling_jaket.knowledge_module import AttentionWeightedSum, KnowledgeLayer

ORIGINAL_APPLY = AttentionWeightedSum.apply


def reference_layer(layer, entities, relations, edge_index, edge_type):
    """Eq. (1)-(2) written node by node and head by head, straight from the paper."""
    weight = layer.projection.weight
    heads, size = layer.num_heads, layer.head_size
    outputs = []
    for v in range(entities.shape[0]):
        incoming = [(int(u), int(r)) for u, t, r in zip(edge_index[0], edge_index[1], edge_type) if int(t) == v]
        per_head = []
        for k in range(heads):
            w_k = weight[k * size : (k + 1) * size]
            if not incoming:
                per_head.append(torch.zeros(size, dtype=entities.dtype))
                continue
            if layer.composition == "add":
                messages = torch.stack([w_k @ (entities[u] + relations[r]) for u, r in incoming])
            else:
                messages = torch.stack(
                    [w_k @ layer.compose(torch.cat([entities[u], relations[r]])) for u, r in incoming]
                )
            target = w_k @ entities[v]
            scores = torch.stack(
                [
                    F.leaky_relu(
                        layer.attention_target[k] @ target + layer.attention_neighbour[k] @ m,
                        layer.leaky_relu.negative_slope,
                    )
                    for m in messages
                ]
            )
            alpha = torch.softmax(scores, dim=0)
            per_head.append(F.elu((alpha.unsqueeze(1) * messages).sum(0)))
        outputs.append(torch.cat(per_head))
    return layer.layer_norm(torch.stack(outputs) + entities)


@pytest.fixture(params=["torch", "torch_scatter"])
def scatter_backend(request, monkeypatch):
    """Both kernels the layer can run on: torch's own, and torch-scatter's where it is installed (`.[scatter]`)."""
    if request.param == "torch":
        monkeypatch.setattr(knowledge_module, "torch_scatter", None)
    else:
        monkeypatch.setattr(knowledge_module, "torch_scatter", pytest.importorskip("torch_scatter"))
    return request.param


@pytest.mark.parametrize("composition", ["add", "mlp"])
def test_message_passing_is_eq_1_2_node_by_node(composition, scatter_backend):
    """The package's reference (gather, segment softmax, scatter) against the paper's equations written out."""
    torch.manual_seed(0)
    layer = KnowledgeLayer(tiny_config(km_composition=composition)).double().eval()
    torch.nn.init.normal_(layer.attention_target, std=0.5)
    torch.nn.init.normal_(layer.attention_neighbour, std=0.5)
    entities, relations = torch.randn(12, 32, dtype=torch.float64), torch.randn(3, 32, dtype=torch.float64)
    edge_index, edge_type = random_graph()
    torch.testing.assert_close(
        layer.message_passing(entities, relations, edge_index, edge_type),
        reference_layer(layer, entities, relations, edge_index, edge_type),
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_path_equals_message_passing(seed):
    """The fast path (sparse products over an EdgeLayout) against the reference, on a graph with isolated entities,
    self-loops and repeated (target, relation) pairs: outputs and attention weights in edge_index's order."""
    torch.manual_seed(seed)
    layer = KnowledgeLayer(tiny_config(km_gather_max_edges=0)).double().eval()  # the sparse path at any size
    torch.nn.init.normal_(layer.attention_target, std=0.5)
    torch.nn.init.normal_(layer.attention_neighbour, std=0.5)
    entities, relations = torch.randn(40, 32, dtype=torch.float64), torch.randn(5, 32, dtype=torch.float64)
    edge_index = torch.cat([torch.randint(35, (2, 150)), torch.tensor([[3, 3, 4], [3, 7, 7]])], dim=1)
    edge_type = torch.cat([torch.randint(5, (150,)), torch.tensor([0, 2, 2])])
    fast, fast_attention = layer(entities, relations, edge_index, edge_type, return_attention_weights=True)
    slow, slow_attention = layer.message_passing(entities, relations, edge_index, edge_type, True)
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(fast_attention, slow_attention)


@pytest.mark.parametrize("composition", ["add", "mlp"])
def test_layer_gradients_match_the_reference(composition):
    """The sparse attention-weighted sums have a backward of their own, checked against autograd through Eq. 1-2."""
    torch.manual_seed(2)
    layer = KnowledgeLayer(tiny_config(km_composition=composition, km_gather_max_edges=0)).double().eval()
    torch.nn.init.normal_(layer.attention_target, std=0.5)
    torch.nn.init.normal_(layer.attention_neighbour, std=0.5)
    entities = torch.randn(12, 32, dtype=torch.float64, requires_grad=True)
    relations = torch.randn(3, 32, dtype=torch.float64, requires_grad=True)
    edge_index, edge_type = random_graph()
    weights = torch.randn(12, 32, dtype=torch.float64)
    gradients = []
    for forward in (layer, layer.message_passing):
        layer.zero_grad()
        (forward(entities, relations, edge_index, edge_type) * weights).sum().backward()
        gradients.append(
            [entities.grad.clone(), relations.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
        )
        entities.grad = relations.grad = None
    for fast, slow in zip(*gradients):
        torch.testing.assert_close(fast, slow)


@pytest.mark.parametrize("half", ["autocast", "bfloat16 weights"])
def test_layer_runs_in_half_precision_close_to_float64(half):
    """Under bf16 autocast (Accelerate's --mixed_precision bf16) and with bf16 weights, the sparse weighted sums run in
    float32 (torch has no half-precision CSR product on CPU) and the output and gradients stay close to float64."""
    torch.manual_seed(4)
    layer = KnowledgeLayer(tiny_config(km_gather_max_edges=0)).double().eval()
    entities, relations = torch.randn(12, 32, dtype=torch.float64), torch.randn(3, 32, dtype=torch.float64)
    edge_index, edge_type = random_graph(seed=5)
    expected = layer(entities, relations, edge_index, edge_type)
    inputs = [entities.float().requires_grad_(), relations.float().requires_grad_()]
    if half == "autocast":
        layer.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = layer(*inputs, edge_index, edge_type)
    else:
        layer.bfloat16()
        inputs = [x.detach().bfloat16().requires_grad_() for x in inputs]
        output = layer(*inputs, edge_index, edge_type)
    output.float().sum().backward()
    torch.testing.assert_close(output.double(), expected, atol=0.1, rtol=0.05)
    assert all(torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 for x in inputs)
    assert layer.attention_target.grad is not None and torch.isfinite(layer.attention_target.grad).all()


@pytest.mark.parametrize("gather_max_edges", [0, 256])  # the sparse products, the gather path
def test_module_matches_reference_and_shares_relations(gather_max_edges, monkeypatch):
    sparse_calls = []
    monkeypatch.setattr(AttentionWeightedSum, "apply", lambda *a: sparse_calls.append(1) or ORIGINAL_APPLY(*a))
    torch.manual_seed(1)
    module = KnowledgeModule(tiny_config(km_gather_max_edges=gather_max_edges)).double().eval()
    for layer in module.layers:
        torch.nn.init.normal_(layer.attention_target, std=0.5)
        torch.nn.init.normal_(layer.attention_neighbour, std=0.5)
    entities, relations = torch.randn(12, 32, dtype=torch.float64), torch.randn(3, 32, dtype=torch.float64)
    edge_index, edge_type = random_graph(seed=3)
    expected = entities
    for layer in module.layers:
        expected = reference_layer(layer, expected, relations, edge_index, edge_type)
    torch.testing.assert_close(module(entities, relations, edge_index, edge_type), expected)
    assert len(sparse_calls) == (len(module.layers) if edge_index.shape[1] > gather_max_edges else 0)


def test_attention_sums_to_one_per_target_and_isolated_entity_keeps_layer_norm_of_itself(scatter_backend):
    module = KnowledgeModule(tiny_config()).eval()
    entities, relations = torch.randn(12, 32), torch.randn(3, 32)
    edge_index, edge_type = random_graph(num_entities=10)  # entities 10 and 11 have no neighbours
    edge_index[1][edge_index[1] == 5] = 4  # neither has 5
    output, attentions = module(entities, relations, edge_index, edge_type, output_attentions=True)
    for attention in attentions:
        totals = torch.zeros(12, attention.shape[1]).index_add_(0, edge_index[1], attention)
        has_incoming = torch.zeros(12, dtype=torch.bool)
        has_incoming[edge_index[1]] = True
        torch.testing.assert_close(totals[has_incoming], torch.ones_like(totals[has_incoming]))
        assert (totals[~has_incoming] == 0).all()
    # with no incoming edges, each layer is LayerNorm(E_prev)
    expected = entities[[5, 10, 11]]
    for layer in module.layers:
        expected = layer.layer_norm(expected)
    torch.testing.assert_close(output[[5, 10, 11]], expected)


def test_duplicated_edges_change_nothing():
    module = KnowledgeModule(tiny_config()).eval()
    entities, relations = torch.randn(12, 32), torch.randn(3, 32)
    edge_index, edge_type = random_graph()
    once = module(entities, relations, edge_index, edge_type)
    twice = module(entities, relations, edge_index.repeat(1, 2), edge_type.repeat(2))
    torch.testing.assert_close(once, twice)


def test_permutation_equivariance_over_entities_and_edges():
    module = KnowledgeModule(tiny_config()).eval()
    entities, relations = torch.randn(12, 32), torch.randn(3, 32)
    edge_index, edge_type = random_graph()
    output = module(entities, relations, edge_index, edge_type)

    permutation = torch.randperm(12)  # new entity i is old entity permutation[i]
    inverse = torch.argsort(permutation)
    edge_order = torch.randperm(edge_type.numel())
    permuted = module(entities[permutation], relations, inverse[edge_index][:, edge_order], edge_type[edge_order])
    torch.testing.assert_close(permuted, output[permutation])


def test_segment_softmax_is_stable_for_huge_scores(scatter_backend):
    scores = torch.tensor([[1000.0], [1001.0], [-1000.0], [5.0]])
    index = torch.tensor([0, 0, 1, 1])
    out = segment_softmax(scores, index, 3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:2, 0], torch.softmax(torch.tensor([1000.0, 1001.0]), 0))
    torch.testing.assert_close(out[2:, 0], torch.softmax(torch.tensor([-1000.0, 5.0]), 0))


def test_gradients_reach_every_parameter_and_the_inputs():
    module = KnowledgeModule(tiny_config(km_composition="mlp"))
    entities = torch.randn(12, 32, requires_grad=True)
    relations = torch.randn(3, 32, requires_grad=True)
    edge_index, edge_type = random_graph()
    module(entities, relations, edge_index, edge_type).pow(2).sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert relations.grad.abs().sum() > 0 and entities.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda e, r, ei, et: (e, r, ei[:1], et), "edge_index must have shape"),
        (lambda e, r, ei, et: (e, r, ei, et[:-1]), "edge_type must have shape"),
        (lambda e, r, ei, et: (e, r, ei + 12, et), "edge_index holds entity indices"),
        (lambda e, r, ei, et: (e, r, ei, et + 3), "edge_type holds relation indices"),
        (lambda e, r, ei, et: (e, r[:, :8], ei, et), "width"),
        (lambda e, r, ei, et: (e[0], r, ei, et), "must be 2-D"),
    ],
)
def test_bad_graph_inputs_are_named(edit, message):
    module = KnowledgeModule(tiny_config())
    edge_index, edge_type = random_graph()
    with pytest.raises(ValueError, match=message):
        module(*edit(torch.randn(12, 32), torch.randn(3, 32), edge_index, edge_type))


def test_a_standalone_module_is_initialised():
    torch.manual_seed(0)
    module = KnowledgeModule(tiny_config(initializer_range=0.02))
    for layer in module.layers:
        for parameter in (layer.attention_target, layer.attention_neighbour):
            assert torch.isfinite(parameter).all() and 0.005 < parameter.std() < 0.05


def test_edge_layout_keeps_the_csr_invariants_and_coalesces_repeats():
    """Sorted, distinct column indices in every row of the pattern and of its transpose (what GPU kernels assume),
    with two edges from one neighbour and two of one relation into the same target coalesced into one entry each."""
    from modeling_jaket.knowledge_module import EdgeLayout

    edge_index = torch.tensor([[1, 2, 1, 0, 3], [0, 0, 0, 1, 0]])  # 1 -> 0 twice; relation 0 into 0 three times
    edge_type = torch.tensor([0, 1, 0, 2, 0])
    layout = EdgeLayout(edge_index, edge_type, num_entities=4, num_relations=3)
    assert layout.num_entries == 7  # row 0: columns 1, 2, 3, 4 + 0, 4 + 1 (8 entries before); row 1: 0, 4 + 2
    values = layout.entry_values(torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64))
    dense = layout.matrix(values, check_invariants=True).to_dense()
    transposed = layout.matrix(values, transpose=True, check_invariants=True).to_dense()
    torch.testing.assert_close(transposed, dense.t())
    # the weights are in the layout's order, by target: 1 -0-> 0, 2 -1-> 0, 1 -0-> 0, 3 -0-> 0, then 0 -2-> 1
    expected = torch.zeros(4, 7, dtype=torch.float64)
    expected[0, 1], expected[0, 2], expected[0, 3] = 0.1 + 0.3, 0.2, 0.4
    expected[0, 4], expected[0, 5] = 0.1 + 0.3 + 0.4, 0.2
    expected[1, 0], expected[1, 6] = 0.5, 0.5
    torch.testing.assert_close(dense, expected)
    # and every other pattern built in the tests is checked too (conftest enables the checks): an unsorted row fails
    with pytest.raises(RuntimeError, match="sorted and distinct"):
        torch.sparse_csr_tensor(torch.tensor([0, 2]), torch.tensor([1, 0]), torch.ones(2), size=(1, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_path_equals_message_passing_on_cuda(seed):
    """The sparse products on the GPU's kernels against the float64 reference: outputs and gradients."""
    torch.manual_seed(seed)
    layer = KnowledgeLayer(tiny_config(km_gather_max_edges=0)).double().eval().cuda()
    torch.nn.init.normal_(layer.attention_target, std=0.5)
    torch.nn.init.normal_(layer.attention_neighbour, std=0.5)
    entities = torch.randn(40, 32, dtype=torch.float64, device="cuda", requires_grad=True)
    relations = torch.randn(5, 32, dtype=torch.float64, device="cuda")
    edge_index = torch.randint(35, (2, 300), device="cuda")
    edge_type = torch.randint(5, (300,), device="cuda")
    outputs, gradients = [], []
    for forward in (layer, layer.message_passing):
        output = forward(entities, relations, edge_index, edge_type)
        (gradient,) = torch.autograd.grad(output.pow(2).sum(), entities)
        outputs.append(output)
        gradients.append(gradient)
    torch.testing.assert_close(*outputs)
    torch.testing.assert_close(*gradients)
