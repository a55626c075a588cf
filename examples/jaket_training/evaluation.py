"""Evaluating pre-training on data it never trained on: a held-out slice of the text, and the knowledge graph's
entities outside the pre-training graph.

- masked-token accuracy and masked-entity hits@1 among a step's kinds of candidates (true entity, neighbours,
  entities sharing a surface form, random), on the held-out sentences, drawn with the same settings for every run
  (`HELDOUT_TASK`, with a fixed seed, whatever the run trained with), beside a string-match linker's
  (the candidates one of whose known surface forms is the mention's text or lemma, one of them at random; any
  candidate at random where none matches);
- word-sense disambiguation as entity linking: each removed mention whose lemma has two or more WordNet senses,
  linked by the masked-entity head among all senses of its lemma (every sense encoded by LM1 from its description),
  beside WordNet's first-listed (most frequent) sense; and, where the training text's sense counts are given, the
  head's probabilities times the prior p(sense | lemma) from those counts (add-one smoothed), beside that prior
  alone: an entity linker's usual alias prior, from the training text only;
- entity-category accuracy on entities outside the pre-training graph, and relation-type accuracy on edges between
  them, every edge between a held pair hidden in both directions, each beside its majority class's.

Each figure's floor is in the results beside it: `heldout_masked_entity_string_match_hits_at_1`,
`wsd_most_frequent_sense_hits_at_1`, `outside_category_majority_accuracy`, `outside_relation_type_majority_accuracy`.
"""

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.logging import get_logger
from tqdm.auto import tqdm

from datasets_scripts.wordnet import find_wordnet, read_sense_index
from modeling_jaket import EntityContextMemory, KnowledgeGraph
from modeling_jaket.collator import hold_out_pairs
from modeling_jaket.graph import DEFAULT_FANOUTS
from modeling_jaket.linking import candidate_embeddings
from modeling_jaket.tokenization_jaket import mention_coverage
from tokenization import (
    DataCollatorForJaketPreTraining,
    DataCollatorWithMentions,
    encode_descriptions,
    tokenize_with_mentions,
)

from .curve import record_evaluation
from .data import default_data_dir, normalize_form, outside_graph
from .pretraining import to_model_inputs

logger = get_logger(__name__)


# The held-out task of every run, drawn with the embedded default's settings: 15% of the tokens masked and 15% of the
# mentions removed (the paper's shares), each removed mention among 16 candidates (itself, 5 neighbours, 5 sharing a
# surface form, 5 random), 16 roots and 16 held pairs, the paper's fanouts: every draw follows from these, so runs
# trained with other shares, negatives or sampling meet the same tokens, mentions and candidates.
HELDOUT_TASK = {
    "mlm_probability": 0.15,
    "entity_mask_probability": 0.15,
    "num_neighbour_negatives": 5,
    "num_hard_negatives": 5,
    "num_random_negatives": 5,
    "num_roots": 16,
    "num_relation_pairs": 16,
    "fanouts": DEFAULT_FANOUTS,
}


def lemma_key(lemma: str) -> str:
    """A lemma as WordNet's sense index keys it: lower case, words joined by underscores."""
    return lemma.lower().replace(" ", "_")


def _pos(synset_id: str) -> str:
    """WordNet's index files list adjective satellites ("-s") under "a"."""
    pos = synset_id.rsplit("-", 1)[1]
    return "a" if pos == "s" else pos


@dataclass
class HeldoutSentences:
    """The held-out sentences, tokenized, masked and batched once (ids only), with each removed mention's senses."""

    batches: list = field(default_factory=list)  # (step inputs, [batch, removed] index into `senses` or -1)
    senses: list = field(default_factory=list)  # per removed ambiguous mention: (sense synset ids, true synset id)
    sense_log_priors: list = field(default_factory=list)  # per ambiguous mention: log p(sense | lemma), or None
    string_match_hits: float = 0.0  # the string-match linker's expected hits over the removed mentions


def string_match_hits(mention_forms: set[str], candidates: list[int], forms: list[set[str]]) -> float:
    """A string-match linker's chance of picking candidate 0 (the true entity): one of the candidates that has one of
    `mention_forms` among its surface forms, at random; any candidate at random where none has."""
    matches = [bool(forms[c] & mention_forms) for c in candidates]
    return matches[0] / sum(matches) if any(matches) else 1 / len(candidates)


