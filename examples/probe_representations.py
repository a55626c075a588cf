"""Frozen probes: what pre-training put into the entity representations, read without any fine-tuning.

    python examples/probe_representations.py --model jaket=jaket-base --model mlm=outputs/default/control-mlm \
        --model category=outputs/default/control-category --with_backbone --output_file outputs/probes.json

A `--model` is `name=folder`: an output folder of examples/pretrain.py, or a RoBERTa/BERT checkpoint (the backbone
untouched; `--with_backbone` adds the scripts' default one). On WordNet's held-out part, which pre-training never
sees, every synset gets E^(0) (LM1 over its description: the entity memory) and, where the model has a pre-trained
knowledge module, E^KM (eval mode, `--fanouts` neighbours a hop, R = 0 as pre-training runs it, §3.5); a run that
never trained its module (the MLM control) has its E^KM read too, as the control for graph aggregation alone, and
the results name it (`untrained_knowledge_module`). A multinomial logistic-regression probe reads each:

- **entity category** (45 lexicographer files): trained on 1 / 5 / 20 / 100% of the `entity_classification`
  builder's training split, its L2 strength chosen on the builder's validation split, scored once on its test split;
- **relation type** between two held-out entities (inductive link typing): features `[h, t, h * t]` of an edge's
  ends, the edges split 20 / 20 / 60 by their unordered pair, and every edge between two probed entities hidden from
  the knowledge module.

Below 100%, `--draws` seeded draws of the training labels, the same draws for every model, so that two models'
difference is paired draw by draw; at 100% one fit, its difference's interval from a paired bootstrap of the test
items. The spread is that of the label draws (or the test items) for one pre-training of each model, not that of
pre-training seeds. Prints and writes (`--output_file`) each probe's mean test accuracy and every paired difference
with a 95% interval.
"""

import argparse
import json
import logging
import math
from pathlib import Path

import torch
from finetune_entity_classification import heldout_graph
from transformers import AutoTokenizer

import datasets_scripts
from jaket_training.data import default_backbone, default_data_dir
from modeling_jaket import EntityContextMemory, JaketModel, KnowledgeGraph

logger = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
Z_95 = 1.96  # normal quantile: at 50 draws Student's t (2.01) would widen an interval by 3%


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="name=folder (repeat for each model)")
    parser.add_argument(
        "--with_backbone", action="store_true", help="one more model, `backbone`: the scripts' default backbone"
    )
    parser.add_argument("--data_dir", default=None, help="the data folder (default: ../shared/data/wordnet-3.0)")
    parser.add_argument("--dataset_cache_dir", default=None, help="where datasets keeps prepared data")
    parser.add_argument("--fractions", type=int, nargs="+", default=[1, 5, 20, 100], help="%% of the training labels")
    parser.add_argument("--draws", type=int, default=50, help="label draws a fraction below 100%%")
    parser.add_argument("--l2_grid", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0], help="inverse L2 (C)")
    parser.add_argument("--fanouts", type=int, nargs="+", default=[25, 25], help="E^KM's neighbours a hop")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the test items at 100%%")
    parser.add_argument("--seed", type=int, default=0, help="draws, pair splits and neighbour sampling")
    parser.add_argument("--output_file", default=None, help="the results as JSON")
    args = parser.parse_args(argv)
    models = {}
    for given in args.model:
        name, sep, folder = given.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--model {given!r}: give name=folder")
        if name in models:
            raise ValueError(f"--model {given!r}: the name {name!r} is given twice")
        models[name] = folder
    if args.with_backbone:
        models.setdefault("backbone", default_backbone())
    if not models:
        raise ValueError("give at least one --model name=folder (or --with_backbone)")
    args.models = models
    if not all(0 < f <= 100 for f in args.fractions) or args.draws < 1 or min(args.l2_grid) <= 0:
        raise ValueError("--fractions must lie in (0, 100], --draws be >= 1 and --l2_grid be positive")
    args.data_dir = args.data_dir or str(Path(default_data_dir()) / "wordnet-3.0")
    return args


