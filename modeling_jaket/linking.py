"""Entity linking: mentions found by name through a graph's names and aliases (`MentionFinder`), then ranked with
the masked-entity head (L_e, §3.6) as pre-training scores a removed mention, g((Z_s + Z_o) / 2) . E^context."""

import re
from collections.abc import Sequence

import torch

from .graph import KnowledgeGraph
from .memory import EntityContextMemory
from .modeling_jaket import JaketForPreTraining, span_mean
from .tokenization_jaket import encode_descriptions, tokenize_with_mentions
from .validation import is_int

WORD = re.compile(r"\w+(?:['-]\w+)*")


class MentionFinder:
    """The mentions of a graph's entities in text: runs of words that are an entity's name or one of its aliases,
    compared case-insensitively word by word, the longest run first, left to right, without overlaps.

    Each mention comes with its candidates: the entities of that name first, then those of that alias, each group
    in id order (a graph that lists an entity's most frequent sense first, as WordNet does, ranks it first)."""

    def __init__(self, graph: KnowledgeGraph):
        if graph.entity_names is None:
            raise ValueError("MentionFinder needs a graph with entity_names")
        by_name, by_alias = {}, {}
        for entity, name in enumerate(graph.entity_names):
            by_name.setdefault(self.key(name), []).append(entity)
        for entity, aliases in enumerate(graph.entity_aliases or []):
            for alias in aliases:
                by_alias.setdefault(self.key(alias), []).append(entity)
        self.index = {}
        for key in (*by_name, *by_alias):
            if key and key not in self.index:
                named = by_name.get(key, [])
                self.index[key] = named + [e for e in dict.fromkeys(by_alias.get(key, [])) if e not in named]
        self.longest = max(map(len, self.index), default=0)

    @staticmethod
    def key(text: str) -> tuple[str, ...]:
        return tuple(word.lower() for word in WORD.findall(text))

    def candidates(self, surface: str) -> list[int]:
        """The entities named `surface` (by name or alias); [] for none."""
        return list(self.index.get(self.key(surface), []))

    def find(self, text: str) -> list[tuple[int, int, list[int]]]:
        """`(start_char, end_char, candidate entity ids)` of each mention in `text`, in text order."""
        words = list(WORD.finditer(text))
        keys = [word.group().lower() for word in words]
        mentions, i = [], 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                candidates = self.index.get(tuple(keys[i : i + n]))
                if candidates:
                    mentions.append((words[i].start(), words[i + n - 1].end(), list(candidates)))
                    i += n
                    break
            else:
                i += 1
        return mentions


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
