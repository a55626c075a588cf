"""Entity linking: the candidates of each mention (found by name, `MentionFinder`) ranked with the masked-entity head
(L_e, §3.6) as pre-training scores a removed mention, g((Z_s + Z_o) / 2) . E^context. `link_mentions` links text for
the processor; the `entity-linking` pipeline runs the same three steps (`mention_inputs`, `rank_mentions`, the
best candidate); `link_entities` ranks given candidates, descriptions included, for one mention."""

from collections.abc import Sequence

import torch

from .memory import EntityContextMemory
from .modeling_jaket import JaketForPreTraining, span_mean
from .tokenization_jaket import encode_descriptions, tokenize_with_mentions
from .validation import is_int


@torch.no_grad()
def mention_queries(model: JaketForPreTraining, input_ids, attention_mask, mention_starts, mention_ends):
    """g((Z_s + Z_o) / 2) of each mention: [batch, mentions, hidden]. The text is read as pre-training reads a
    removed mention's: its tokens stay, and no entity embedding is merged into it."""
    hidden = model.jaket(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return model.masked_entity_head(span_mean(hidden, mention_starts, mention_ends))


def score_candidates(queries: torch.Tensor, mention_starts, candidates, memory: EntityContextMemory):
    """For each mention (row-major over `mention_starts` >= 0) the scores of its candidate entity ids against
    `queries`: a list per example of a float tensor per mention."""
    count = int((mention_starts >= 0).sum())
    if count != len(candidates):
        raise ValueError(f"got candidates for {len(candidates)} mentions, but the batch has {count}")
    scores, k = [], 0
    for example, starts in enumerate(mention_starts.tolist()):
        row = []
        for mention, start in enumerate(starts):
            if start < 0:
                continue
            table = memory.lookup(torch.as_tensor(candidates[k])).to(queries.device, queries.dtype)
            row.append((table @ queries[example, mention]).float().cpu())
            k += 1
        scores.append(row)
    return scores


def mention_inputs(processor, texts: Sequence[str], entity_spans: Sequence | None = None) -> dict:
    """The text inputs of `texts` (from the processor, no entity merged) with each kept mention's candidates:
    `entity_spans` (a list per text), or every name or alias the processor's graph finds. A mention cut off by
    `max_length` is left out (tokenization warns)."""
    if entity_spans is None:
        entity_spans = [[(start, end) for start, end, _ in processor.mention_finder.find(text)] for text in texts]
    inputs = processor(list(texts), entity_spans=entity_spans, return_graph_inputs=False)
    mentions, candidates = [], []
    for example, (text, spans, kept) in enumerate(zip(texts, entity_spans, inputs.pop("mention_indices").tolist())):
        row = []
        for index in (i for i in kept if i >= 0):
            start, end = spans[index]
            found = processor.mention_finder.candidates(text[start:end])
            if not found:
                raise ValueError(
                    f"example {example}, span {index}: {text[start:end]!r} is no name or alias of the graph; pass its "
                    "entity to the processor in entities="
                )
            row.append((start, end, found))
            candidates.append(found)
        mentions.append(row)
    return {**inputs, "candidates": candidates, "mentions": mentions}


@torch.no_grad()
def rank_mentions(model: JaketForPreTraining, memory: EntityContextMemory, inputs: dict) -> list[list[torch.Tensor]]:
    """The masked-entity head's score of every candidate of every mention of `mention_inputs`' output: a list per
    text of a float tensor per mention."""
    device = model.device
    queries = mention_queries(
        model, *(inputs[k].to(device) for k in ("input_ids", "attention_mask", "mention_starts", "mention_ends"))
    )
    return score_candidates(queries, inputs["mention_starts"], inputs["candidates"], memory)


def link_mentions(
    model: JaketForPreTraining, processor, texts: Sequence[str], entity_spans: Sequence | None = None
) -> list[list[tuple[int, int, int]]]:
    """Each text's mentions (`entity_spans`, a list per text, or the names and aliases found) linked to their best
    candidate by `model`'s masked-entity head: `(start, end, entity id)` in text order, ready for
    `processor(text, entity_spans=..., entities=...)`. Mentions cut off by the processor's `max_length` are left
    out."""
    if not hasattr(model, "masked_entity_head"):
        raise ValueError(
            f"link_mentions needs a JaketForPreTraining (its masked-entity head ranks the candidates), got "
            f"{type(model).__name__}"
        )
    inputs = mention_inputs(processor, texts, entity_spans)
    scores = iter(rank_mentions(model, processor.require("memory"), inputs))
    return [
        [(start, end, found[int(score.argmax())]) for (start, end, found), score in zip(row, next(scores))]
        for row in inputs["mentions"]
    ]


@torch.no_grad()
def candidate_embeddings(
    model: JaketForPreTraining,
    tokenizer,
    candidates: Sequence,
    memory: EntityContextMemory | None = None,
    batch_size: int = 64,
    max_length: int = 64,
) -> torch.Tensor:
    """E^context of each candidate: an `int` is an entity id, read from `memory`; a `(name, description)` pair or a
    plain description string is encoded by LM1 as the memory would encode it. Returns `[len(candidates), hidden]`."""
    if len(candidates) == 0:
        raise ValueError("link_entities needs at least one candidate entity")
    embeddings = [None] * len(candidates)
    ids = [(i, c) for i, c in enumerate(candidates) if is_int(c)]
    if ids:
        if memory is None:
            raise ValueError(f"candidate {ids[0][0]} is an entity id ({ids[0][1]}); pass the memory to look ids up in")
        table = torch.tensor([c for _, c in ids])
        bad = (table < 0) | (table >= memory.num_entities)
        if bad.any():
            raise ValueError(
                f"candidate entity id {int(table[bad][0])} is outside the memory's [0, {memory.num_entities})"
            )
        for (i, _), row in zip(ids, memory.lookup(table.to(memory.entity_embeddings.device)).cpu()):
            embeddings[i] = row
    texts = [(i, c) for i, c in enumerate(candidates) if embeddings[i] is None]
    if texts:
        names, descriptions = [], []
        for i, candidate in texts:
            if isinstance(candidate, str):
                names.append("")
                descriptions.append(candidate)
            elif (
                isinstance(candidate, (tuple, list))
                and len(candidate) == 2
                and all(isinstance(x, str) for x in candidate)
            ):
                names.append(candidate[0])
                descriptions.append(candidate[1])
            else:
                raise ValueError(
                    f"candidate {i} is {candidate!r}: give an entity id, a description, or (name, description)"
                )
        encoded = encode_descriptions(tokenizer, names, descriptions, max_length)
        computed = EntityContextMemory.compute(model, encoded, batch_size)
        for (i, _), row in zip(texts, computed):
            embeddings[i] = row
    return torch.stack(embeddings)


@torch.no_grad()
def link_entities(
    model: JaketForPreTraining,
    tokenizer,
    text: str,
    span: tuple[int, int],
    candidates: Sequence,
    memory: EntityContextMemory | None = None,
    max_length: int = 512,
) -> list[tuple[object, float]]:
    """Rank `candidates` for the mention at characters `span` = [start, end) of `text`.

    Candidates are entity ids (looked up in `memory`), descriptions, or `(name, description)` pairs (encoded by
    LM1). Returns `(candidate, score)` pairs, best first. The mention is read as pre-training reads a removed one:
    its text stays, no entity embedding is merged into it.

    Example:
        >>> link_entities(model, tokenizer, "She walked the dog.", (15, 18),
        ...               [("dog", "dog: a domesticated canine"), ("dog", "dog: a dull unattractive person")])
    """
    encoding = tokenize_with_mentions(tokenizer, [text], [[(span[0], span[1], 0)]], max_length=max_length)
    if not encoding["mention_starts"][0]:
        raise ValueError(f"mention span {tuple(span)} falls outside the first {max_length} tokens of the text")
    device = model.device
    input_ids = torch.tensor(encoding["input_ids"], device=device)
    starts = torch.tensor([encoding["mention_starts"][0]], device=device)
    ends = torch.tensor([encoding["mention_ends"][0]], device=device)
    query = mention_queries(model, input_ids, torch.ones_like(input_ids), starts, ends)[0, 0]
    scores = candidate_embeddings(model, tokenizer, candidates, memory).to(device, query.dtype) @ query
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    return [(candidates[i], float(scores[i])) for i in order]