def prepare_heldout_sentences(
    text,
    tokenizer,
    graph: KnowledgeGraph,
    build_inputs: DataCollatorForJaketPreTraining,
    sense_index=None,
    max_length=128,
    batch_size=32,
    seed=0,
    forms: list[set[str]] | None = None,
    sense_counts=None,
) -> HeldoutSentences:
    """Tokenize the held-out rows with their mentions of `graph`'s entities, and draw once, with `seed`, what a
    training step would mask. With `sense_index` ({(lemma, pos): synset ids}) and mentions carrying a `lemma`, the
    removed mentions whose lemma has two or more senses are kept for disambiguation. `forms` (each entity's surface
    forms, `data.surface_forms`; by default its name) are what the string-match floor matches mentions against.
    `sense_counts` ({(lemma, synset id): mentions in the training text}) gives each ambiguous mention its senses'
    prior."""
    forms = forms if forms is not None else [{normalize_form(name)} for name in graph.entity_names]
    records, texts, spans = [], [], []
    for row in text:
        linked = []
        for mention in row["mentions"]:
            if mention["entity"] in graph.entity_index:
                linked.append((mention["start"], mention["end"], len(records)))
                surface = {normalize_form(row["text"][mention["start"] : mention["end"]])}
                surface |= {normalize_form(mention["lemma"])} if mention.get("lemma") else set()
                records.append((mention["entity"], mention.get("lemma"), surface))
        texts.append(row["text"])
        spans.append(linked)
    encoding = tokenize_with_mentions(tokenizer, texts, spans, max_length=max_length)
    entity_of_record = torch.tensor([graph.entity_index[record[0]] for record in records] + [-1])
    collate = DataCollatorWithMentions(tokenizer.pad_token_id)
    keys = ("input_ids", "attention_mask", "mention_entity_ids", "mention_starts", "mention_ends")
    prepared = HeldoutSentences()
    generator = torch.Generator().manual_seed(seed)
    for begin in tqdm(range(0, len(texts), batch_size), desc="preparing held-out sentences", leave=False):
        batch = collate([{k: encoding[k][i] for k in keys} for i in range(begin, min(begin + batch_size, len(texts)))])
        record_ids = batch["mention_entity_ids"]
        batch["mention_entity_ids"] = entity_of_record[record_ids]  # -1 pads map to the appended -1
        inputs = build_inputs.build(batch, generator)
        # which mention each removed one was: the one of its sentence starting at the same token
        removed = inputs["masked_entity_starts"]
        same = (removed.unsqueeze(-1) == batch["mention_starts"].unsqueeze(1)) & (removed >= 0).unsqueeze(-1)
        removed_records = torch.where(removed >= 0, torch.gather(record_ids, 1, same.int().argmax(-1)), -1)
        sense_rows = torch.full(removed.shape, -1)
        for position in (removed_records >= 0).nonzero().tolist():
            entity, lemma, surface = records[int(removed_records[tuple(position)])]
            candidates = inputs["masked_entity_candidate_ids"][tuple(position)].tolist()
            prepared.string_match_hits += string_match_hits(surface, candidates, forms)
            if sense_index is None or lemma is None:
                continue
            senses = sense_index.get((lemma_key(lemma), _pos(entity)), [])
            if len(senses) >= 2 and entity in senses:
                sense_rows[tuple(position)] = len(prepared.senses)
                prepared.senses.append((senses, entity))
                prepared.sense_log_priors.append(
                    None
                    if sense_counts is None
                    else sense_log_prior([sense_counts.get((lemma_key(lemma), s), 0) for s in senses])
                )
        prepared.batches.append((inputs, sense_rows))
    return prepared


def sense_log_prior(counts: list[int]) -> torch.Tensor:
    """log p(sense | lemma) from the senses' counts, add-one smoothed: a sense never seen keeps a little mass."""
    counts = torch.tensor(counts, dtype=torch.float) + 1.0
    return (counts / counts.sum()).log()


@dataclass
class OutsideGraph:
    """Entities outside the pre-training graph: a seeded sample of them with their neighbourhood, descriptions
    tokenized, and held pairs whose every edge is hidden."""

    graph_inputs: dict  # the knowledge module's (`Subgraph.inputs`), the held pairs' edges hidden
    num_seeds: int
    categories: torch.Tensor
    relation_head_index: torch.Tensor
    relation_tail_index: torch.Tensor
    relation_labels: torch.Tensor
    descriptions: dict


