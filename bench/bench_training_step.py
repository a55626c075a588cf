"""Benchmarks 1 and 3: one JAKET pre-training step (forward + backward + AdamW) on the embedded default's data,
(1) with the entity context memory against computing every needed description embedding with LM1 inside the step,
as training without the memory must, and (3) against a plain MLM step of the same backbone on the same text batch:
transformers' BertForMaskedLM, and JAKET's own step without graph inputs.

    python -m bench.bench_training_step
"""

import argparse

import torch
from transformers import AutoModelForMaskedLM

from bench.common import median_seconds, pretraining_setup, report
from jaket_training.data import default_backbone
from jaket_training.pretraining import to_model_inputs
from modeling_jaket.memory import pad_batch


def on_the_fly_inputs(model, inputs, descriptions, pad_token_id):
    """The step's inputs with E^(0) of the subgraph and of the candidates, and R, computed by LM1 now (with grad)."""
    entity_descriptions, relation_descriptions = descriptions
    inputs = dict(inputs)
    candidates = inputs.pop("masked_entity_candidate_ids")
    needed, inverse = torch.unique(
        torch.cat([inputs["subgraph_entity_ids"], candidates.reshape(-1)]), return_inverse=True
    )

    def encode(texts, ids):
        input_ids, attention_mask = pad_batch([texts["input_ids"][i] for i in ids.tolist()], pad_token_id)
        starts = torch.tensor([texts["mention_starts"][i] for i in ids.tolist()])
        ends = torch.tensor([texts["mention_ends"][i] for i in ids.tolist()])
        return model.jaket.encode_descriptions(input_ids, attention_mask, starts, ends)

    embeddings = encode(entity_descriptions, needed)
    count = inputs["subgraph_entity_ids"].numel()
    inputs["entity_init_embeddings"] = embeddings[inverse[:count]]
    inputs["masked_entity_candidate_embeddings"] = embeddings[inverse[count:]].view(*candidates.shape, -1)
    inputs["relation_embeddings"] = encode(
        relation_descriptions, torch.arange(len(relation_descriptions["input_ids"]))
    )
    return {k: v for k, v in inputs.items() if v is not None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_entities", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, tokenizer, graph, memory, descriptions, batches = pretraining_setup(
        args.max_entities, batch_size=args.batch_size
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    mlm = AutoModelForMaskedLM.from_pretrained(default_backbone()).train()
    mlm_optimizer = torch.optim.AdamW(mlm.parameters(), lr=1e-5)
    position = {"i": 0}

    def next_batch():
        position["i"] = (position["i"] + 1) % len(batches)
        return batches[position["i"]]

    def step(build):
        output = model(**build(next_batch()))
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def text_only_step():  # the same model with no graph inputs: L_t alone, masked positions scored only
        batch = next_batch()
        output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def mlm_step():
        batch = next_batch()
        output = mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        output.loss.backward()
        mlm_optimizer.step()
        mlm_optimizer.zero_grad()

    with_memory = median_seconds(lambda: step(lambda b: to_model_inputs(b, memory, "cpu")), args.repeats * 3)
    on_the_fly = median_seconds(
        lambda: step(lambda b: on_the_fly_inputs(model, b, descriptions, tokenizer.pad_token_id)), args.repeats
    )
    plain = median_seconds(mlm_step, args.repeats * 3)
    text_only = median_seconds(text_only_step, args.repeats * 3)
    entities = sum(b["subgraph_entity_ids"].numel() for b in batches) / len(batches)
    report(
        "memory_vs_on_the_fly_step",
        batch_size=args.batch_size,
        mean_subgraph_entities=round(entities),
        step_seconds_with_memory=with_memory,
        step_seconds_on_the_fly=on_the_fly,
        speedup=on_the_fly / with_memory,
    )
    # transformers' BertForMaskedLM scores every position against the vocabulary; JAKET's head scores the masked
    # ones only, so the knowledge overhead proper is measured against JAKET's own text-only step.
    report(
        "jaket_vs_mlm_step",
        batch_size=args.batch_size,
        jaket_step_seconds=with_memory,
        bert_for_masked_lm_step_seconds=plain,
        jaket_text_only_step_seconds=text_only,
        overhead_vs_bert_for_masked_lm=with_memory / plain,
        overhead_vs_text_only=with_memory / text_only,
    )


if __name__ == "__main__":
    main()
