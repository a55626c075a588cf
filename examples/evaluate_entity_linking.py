"""Evaluate the `entity-linking` pipeline of a pre-trained JAKET on its held-out sentences:
`python examples/evaluate_entity_linking.py jaket-base [pretrain.py's data flags]`.

The pipeline reads raw text: it finds the graph's names and aliases (`MentionFinder`) and ranks each mention's
candidates with the masked-entity head. Against the held-out sentences' gold mentions of graph entities it reports
how many gold mentions it finds (the same character span), how often its best entity is the gold one where the gold
entity is among the candidates, beside three floors on those same mentions (the finder's first candidate; the
candidate mentioned most often in the pre-training text, its prior; chance: one over the number of candidates),
and end to end, correct links over gold mentions (recall) and over
mentions found (precision). Give the data flags the run was given (as for `evaluate_pretraining.py`). The figures
print as JSON and go to `<model>/entity_linking_results.json` (or `--output_file`).
"""

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

import torch
from transformers import pipeline

from jaket_training.data import load_run_data
from jaket_training.pretraining_args import parse_args
from modeling_jaket import KnowledgeGraph, MentionFinder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_name_or_path", help="an output folder of examples/pretrain.py")
    parser.add_argument(
        "--output_file", default=None, help="default: <model_name_or_path>/entity_linking_results.json"
    )
    parser.add_argument("--batch_size", type=int, default=32)
    own, rest = parser.parse_known_args(argv)
    args = parse_args(rest)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    folder = Path(own.model_name_or_path)
    data, graph = load_run_data(args, folder)
    device = 0 if torch.cuda.is_available() else -1
    linker = pipeline("entity-linking", model=str(folder), trust_remote_code=True, device=device)
    texts = list(data.heldout_text["text"])
    linked = linker(texts, batch_size=own.batch_size, top_k=10**6)  # every candidate, ranked
    mentions_in_training = Counter(m["entity"] for row in data.text["mentions"] for m in row)
    prior = [mentions_in_training[key] for key in graph.entity_ids]
    results = score(texts, data.heldout_text["mentions"], linked, graph, prior)
    output = Path(own.output_file) if own.output_file else folder / "entity_linking_results.json"
    output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def score(texts, gold_mentions, linked, graph: KnowledgeGraph, prior: list[int]) -> dict:
    """The figures of the module docstring, from the pipeline's output `linked` for each text; `prior`: each
    entity's mentions in the pre-training text."""
    finder = MentionFinder(graph)
    counts = dict(gold=0, found=0, gold_among_candidates=0, head=0, first=0, prior=0, chance=0.0, predicted=0)
    for text, gold, predicted in zip(texts, gold_mentions, linked):
        counts["predicted"] += len(predicted)
        by_span = {(m["start"], m["end"]): m["entities"] for m in predicted}
        for mention in gold:
            if mention["entity"] not in graph.entity_index:
                continue
            counts["gold"] += 1
            entities = by_span.get((mention["start"], mention["end"]))
            if entities is None:
                continue
            counts["found"] += 1
            ids = [entity["id"] for entity in entities]
            target = graph.entity_index[mention["entity"]]
            if target not in ids:
                continue
            counts["gold_among_candidates"] += 1
            counts["head"] += ids[0] == target
            candidates = finder.candidates(text[mention["start"] : mention["end"]])
            counts["first"] += candidates[0] == target
            counts["prior"] += max(candidates, key=lambda entity: prior[entity]) == target  # ties: the first
            counts["chance"] += 1 / len(ids)
    among = max(counts["gold_among_candidates"], 1)
    return {
        "texts": len(texts),
        "gold_mentions": counts["gold"],
        "mentions_found": counts["predicted"],
        "gold_mentions_found": counts["found"],
        "detection_recall": counts["found"] / max(counts["gold"], 1),
        "gold_among_candidates": counts["gold_among_candidates"],
        "linking_hits_at_1": counts["head"] / among,
        "linking_first_candidate_hits_at_1": counts["first"] / among,
        "linking_prior_hits_at_1": counts["prior"] / among,
        "linking_chance_hits_at_1": counts["chance"] / among,
        "end_to_end_recall": counts["head"] / max(counts["gold"], 1),
        "end_to_end_precision": counts["head"] / max(counts["predicted"], 1),
    }


if __name__ == "__main__":
    main()
