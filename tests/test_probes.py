"""examples/probe_representations.py: frozen logistic-regression probes of E^(0) and E^KM, paired across models."""

import math

import pytest
import torch
from probe_representations import SPLITS, draws, fit_probes, interval, knowledge_outputs, main, relation_edges

from conftest import tiny_config
from modeling_jaket import EntityContextMemory, JaketModel, KnowledgeGraph


def blobs(per_class: int, classes: int, features: int, seed: int):
    """`per_class` points around each of `classes` centres, for each of the three splits."""
    generator = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(classes, features, generator=generator)
    labels = torch.arange(classes).repeat_interleave(per_class)
    x = {split: centres[labels] + torch.randn(len(labels), features, generator=generator) for split in SPLITS}
    return x, {split: labels for split in SPLITS}


def test_a_probe_separates_separable_classes_and_chooses_its_strength_on_validation():
    x, y = blobs(20, 3, 8, seed=0)
    x = {split: table + 100.0 for split, table in x.items()}  # far from the origin: the standardisation matters
    subsets = draws(len(y["train"]), 50, 4, seed=0)
    correct, accuracy, chosen = fit_probes(x, y, subsets, 3, [0.001, 1.0])
    assert correct.shape == (4, len(y["test"])) and torch.equal(accuracy, correct.float().mean(1))
    assert (accuracy > 0.9).all() and set(chosen.tolist()) <= {0.001, 1.0}
    shuffled = {**y, "train": y["train"][torch.randperm(len(y["train"]), generator=torch.Generator().manual_seed(1))]}
    assert fit_probes(x, shuffled, subsets, 3, [1.0])[1].mean() < 0.75  # labels that say nothing: no better than luck


def test_draws_are_seeded_subsets_and_one_whole_draw_at_100_percent():
    assert torch.equal(draws(10, 100, 50, 0), torch.arange(10).unsqueeze(0))
    some = draws(200, 5, 3, seed=7)
    assert some.shape == (3, 10) and torch.equal(some, draws(200, 5, 3, seed=7))
    assert not torch.equal(some, draws(200, 5, 3, seed=8)) and not torch.equal(some[0], some[1])
    assert all(len(set(row.tolist())) == 10 for row in some)


def test_a_paired_interval_is_mean_plus_minus_two_standard_errors_or_a_bootstrap_of_the_test_items():
    differences = torch.tensor([0.01, 0.03, 0.02, 0.04])
    mean, low, high = interval(differences, None, None)
    half = 1.96 * differences.std().item() / 2
    assert mean == pytest.approx(0.025) and (low, high) == pytest.approx((0.025 - half, 0.025 + half))
    same = torch.tensor([True, False, True, True])
    assert interval(torch.tensor([0.0]), same, same) == (0.0, 0.0, 0.0)
    better = torch.tensor([True] * 600 + [False] * 400)  # a: 60% right, b: the other 40%
    mean, low, high = interval(torch.tensor([0.6 - 0.4]), better, ~better, resamples=500)
    assert mean == pytest.approx(0.2) and 0.1 < low < 0.2 < high < 0.3  # about two standard errors (0.03) each way


def test_relation_edges_keep_both_directions_of_a_pair_in_one_split():
    heads = [0, 1, 2, 3, 0, 5, 6, 7, 8, 9, 4, 4]
    tails = [1, 0, 3, 2, 4, 6, 5, 8, 9, 7, 0, 1]
    graph = KnowledgeGraph(heads, [0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0], tails, num_entities=10, num_relations=2)
    edges = relation_edges(graph, seed=3)
    pairs = {split: {tuple(sorted(e)) for e in ends.tolist()} for split, (ends, _) in edges.items()}
    assert not (pairs["train"] & pairs["test"]) and not (pairs["validation"] & pairs["test"])
    assert sum(len(ends) for ends, _ in edges.values()) == len(heads)  # every directed edge, once
    assert len(pairs["test"]) == 8 - round(0.4 * 8)  # of the 8 unordered pairs, the last 60% are tested
    for ends, types in edges.values():
        for (v, u), kind in zip(ends.tolist(), types.tolist()):
            assert (v, kind, u) in set(zip(heads, [0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0], tails))


def test_hidden_pairs_reach_no_entity_through_the_knowledge_module():
    torch.manual_seed(0)
    model = JaketModel(tiny_config()).eval()
    graph = KnowledgeGraph([0, 1, 2], [0, 0, 0], [1, 2, 0], num_entities=4, num_relations=1)
    memory = EntityContextMemory(4, 1, model.config.hidden_size)
    memory.update(torch.randn(4, model.config.hidden_size), torch.randn(1, model.config.hidden_size))
    seen = knowledge_outputs(model, memory, graph, [5, 5], seed=0)
    every_pair = torch.tensor([0 * 4 + 1, 1 * 4 + 2, 0 * 4 + 2])
    alone = knowledge_outputs(model, memory, graph, [5, 5], seed=0, hidden_pairs=every_pair)
    isolated = KnowledgeGraph([], [], [], num_entities=4, num_relations=1)
    torch.testing.assert_close(alone, knowledge_outputs(model, memory, isolated, [5, 5], seed=0))
    assert not torch.allclose(seen[:3], alone[:3]) and torch.equal(seen[3], alone[3])  # 3 has no edge to hide


@pytest.mark.data
@pytest.mark.scripts
def test_one_model_given_twice_differs_from_itself_by_exactly_nothing(pretrained, datasets_cache, tmp_path):
    folder = str(pretrained[0])
    flags = ["--model", f"a={folder}", "--model", f"b={folder}", "--draws", "2", "--fractions", "5", "100"]
    flags += ["--l2_grid", "1", "--dataset_cache_dir", datasets_cache, "--output_file", str(tmp_path / "p.json")]
    results = main(flags)
    assert results["entities"] == {"train": 2353, "validation": 2353, "test": 7060}
    assert results["untrained_knowledge_module"] == []  # the fixture's run trained every loss
    for task in ("entity_category", "relation_type"):
        accuracy = results[task]["accuracy"]
        assert set(accuracy) == {"a/E0", "a/EKM", "b/E0", "b/EKM"} and accuracy["a/E0"] == accuracy["b/E0"]
        assert all(0 < row["100%"]["accuracy"] < 1 and row["5%"]["draws"] == 2 for row in accuracy.values())
        for percent in ("5%", "100%"):
            assert results[task]["paired_differences"]["a - b/E0"][percent] == [0.0, 0.0, 0.0]
            assert results[task]["paired_differences"]["a - b/EKM"][percent] == [0.0, 0.0, 0.0]
    assert math.isfinite(results["entity_category"]["accuracy"]["a/E0"]["5%"]["standard_error"])


def test_only_a_run_that_trained_a_knowledge_loss_has_its_e_km_probed(tmp_path):
    from probe_representations import knowledge_module_trained

    assert knowledge_module_trained(tmp_path)  # no history: taken as trained
    (tmp_path / "train_history.json").write_text('[{"step": 10, "masked_lm_loss": 5.0}]')  # the MLM control
    assert not knowledge_module_trained(tmp_path)
    (tmp_path / "train_history.json").write_text('[{"step": 10, "masked_lm_loss": 5.0, "masked_entity_loss": 2.0}]')
    assert knowledge_module_trained(tmp_path)