def category_labels(args, graph: KnowledgeGraph) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (the graph's numbers of its entities, their categories)}: the entity_classification builder's."""
    loaded = datasets_scripts.load(
        "entity_classification", args.data_dir, config_name="fraction-100", cache_dir=args.dataset_cache_dir
    )
    return {
        split: (
            torch.tensor([graph.entity_index[key] for key in loaded[split]["id"][:]]),
            torch.tensor(loaded[split]["category"][:]),
        )
        for split in SPLITS
    }


def relation_edges(graph: KnowledgeGraph, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: ([edges, 2] (v, u) ends, relation types)}: one example per directed pair (its first relation), the
    unordered pairs shuffled and split 20 / 20 / 60, so that both directions of a pair fall in one split."""
    ends = torch.stack([graph.targets, graph.neighbours], dim=1)
    keys = ends[:, 0] * graph.num_entities + ends[:, 1]
    _, first = unique_first(keys)
    ends, types = ends[first], graph.edge_types[first]
    pair = ends.min(dim=1).values * graph.num_entities + ends.max(dim=1).values
    pairs, which = torch.unique(pair, return_inverse=True)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(pairs))
    bounds = (0, round(0.2 * len(pairs)), round(0.4 * len(pairs)), len(pairs))
    return {
        split: (ends[(rank[which] >= lo) & (rank[which] < hi)], types[(rank[which] >= lo) & (rank[which] < hi)])
        for split, lo, hi in zip(SPLITS, bounds, bounds[1:])
    }


def unique_first(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct `keys` and the position of each one's first occurrence."""
    uniques, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((len(uniques),), len(keys), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys)), reduce="amin")
    return uniques, first.sort().values


@torch.no_grad()
def knowledge_outputs(model, memory, graph, fanouts, seed, hidden_pairs=None, batch_size=256) -> torch.Tensor:
    """E^KM of every entity: the knowledge module (eval mode) over each batch of entities' sampled neighbourhood,
    without the edges between two entities of `hidden_pairs` (unordered pair keys min * N + max)."""
    generator = torch.Generator().manual_seed(seed)
    count = graph.num_entities
    relations = torch.zeros_like(memory.relation_embeddings)  # R = 0: pre-training's default (§3.5)
    output = torch.empty(count, model.config.hidden_size)
    for begin in range(0, count, batch_size):
        seeds = torch.arange(begin, min(count, begin + batch_size))
        subgraph = graph.sample_subgraph(seeds, fanouts, generator)
        visible = None
        if hidden_pairs is not None:
            ends = subgraph.entity_ids[subgraph.edge_index]
            keys = ends.min(dim=0).values * count + ends.max(dim=0).values
            visible = ~torch.isin(keys, hidden_pairs)
        embeddings = model(
            **subgraph.inputs(visible),
            entity_init_embeddings=memory.lookup(subgraph.entity_ids),
            relation_embeddings=relations,
        ).entity_embeddings
        output[seeds] = embeddings[: len(seeds)].float()  # the seeds come first
    return output


# the losses whose gradient reaches the knowledge module (L_t alone, as the MLM control trains, runs no graph)
KNOWLEDGE_LOSSES = ("entity_category_loss", "relation_type_loss", "masked_entity_loss")


def knowledge_module_trained(folder: Path) -> bool:
    """Whether the pre-training run in `folder` trained its knowledge module: a loss of `KNOWLEDGE_LOSSES` in its
    `train_history.json` (a folder without one is taken as trained)."""
    history = folder / "train_history.json"
    if not history.is_file():
        return True
    records = json.loads(history.read_text())
    return any(key in record for record in records for key in KNOWLEDGE_LOSSES)