def prepare_outside_graph(
    graph: KnowledgeGraph,
    tokenizer,
    num_entities=1000,
    fanouts=DEFAULT_FANOUTS,
    num_pairs=1000,
    description_length=64,
    seed=0,
) -> OutsideGraph:
    generator = torch.Generator().manual_seed(seed)
    seeds = torch.randperm(graph.num_entities, generator=generator)[:num_entities]
    subgraph = graph.sample_subgraph(seeds, fanouts, generator)
    held, visible = hold_out_pairs(subgraph, num_pairs, generator)
    ids = subgraph.entity_ids.tolist()
    descriptions = encode_descriptions(
        tokenizer,
        [graph.entity_names[i] for i in ids],
        [graph.entity_descriptions[i] for i in ids],
        description_length,
    )
    return OutsideGraph(
        subgraph.inputs(visible),
        subgraph.num_seeds,
        graph.entity_categories[subgraph.entity_ids[: subgraph.num_seeds]],
        subgraph.edge_index[1, held],
        subgraph.edge_index[0, held],
        subgraph.edge_type[held],
        descriptions,
    )


@dataclass
class PretrainingEvaluation:
    """Everything `evaluate` needs, prepared once: the held-out sentences and, when the KG has them, the entities
    outside the pre-training graph. `synset_descriptions` ({synset id: (name, description)}) describes every sense
    a removed mention may be linked to, which LM1 encodes at each evaluation."""

    sentences: HeldoutSentences
    outside: OutsideGraph | None = None
    synset_descriptions: dict | None = None
    tokenizer: object = None
    relation_embeddings: bool = False
    batch_size: int = 64
    knowledge_ablation: str = "merged"

    @torch.no_grad()
    def __call__(self, model, memory: EntityContextMemory, device) -> dict:
        was_training = model.training
        model.eval()
        try:
            results = self._sentences(model, memory, device)
            if self.outside is not None:
                results.update(self._outside(model, memory, device))
        finally:
            model.train(was_training)
        return results

    def _sense_table(self, model):
        """Embeddings of every sense that a removed mention may be linked to, each encoded by LM1 from its
        description, whether the memory holds it or not: every sense of a word from one source."""
        synsets = sorted({s for senses, _ in self.sentences.senses for s in senses})
        candidates = [self.synset_descriptions[s] for s in synsets]
        table = candidate_embeddings(model, self.tokenizer, candidates, batch_size=self.batch_size)
        return table, {s: i for i, s in enumerate(synsets)}

    def _sentences(self, model, memory, device):
        senses = self.sentences.senses
        if senses:
            table, row = self._sense_table(model)
        tokens = tokens_right = in_mentions = in_mentions_right = entities = entities_right = 0
        generator = torch.Generator().manual_seed(0)  # the `shuffled` ablation's draws
        linked_right = first_sense_right = with_prior_right = prior_right = 0
        for inputs, sense_rows in tqdm(self.sentences.batches, desc="held-out sentences", leave=False):
            model_inputs = to_model_inputs(inputs, memory, device, self.relation_embeddings)
            inside = merged_positions(model_inputs)  # before the ablation: the same tokens for each
            model_inputs = ablate_knowledge(model_inputs, self.knowledge_ablation, generator)
            num_candidates = model_inputs["masked_entity_candidate_embeddings"].shape[2]
            width = max([len(senses[i][0]) for i in sense_rows[sense_rows >= 0].tolist()], default=0)
            if width:
                # the senses ride along as extra candidates, padded with zeros and scored -inf below
                extra = torch.zeros(*sense_rows.shape, width, table.shape[1])
                for position in (sense_rows >= 0).nonzero().tolist():
                    synsets = senses[int(sense_rows[tuple(position)])][0]
                    extra[tuple(position)][: len(synsets)] = table[[row[s] for s in synsets]]
                model_inputs["masked_entity_candidate_embeddings"] = torch.cat(
                    [model_inputs["masked_entity_candidate_embeddings"], extra.to(device)], dim=2
                )
            output = model(**model_inputs)
            labels = model_inputs["labels"]
            predicted = output.logits.argmax(-1)
            if predicted.dim() == labels.dim():  # every position scored (no config.sparse_prediction)
                predicted = predicted[labels != -100]
            right, inside = predicted == labels[labels != -100], inside[labels != -100]
            tokens += int(right.numel())
            tokens_right += int(right.sum())
            in_mentions += int(inside.sum())
            in_mentions_right += int(right[inside].sum())
            scored = model_inputs["masked_entity_labels"] != -100
            logits = output.masked_entity_logits.float().cpu()
            entities += int(scored.sum())
            entities_right += int((logits[..., :num_candidates].argmax(-1) == 0)[scored.cpu()].sum())
            for position in (sense_rows >= 0).nonzero().tolist():
                synsets, true = senses[int(sense_rows[tuple(position)])]
                scores = logits[tuple(position)][num_candidates : num_candidates + len(synsets)]
                linked_right += synsets[int(scores.argmax())] == true
                first_sense_right += synsets[0] == true
                log_prior = self.sentences.sense_log_priors[int(sense_rows[tuple(position)])]
                if log_prior is not None:  # argmax keeps the first on a tie: WordNet's order
                    with_prior_right += synsets[int((scores.log_softmax(-1) + log_prior).argmax())] == true
                    prior_right += synsets[int(log_prior.argmax())] == true
        results = {
            "heldout_masked_tokens": tokens,
            "heldout_masked_token_accuracy": tokens_right / max(1, tokens),
            # a masked token inside a merged mention receives its entity's E^KM: a possible shortcut (issue 35)
            "heldout_masked_tokens_in_mentions": in_mentions,
            "heldout_masked_token_accuracy_in_mentions": in_mentions_right / max(1, in_mentions),
            "heldout_masked_tokens_outside_mentions": tokens - in_mentions,
            "heldout_masked_token_accuracy_outside_mentions": (tokens_right - in_mentions_right)
            / max(1, tokens - in_mentions),
            "heldout_masked_entities": entities,
            "heldout_masked_entity_hits_at_1": entities_right / max(1, entities),
            "heldout_masked_entity_string_match_hits_at_1": self.sentences.string_match_hits / max(1, entities),
        }
        if senses:
            results.update(
                wsd_mentions=len(senses),
                wsd_hits_at_1=linked_right / len(senses),
                wsd_most_frequent_sense_hits_at_1=first_sense_right / len(senses),
            )
            if self.sentences.sense_log_priors[0] is not None:
                results.update(
                    wsd_with_prior_hits_at_1=with_prior_right / len(senses),
                    wsd_prior_hits_at_1=prior_right / len(senses),
                )
        return results

    def _outside(self, model, memory, device):
        outside = self.outside
        initial = EntityContextMemory.compute(model, outside.descriptions, self.batch_size)
        relations = memory.relation_embeddings.float()
        output = model(
            **{key: value.to(device) for key, value in outside.graph_inputs.items()},
            entity_init_embeddings=initial.to(device),
            relation_embeddings=relations if self.relation_embeddings else torch.zeros_like(relations),
            relation_head_index=outside.relation_head_index.to(device),
            relation_tail_index=outside.relation_tail_index.to(device),
        )
        categories = output.entity_category_logits[: outside.num_seeds].argmax(-1).cpu()
        labelled = outside.categories >= 0
        relations_right = output.relation_type_logits.argmax(-1).cpu() == outside.relation_labels
        return {
            "outside_entities": int(labelled.sum()),
            "outside_category_accuracy": float((categories == outside.categories)[labelled].float().mean()),
            "outside_category_majority_accuracy": majority_share(outside.categories[labelled]),
            "outside_held_edges": int(outside.relation_labels.numel()),
            "outside_relation_type_accuracy": float(relations_right.float().mean()),
            "outside_relation_type_majority_accuracy": majority_share(outside.relation_labels),
        }


