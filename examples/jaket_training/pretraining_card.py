"""The model card of a pre-training run, its figures from the held-out evaluation (`eval_results.json`)."""

import json
from pathlib import Path

from .model_card import Result, write_model_card

# What the model card reports of eval_results.json: key -> (task type, task, metric). The Hub's model-index groups
# results by task type and dataset under one task name, so the metric names tell the results of one type apart.
CARD_RESULTS = {
    "heldout_masked_token_accuracy": ("fill-mask", "Masked tokens", "masked-token accuracy"),
    "heldout_masked_entity_hits_at_1": ("entity-linking", "Masked entities", "hits@1 among the training candidates"),
    "heldout_masked_entity_string_match_hits_at_1": (
        "entity-linking",
        "Masked entities, string-match baseline",
        "hits@1 of string matching among the training candidates",
    ),
    "wsd_hits_at_1": ("entity-linking", "Word-sense disambiguation", "hits@1 among the senses of the lemma"),
    "wsd_most_frequent_sense_hits_at_1": (
        "entity-linking",
        "Word-sense disambiguation, first-sense baseline",
        "hits@1 of WordNet's first sense",
    ),
    "wsd_with_prior_hits_at_1": (
        "entity-linking",
        "Word-sense disambiguation with the training text's sense prior",
        "hits@1 among the senses of the lemma, times the training text's prior",
    ),
    "wsd_prior_hits_at_1": (
        "entity-linking",
        "Word-sense disambiguation, the training text's sense prior alone",
        "hits@1 of the most frequent sense in the training text",
    ),
    "outside_category_accuracy": ("entity-classification", "Entity category, entities outside the graph", "accuracy"),
    "outside_category_majority_accuracy": (
        "entity-classification",
        "Entity category, majority-class baseline",
        "accuracy of the majority class",
    ),
    "outside_relation_type_accuracy": ("relation-classification", "Relation type, held edges", "accuracy"),
    "outside_relation_type_majority_accuracy": (
        "relation-classification",
        "Relation type, majority-class baseline",
        "accuracy of the majority class",
    ),
}


def write_pretraining_card(args, output_dir: Path, backbone: str, command: list[str]):
    """The model card of a pre-training run, its figures from `eval_results.json` (the held-out evaluation)."""
    evaluation = output_dir / "eval_results.json"
    measured = json.loads(evaluation.read_text()) if evaluation.is_file() else {}
    results = [
        Result(task_type, task, args.dataset, f"{args.dataset}, held out from pre-training", metric, measured[key])
        for key, (task_type, task, metric) in CARD_RESULTS.items()
        if key in measured
    ]
    name = args.hub_model_id or output_dir.name
    write_model_card(
        output_dir,
        name,
        f"JAKET pre-trained for {measured.get('step', args.max_train_steps)} steps on `{args.dataset}` "
        f"({args.max_entities or 'all'} entities): LM1, the knowledge module, LM2 and the four pre-training heads, "
        "with its entity context memory (`entity_memory.safetensors`) and its knowledge graph (`graph/`).",
        backbone,
        [args.dataset],
        results,
        command,
        usage_code(name),
    )


def usage_code(name: str) -> str:
    """The card's usage: transformers alone runs it, with the code saved in the folder (`trust_remote_code`)."""
    return (
        "from transformers import AutoModelForPreTraining, AutoProcessor, pipeline\n\n"
        f'linker = pipeline("entity-linking", model="{name}", trust_remote_code=True)\n'
        'print(linker("The dog chased a cat up the tree.", top_k=3))  # each mention, its entities ranked\n'
        f'classifier = pipeline("entity-classification", model="{name}", trust_remote_code=True)\n'
        "print(classifier(0, top_k=3))  # an entity of the graph (an id, a key or a name of one) -> its category\n\n"
        f'processor = AutoProcessor.from_pretrained("{name}", trust_remote_code=True)\n'
        f'model = AutoModelForPreTraining.from_pretrained("{name}", trust_remote_code=True)\n'
        'linked = linker("The dog chased a cat.")  # the mentions found by name, each with its best entity first\n'
        'spans, entities = [(m["start"], m["end"]) for m in linked], [m["entities"][0]["id"] for m in linked]\n'
        'inputs = processor("The dog chased a cat.", entity_spans=spans, entities=entities)\n'
        "output = model(**inputs)  # output.entity_embeddings: E^KM of the subgraph around the mentions"
    )