def representations(args, folder: str, graph: KnowledgeGraph, hidden_pairs: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"E0": E^(0)} and, for a pre-trained model with a knowledge module, {"EKM": E^KM over the whole graph,
    "EKM_hidden": E^KM without the probed pairs' edges}."""
    pretrained = (Path(folder) / "entity_memory.safetensors").is_file()  # an examples/pretrain.py output
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = (JaketModel.from_pretrained(folder) if pretrained else JaketModel.from_backbone(folder)).eval()
    memory = EntityContextMemory.from_descriptions(model, tokenizer, graph, progress_bar=True)
    features = {"E0": memory.entity_embeddings.clone()}
    if pretrained and model.config.km_num_layers:
        features["EKM"] = knowledge_outputs(model, memory, graph, args.fanouts, args.seed)
        features["EKM_hidden"] = knowledge_outputs(model, memory, graph, args.fanouts, args.seed, hidden_pairs)
    return features


def train_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float, max_iter: int):
    """For each of `x`'s draws (`[draws, n, features]`, labels `y` `[draws, n]`) the (W, b) that minimise mean
    cross-entropy + ||W||^2 / (2 C n) (scikit-learn's objective), from zeros, by one L-BFGS over all draws at once: the
    draws share no parameter, so their sum is minimised where each one is."""
    draws, n, _ = x.shape
    weight = torch.zeros(draws, x.shape[2], num_classes, requires_grad=True)
    bias = torch.zeros(draws, 1, num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = torch.baddbmm(bias, x, weight)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / n
        loss = loss + weight.square().sum() / (2 * c * n)
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


@torch.no_grad()
def fit_probes(x: dict, y: dict, subsets: torch.Tensor, num_classes: int, l2_grid, max_iter: int = 200):
    """A multinomial logistic-regression probe for each draw of training rows (`subsets`, `[draws, n]`), on features
    standardised by those rows, its C from `l2_grid` chosen by validation accuracy (the smaller C on a tie). Returns
    (test correctness `[draws, test items]`, test accuracy per draw, chosen C per draw)."""
    rows = x["train"][subsets]
    mean, std = rows.mean(1, keepdim=True), rows.std(1, unbiased=False, keepdim=True).clamp(min=1e-6)
    best_accuracy = torch.full((len(subsets),), -1.0)
    best_correct = torch.zeros(len(subsets), len(y["test"]), dtype=torch.bool)
    chosen = torch.zeros(len(subsets))
    for c in sorted(l2_grid):
        with torch.enable_grad():
            weight, bias = train_logistic((rows - mean) / std, y["train"][subsets], num_classes, c, max_iter)
        weight = weight / std.transpose(1, 2)  # the standardisation folded into the weights: x W' + b'
        bias = bias - mean @ weight
        accuracy = ((x["validation"] @ weight + bias).argmax(-1) == y["validation"]).float().mean(1)
        better = accuracy > best_accuracy
        best_accuracy = torch.where(better, accuracy, best_accuracy)
        correct = (x["test"] @ weight + bias).argmax(-1) == y["test"]
        best_correct[better] = correct[better]
        chosen[better] = c
    return best_correct, best_correct.float().mean(1), chosen


def draws(num_train: int, percent: int, count: int, seed: int) -> torch.Tensor:
    """`[draws, rows]`: every training row at 100% (one draw), else `count` seeded subsets of `percent`%."""
    if percent == 100:
        return torch.arange(num_train).unsqueeze(0)
    size = max(1, round(percent / 100 * num_train))
    generator = torch.Generator().manual_seed(seed * 1_000_003 + percent)
    return torch.stack([torch.randperm(num_train, generator=generator)[:size] for _ in range(count)])


def interval(differences: torch.Tensor, correct_a, correct_b, resamples: int = 1000, seed: int = 0):
    """(mean, low, high) of a paired difference: mean ± 1.96 standard errors over the draws, or, for one draw, the
    2.5th and 97.5th percentiles of its test items (`correct_a` - `correct_b`) resampled with replacement."""
    mean = differences.mean().item()
    if len(differences) > 1:
        half = Z_95 * differences.std().item() / math.sqrt(len(differences))
        return mean, mean - half, mean + half
    items = correct_a.float() - correct_b.float()
    picks = torch.randint(len(items), (resamples, len(items)), generator=torch.Generator().manual_seed(seed))
    boot = items[picks].mean(1).sort().values
    return mean, boot[int(0.025 * resamples)].item(), boot[int(0.975 * resamples) - 1].item()


def probe_inputs(table: torch.Tensor, rows: torch.Tensor, pair: bool) -> torch.Tensor:
    """The rows' representations; for pairs (`[n, 2]` rows), `[h, t, h * t]`."""
    if not pair:
        return table[rows]
    heads, tails = table[rows[:, 0]], table[rows[:, 1]]
    return torch.cat([heads, tails, heads * tails], dim=1)


def probe_task(args, features: dict, rows: dict, labels: dict, num_classes: int, pair: bool) -> dict:
    """Each (model, representation)'s test accuracy per fraction (mean over draws), and the paired differences of
    every two models' same representation."""
    results, per_draw = {}, {}
    for name, tables in features.items():
        for kind, table in tables.items():
            x = {split: probe_inputs(table, rows[split], pair) for split in SPLITS}
            for percent in args.fractions:
                subsets = draws(len(labels["train"]), percent, args.draws, args.seed)
                correct, accuracies, chosen = fit_probes(x, labels, subsets, num_classes, args.l2_grid)
                per_draw[(name, kind, percent)] = (correct, accuracies)
                mean, count = accuracies.mean().item(), len(accuracies)
                results.setdefault(f"{name}/{kind}", {})[f"{percent}%"] = {
                    "accuracy": mean,
                    "standard_error": (accuracies.std().item() / math.sqrt(count)) if count > 1 else None,
                    "draws": count,
                    "chosen_l2": chosen.tolist(),
                }
                logger.info(f"{name}/{kind} {percent}%: {mean:.4f} over {count} draws")
    differences = {}
    names = list(features)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for kind in features[a].keys() & features[b].keys():
                for percent in args.fractions:
                    (correct_a, first), (correct_b, second) = (
                        per_draw[(a, kind, percent)],
                        per_draw[(b, kind, percent)],
                    )
                    mean, low, high = interval(first - second, correct_a[0], correct_b[0], args.bootstrap, args.seed)
                    differences.setdefault(f"{a} - {b}/{kind}", {})[f"{percent}%"] = [mean, low, high]
    return {"accuracy": results, "paired_differences": differences}


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    graph = heldout_graph(args.data_dir, args.dataset_cache_dir)
    categories = category_labels(args, graph)
    edges = relation_edges(graph, args.seed)
    probed = torch.cat([ends for ends, _ in edges.values()])
    hidden_pairs = torch.unique(probed.min(1).values * graph.num_entities + probed.max(1).values)
    features = {name: representations(args, folder, graph, hidden_pairs) for name, folder in args.models.items()}
    category_features = {n: {k: v for k, v in t.items() if k != "EKM_hidden"} for n, t in features.items()}
    relation_features = {
        n: {("EKM" if k == "EKM_hidden" else k): v for k, v in t.items() if k != "EKM"} for n, t in features.items()
    }
    results = {
        # E^KM of these is that of the module they were saved with, never trained (the MLM control's): graph
        # aggregation alone, the control for what pre-training the module adds
        "untrained_knowledge_module": [
            name
            for name, folder in args.models.items()
            if "EKM" in features[name] and not knowledge_module_trained(Path(folder))
        ],
        "entities": {split: len(categories[split][0]) for split in SPLITS},
        "relation_edges": {split: len(edges[split][0]) for split in SPLITS},
        "entity_category": probe_task(
            args,
            category_features,
            {s: categories[s][0] for s in SPLITS},
            {s: categories[s][1] for s in SPLITS},
            len(graph.category_names),
            pair=False,
        ),
        "relation_type": probe_task(
            args,
            relation_features,
            {s: edges[s][0] for s in SPLITS},
            {s: edges[s][1] for s in SPLITS},
            graph.num_relations,
            pair=True,
        ),
        "settings": {k: v for k, v in vars(args).items() if k != "model"},
    }
    print(json.dumps(results, indent=1))
    if args.output_file:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
