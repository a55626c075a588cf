"""Evaluate a pre-trained JAKET on the held-out data, as `pretrain.py` does at the end of its run:
`python examples/evaluate_pretraining.py jaket-base [pretrain.py's data flags]`.

Give the data flags the run was given (`--dataset`, `--data_dir`, `--max_entities`, `--max_train_samples`,
`--heldout_text_fraction`, `--heldout_seed`, ...): they rebuild the same held-out sentences and graph, and a graph
that differs from the saved one is refused; and its `--losses`: a run of L_t alone (the MLM control) merged nothing,
so its held-out text is read without merges too. The figures print as JSON and go to `<model>/eval_results.json`
(or `--output_file`).
"""

import argparse
import json
import logging
from pathlib import Path

import torch
from transformers import AutoTokenizer

from jaket_training.data import load_run_data, surface_forms
from jaket_training.evaluation import KNOWLEDGE_ABLATIONS, build_evaluation
from jaket_training.pretraining import pretraining_collator
from jaket_training.pretraining_args import parse_args
from modeling_jaket import EntityContextMemory, JaketForPreTraining
from modeling_jaket.collator import confusable_entities


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_name_or_path", help="an output folder of examples/pretrain.py")
    parser.add_argument("--output_file", default=None, help="default: <model_name_or_path>/eval_results.json")
    parser.add_argument(
        "--knowledge_ablation",
        default=None,
        choices=KNOWLEDGE_ABLATIONS,
        help="what the merge adds to the held-out text (default: as the run's steps, given its --losses): E^KM "
        "(merged), nothing (zeroed), or another "
        "mention's E^KM of the batch (shuffled): masked tokens, masked entities and WSD read it, the figures "
        "outside the graph do not",
    )
    own, rest = parser.parse_known_args(argv)
    args = parse_args(rest)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    folder = Path(own.model_name_or_path)
    data, graph = load_run_data(args, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = JaketForPreTraining.from_pretrained(folder)
    memory = EntityContextMemory.from_pretrained(folder)
    forms = surface_forms(graph, data.text)
    build_inputs = pretraining_collator(args, tokenizer, graph, confusable_entities(forms))
    evaluation = build_evaluation(
        args, data._replace(graph=graph), tokenizer, build_inputs, forms, own.knowledge_ablation
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = evaluation(model.to(device), memory.to(device), device)
    output = Path(own.output_file) if own.output_file else folder / "eval_results.json"
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
