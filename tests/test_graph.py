import pytest
import torch

from conftest import DATA_DIR
from modeling_jaket import KnowledgeGraph
from modeling_jaket.graph import sample_without_replacement, unique_in_order


def star_and_chain_graph():
    # entity 0 has 30 neighbours (1..30); 1..30 each point at 31; 31 -> 32 -> 33; 34 is isolated
    heads = [0] * 30 + list(range(1, 31)) + [31, 32]
    tails = list(range(1, 31)) + [31] * 30 + [32, 33]
    relations = [i % 3 for i in range(len(heads))]
    return KnowledgeGraph(heads, relations, tails, num_entities=35, num_relations=3)


def metaqa_graph():
    entities, triples = {}, []
    with open(DATA_DIR / "metaqa" / "kb.txt", encoding="utf-8") as f:
        for line in f:
            head, relation, tail = line.rstrip("\n").split("|")
            triples.append(
                (entities.setdefault(head, len(entities)), relation, entities.setdefault(tail, len(entities)))
            )
    relations = {r: i for i, r in enumerate(sorted({r for _, r, _ in triples}))}
    h, r, t = zip(*[(h, relations[r], t) for h, r, t in triples])
    # both directions, so that a movie's director is its neighbour and the director's movies are his
    return KnowledgeGraph(h + t, r + r, t + h, len(entities), len(relations))


def triples_of(graph, subgraph):
    u = subgraph.entity_ids[subgraph.edge_index[0]]
    v = subgraph.entity_ids[subgraph.edge_index[1]]
    return v, subgraph.edge_type, u


def test_csr_holds_every_triple():
    graph = star_and_chain_graph()
    assert graph.num_triples == 62
    assert graph.degree()[:2].tolist() == [30, 1] and graph.degree()[34] == 0
    assert sorted(graph.neighbours[graph.rowptr[0] : graph.rowptr[1]].tolist()) == list(range(1, 31))


def test_fanout_bounds_no_duplicates_and_real_edges():
    graph = star_and_chain_graph()
    generator = torch.Generator().manual_seed(0)
    subgraph = graph.sample_subgraph([0, 31, 34], fanouts=(10, 5), generator=generator)
    assert subgraph.entity_ids[:3].tolist() == [0, 31, 34] and subgraph.num_seeds == 3
    assert subgraph.edge_ids.unique().numel() == subgraph.edge_ids.numel()
    targets = subgraph.entity_ids[subgraph.edge_index[1]]
    assert (targets == 0).sum() == 10  # 30 neighbours, fanout 10
    assert (targets == 31).sum() == 1 and (targets == 34).sum() == 0
    v, r, u = triples_of(graph, subgraph)
    assert torch.equal(v, graph.targets[subgraph.edge_ids]) and torch.equal(u, graph.neighbours[subgraph.edge_ids])
    assert torch.equal(r, graph.edge_types[subgraph.edge_ids])
    # hop 2 expands only entities first reached at hop 1, 5 edges each at most
    hop2_targets = targets[(targets != 0) & (targets != 31) & (targets != 34)]
    assert torch.bincount(hop2_targets).max() <= 5
    assert set(hop2_targets.tolist()) <= set(subgraph.entity_ids[3:].tolist())
    assert subgraph.entity_ids.unique().numel() == subgraph.entity_ids.numel()


def test_sampling_is_uniform_without_replacement():
    degrees = torch.full((20000,), 6)
    chosen = sample_without_replacement(degrees, 3, torch.Generator().manual_seed(0))
    assert (chosen.sort(dim=1).values.diff(dim=1) > 0).all()  # distinct in each row
    frequency = torch.bincount(chosen.reshape(-1), minlength=6).float() / chosen.numel()
    torch.testing.assert_close(frequency, torch.full((6,), 1 / 6), atol=0.01, rtol=0)


@pytest.mark.data
def test_sampling_on_the_real_metaqa_graph():
    graph = metaqa_graph()
    generator = torch.Generator().manual_seed(0)
    seeds = graph.sample_roots(64, generator=generator)
    assert seeds.unique().numel() == seeds.numel() == 64
    subgraph = graph.sample_subgraph(seeds, fanouts=(10, 10), generator=generator)
    counts = torch.bincount(subgraph.edge_index[1], minlength=subgraph.entity_ids.numel())
    assert counts.max() <= 10
    assert torch.equal(counts[:64], graph.degree(seeds).clamp(max=10))  # every seed gets min(degree, 10)
    assert subgraph.edge_ids.unique().numel() == subgraph.edge_ids.numel()
    assert subgraph.edge_index.max() < subgraph.entity_ids.numel()