KNOWLEDGE_ABLATIONS = ("merged", "zeroed", "shuffled")
MERGE_KEYS = ("mention_entity_ids", "mention_starts", "mention_ends")


def default_ablation(losses) -> str:
    """How a run's held-out text is read by default: as its steps read theirs, merged, unless the run trained L_t
    alone (the MLM control), whose steps merge nothing."""
    return "zeroed" if set(losses) == {"masked_lm"} else "merged"


def merged_positions(inputs: dict) -> torch.Tensor:
    """[batch, length]: the tokens of a mention whose E^KM the merge adds (Eq. 3)."""
    return mention_coverage(inputs["mention_starts"], inputs["mention_ends"], inputs["input_ids"].shape[1]).any(dim=1)


def ablate_knowledge(inputs: dict, ablation: str, generator: torch.Generator) -> dict:
    """What the merge (Eq. 3) adds to the text: E^KM as pre-trained (`merged`), nothing (`zeroed`: no mention is
    merged; the merge LayerNorm still runs), or at each merged mention the E^KM of another merged mention of the
    batch (`shuffled`, a seeded permutation). The removed mentions (L_e) and the knowledge module's own inputs stay."""
    if ablation not in KNOWLEDGE_ABLATIONS:
        raise ValueError(f"knowledge ablation must be one of {KNOWLEDGE_ABLATIONS}, got {ablation!r}")
    ids = inputs["mention_entity_ids"]
    merged = ids >= 0
    if ablation == "zeroed":
        return {**inputs, **{key: inputs[key].masked_fill(merged, -1) for key in MERGE_KEYS}}
    if ablation == "shuffled":
        values = ids[merged]
        order = torch.randperm(len(values), generator=generator).to(values.device)
        return {**inputs, "mention_entity_ids": ids.masked_scatter(merged, values[order])}
    return inputs


