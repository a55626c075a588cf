"""Entity linking with the masked-entity head (L_e, §3.6): which of a list of candidate entities a mention in a text
refers to, scored as the pre-training scores a removed mention, g((Z_s + Z_o) / 2) . E^context_candidate."""

from collections.abc import Sequence

import torch

from tokenization import encode_descriptions, tokenize_with_mentions

from .memory import EntityContextMemory
from .modeling_jaket import JaketForPreTraining, span_mean


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
    ids = [(i, c) for i, c in enumerate(candidates) if isinstance(c, int) and not isinstance(c, bool)]
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
    hidden = model.jaket(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
    starts = torch.tensor([encoding["mention_starts"][0]], device=device)
    ends = torch.tensor([encoding["mention_ends"][0]], device=device)
    query = model.masked_entity_head(span_mean(hidden, starts, ends))[0, 0]
    scores = candidate_embeddings(model, tokenizer, candidates, memory).to(device, query.dtype) @ query
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    return [(candidates[i], float(scores[i])) for i in order]