def test_random_walks_follow_edges():
    graph = star_and_chain_graph()
    walks = graph.random_walks(200, 4, torch.Generator().manual_seed(0))
    assert walks.shape == (200, 5)
    for a, b in zip(walks[:, :-1].reshape(-1).tolist(), walks[:, 1:].reshape(-1).tolist()):
        neighbours = graph.neighbours[graph.rowptr[a] : graph.rowptr[a + 1]].tolist()
        assert b in neighbours or not neighbours  # dead ends restart anywhere


def test_unique_in_order():
    assert unique_in_order(torch.tensor([5, 3, 5, 1, 3, 9])).tolist() == [5, 3, 1, 9]


def test_save_and_load(tmp_path):
    graph = KnowledgeGraph(
        [0, 1],
        [0, 1],
        [1, 2],
        3,
        2,
        entity_names=["a", "b", "c"],
        relation_names=["r", "s"],
        entity_descriptions=["a is", "b is", "c is"],
        relation_descriptions=["r is", "s is"],
        entity_categories=[0, 1, 1],
        category_names=["x", "y"],
    )
    graph.save_pretrained(tmp_path)
    loaded = KnowledgeGraph.from_pretrained(tmp_path)
    assert loaded.entity_names == ["a", "b", "c"] and loaded.category_names == ["x", "y"]
    assert torch.equal(loaded.rowptr, graph.rowptr) and torch.equal(loaded.entity_categories, graph.entity_categories)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: KnowledgeGraph([0, 5], [0, 0], [1, 1], 3, 1),
            r"triple head at position 1 is 5, outside \[0, num_entities=3\)",
        ),
        (lambda: KnowledgeGraph([0], [2], [1], 3, 1), "triple relation at position 0 is 2"),
        (lambda: KnowledgeGraph([0, 1], [0], [1, 2], 3, 1), "differ in length"),
        (lambda: KnowledgeGraph([0], [0], [1], 3, 1, entity_names=["a"]), "entity_names has 1 entries for 3 entitys"),
        (lambda: KnowledgeGraph([0], [0], [1], 3, 1, entity_categories=[0, 1]), "entity_categories has shape"),
        (lambda: star_and_chain_graph().sample_subgraph([40]), "seed entity at position 0 is 40"),
        (lambda: star_and_chain_graph().sample_subgraph([]), "at least one seed"),
        (lambda: KnowledgeGraph.from_pretrained("/nonexistent"), "no knowledge graph file"),
        (
            lambda: star_and_chain_graph().sample_subgraph([1.7]),
            "seed entities must be integer ids, got a torch.float32",
        ),
        (
            lambda: star_and_chain_graph().sample_subgraph([True]),
            "seed entities must be integer ids, got a torch.bool",
        ),
        (lambda: KnowledgeGraph([0.5], [0], [1], 3, 1), "triple heads must be integer ids"),
    ],
)
def test_bad_graph_input_is_named(call, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        call()


def test_from_records_maps_ids_and_adds_reverse_edges(caplog):
    entities = [
        {"id": i, "name": n, "description": f"{n}: d", "category": c}
        for i, n, c in [("a", "alpha", 0), ("b", "beta", 1), ("c", "gamma", 1)]
    ]
    relations = [{"id": "r", "name": "rel", "description": "rel: relates"}]
    triples = [{"head": "a", "relation": "r", "tail": "b"}, {"head": "b", "relation": "r", "tail": "x"}]
    with caplog.at_level("INFO", logger="modeling_jaket.graph"):
        graph = KnowledgeGraph.from_records(entities, relations, triples, category_names=["x", "y"], add_reverse=True)
    assert graph.num_triples == 2 and graph.relation_ids == ["r", "r^-1"]  # the triple to "x" is not in this part
    assert "1 of 2 triples left out, an end outside the 3 entities" in caplog.text  # counted, no longer silent
    assert graph.entity_index == {"a": 0, "b": 1, "c": 2} and graph.entity_categories.tolist() == [0, 1, 1]
    assert graph.neighbours[graph.rowptr[1] : graph.rowptr[2]].tolist() == [0]  # b <-r^-1- a
    assert graph.edge_types[graph.rowptr[1] : graph.rowptr[2]].tolist() == [1]
    assert graph.relation_descriptions[1] == "inverse of rel: relates"
    with pytest.raises(ValueError, match="triple 0 has relation 'q'"):
        KnowledgeGraph.from_records(entities, relations, [{"head": "a", "relation": "q", "tail": "b"}])


def test_sample_neighbours_prefers_real_neighbours_then_pads_randomly():
    graph = star_and_chain_graph()
    sampled = graph.sample_neighbours(torch.tensor([0, 31, 34]), 4, torch.Generator().manual_seed(0))
    assert sampled.shape == (3, 4)
    assert set(sampled[0].tolist()) <= set(range(1, 31)) and sampled[0].unique().numel() == 4
    assert sampled[1, 0] == 32  # 31's only neighbour, then random entities
    assert ((sampled >= 0) & (sampled < 35)).all()


def test_a_graph_without_triples_samples_roots_and_subgraphs():
    graph = KnowledgeGraph([], [], [], 5, 1)
    generator = torch.Generator().manual_seed(0)
    roots = graph.sample_roots(3, generator=generator)  # every walk restarts at a random entity
    assert roots.numel() == 3 and roots.unique().numel() == 3 and ((roots >= 0) & (roots < 5)).all()
    subgraph = graph.sample_subgraph(roots, generator=generator)
    assert subgraph.edge_index.shape == (2, 0) and torch.equal(subgraph.entity_ids, roots)


def test_a_fanout_far_above_every_degree_takes_every_edge_at_once():
    """Sampling is bounded by the degrees, never by the fanout: a fanout of a billion on a small graph returns every
    incoming edge (it used to loop a billion times over no rows); the alarm fails the test instead of hanging."""
    import signal

    graph = KnowledgeGraph([0, 1, 2], [0, 0, 0], [1, 2, 0], num_entities=3, num_relations=1)
    signal.signal(signal.SIGALRM, lambda *args: pytest.fail("sampling hung"))
    signal.alarm(20)
    try:
        subgraph = graph.sample_subgraph(torch.tensor([1]), fanouts=(10**9, 10**9))
    finally:
        signal.alarm(0)
    assert subgraph.edge_index.shape[1] == 2 and sorted(subgraph.entity_ids.tolist()) == [0, 1, 2]  # 0->1, 2->0


CHANGED_FIELDS = {
    "aliases a string": ("entity_aliases", [["ay"], "bee"]),  # was one alias per character: "b", "e", "e"
    "repeated entity key": ("entity_ids", ["Q1", "Q1"]),  # was the key of the second row
    "null category name": ("category_names", ["x", None]),
    "number as a name": ("entity_names", [7, "b"]),  # failed deep in mention finding
}


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated", r"graph.safetensors: not a readable safetensors file"),
        ("no tails", r"graph.safetensors: no \['tails'\] table"),
        ("bad json", r"graph.json, line 1: not valid JSON"),
        ("repeated key", r"graph.json: key 'entity_names' appears more than once"),
        ("unknown field", r"the saved graph does not hold together .*unexpected keyword argument 'colour'"),
        ("tail out of range", r"the saved graph does not hold together \(triple tail at position 0 is 7"),
        # each of these loaded, and went wrong later or silently
        ("aliases a string", r"does not hold together \(entity_aliases\[1\] must be a list of strings, got 'bee'"),
        ("repeated entity key", r"does not hold together \(entity_ids\[1\] repeats 'Q1' \(also entity_ids\[0\]\)"),
        ("category past names", r"does not hold together \(entity_categories\[1\] is 9, outside \[-1, len\("),
        ("null category name", r"does not hold together \(category_names\[1\] must be a string, got None"),
        ("number as a name", r"does not hold together \(entity_names\[0\] must be a string, got 7"),
    ],
)
def test_a_damaged_saved_graph_names_the_file(tmp_path, damage, message):
    import json

    from safetensors.torch import load_file, save_file

    from modeling_jaket.graph import GRAPH_TENSORS_NAME, GRAPH_VOCAB_NAME

    KnowledgeGraph(
        [0],
        [0],
        [1],
        num_entities=2,
        num_relations=1,
        entity_names=["a", "b"],
        entity_ids=["Q1", "Q2"],
        entity_aliases=[["ay"], ["bee"]],
        entity_categories=[0, 1],
        category_names=["x", "y"],
    ).save_pretrained(tmp_path)
    tensors_path, vocab_path = tmp_path / GRAPH_TENSORS_NAME, tmp_path / GRAPH_VOCAB_NAME
    tensors, vocab = load_file(tensors_path), json.loads(vocab_path.read_text())
    if damage == "truncated":
        tensors_path.write_bytes(tensors_path.read_bytes()[:-5])
    elif damage == "no tails":
        save_file({k: v for k, v in tensors.items() if k != "tails"}, tensors_path)
    elif damage == "bad json":
        vocab_path.write_text('{"num_entities": 2,')
    elif damage == "repeated key":
        vocab_path.write_text(json.dumps(vocab)[:-1] + ', "entity_names": ["b", "a"]}')
    elif damage == "unknown field":
        vocab_path.write_text(json.dumps({**vocab, "colour": "red"}))
    elif damage in CHANGED_FIELDS:
        field, value = CHANGED_FIELDS[damage]
        vocab_path.write_text(json.dumps({**vocab, field: value}))
    elif damage == "category past names":
        save_file({**tensors, "entity_categories": torch.tensor([0, 9])}, tensors_path)
    else:
        save_file({**tensors, "tails": torch.tensor([7])}, tensors_path)
    with pytest.raises(ValueError, match=message):
        KnowledgeGraph.from_pretrained(tmp_path)