def majority_share(labels: torch.Tensor) -> float:
    """The accuracy of always answering the most frequent of `labels`: a classifier's floor."""
    return float(torch.bincount(labels).max() / labels.numel()) if labels.numel() else 0.0


def build_evaluation(args, data, tokenizer, build_inputs, forms, ablation=None) -> PretrainingEvaluation:
    """The held-out evaluation: the held-out sentences, the KG's entities outside the pre-training graph and, for
    WordNet, every word's senses (for disambiguation); `ablation` says what the merge adds (`ablate_knowledge`). By
    default the held-out text is read as the run's steps read theirs: merged, but by a run of L_t alone (the MLM
    control), which merges nothing, so its untrained knowledge module would add noise to the mentions. The sentences
    are drawn by the run's collator (`build_inputs`: its graph and merging) with `HELDOUT_TASK`'s settings;
    `build_inputs` must hold the confusable entities."""
    ablation = ablation or default_ablation(args.losses)
    sense_index = synset_descriptions = sense_counts = None
    if args.dataset == "wordnet_semcor":
        sense_index = read_sense_index(find_wordnet(args.data_dir or default_data_dir()))
        sense_counts = Counter(
            (lemma_key(m["lemma"]), m["entity"])
            for mentions in data.text["mentions"][:]
            for m in mentions
            if m.get("lemma")
        )
        entities = data.kg["entities"]
        synset_descriptions = dict(zip(entities["id"][:], zip(entities["name"][:], entities["description"][:])))
    sentences = prepare_heldout_sentences(
        data.heldout_text,
        tokenizer,
        data.graph,
        dataclasses.replace(build_inputs, **HELDOUT_TASK),
        sense_index,
        args.max_seq_length,
        args.per_device_train_batch_size,
        args.heldout_seed,
        forms,
        sense_counts,
    )
    outside = outside_graph(data.kg) if data.kg is not None else None
    if outside is not None:
        outside = prepare_outside_graph(
            outside,
            tokenizer,
            args.eval_outside_entities,
            tuple(args.fanouts),
            args.eval_outside_entities,
            args.description_length,
            args.heldout_seed,
        )
    return PretrainingEvaluation(
        sentences, outside, synset_descriptions, tokenizer, args.relation_embeddings, args.memory_batch_size, ablation
    )


def run_evaluation(accelerator, evaluation, model, memory, output_dir: Path, step: int, refreshes: int, report_to):
    """Run the held-out evaluation on the main process (on every process, the same, when the model is sharded
    across them); log it, write `<output_dir>/eval_results.json` (with the step and the memory refreshes done so
    far) and add it to the history and its curve."""
    accelerator.wait_for_everyone()
    if evaluation is not None:
        with accelerator.autocast():
            figures = evaluation(accelerator.unwrap_model(model), memory, accelerator.device)
        results = {"step": step, "memory_refreshes": refreshes, **figures}
    if evaluation is not None and accelerator.is_main_process:
        logger.info(f"step {step}: held-out evaluation " + json.dumps(results))
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
        record_evaluation(output_dir, results)
        if report_to:
            accelerator.log({f"eval/{k}": v for k, v in figures.items()}, step=step)
    accelerator.wait_for_everyone()