def test_a_graph_saved_as_csr_is_mapped_and_samples_as_the_original(tmp_path):
    graph = star_and_chain_graph()
    graph.entity_categories, graph.category_names = torch.arange(35) % 4, ["a", "b", "c", "d"]
    graph.save_csr(tmp_path)
    mapped = KnowledgeGraph.from_csr(tmp_path)
    assert mapped.entity_names is None and mapped.category_names == ["a", "b", "c", "d"]
    for field in ("rowptr", "targets", "neighbours", "edge_types", "entity_categories"):
        assert torch.equal(getattr(mapped, field), getattr(graph, field)), field
    ours, theirs = (g.sample_subgraph([0, 31], (10, 10), torch.Generator().manual_seed(3)) for g in (graph, mapped))
    assert torch.equal(ours.entity_ids, theirs.entity_ids) and torch.equal(ours.edge_index, theirs.edge_index)
    with open(tmp_path / "neighbours.npy", "r+b") as f:  # the file changed under it: a map shared, not a copy
        f.seek(-8, 2)
        f.write((34).to_bytes(8, "little"))
    assert int(mapped.neighbours[-1]) == 34 and int(graph.neighbours[-1]) == 33
    (tmp_path / "rowptr.npy").write_bytes((tmp_path / "rowptr.npy").read_bytes()[:-16])  # cut short
    with pytest.raises(ValueError, match="not a graph saved by save_csr|do not hold together"):
        KnowledgeGraph.from_csr(tmp_path)


def test_a_subgraph_gives_the_model_its_graph_inputs_with_only_the_visible_edges():
    graph = star_and_chain_graph()
    subgraph = graph.sample_subgraph([0], generator=torch.Generator().manual_seed(0))  # DEFAULT_FANOUTS: 10, 10
    assert subgraph.edge_type.numel() == 10 + 10  # ten of 0's thirty neighbours, then each one's only one (31)
    inputs = subgraph.inputs()
    assert set(inputs) == {"subgraph_entity_ids", "edge_index", "edge_type"}
    assert inputs["subgraph_entity_ids"] is subgraph.entity_ids and torch.equal(
        inputs["edge_type"], subgraph.edge_type
    )
    visible = subgraph.edge_type != 1
    hidden = subgraph.inputs(visible)
    assert torch.equal(hidden["edge_index"], subgraph.edge_index[:, visible]) and (hidden["edge_type"] != 1).all()
    assert 0 < hidden["edge_type"].numel() < subgraph.edge_type.numel()
