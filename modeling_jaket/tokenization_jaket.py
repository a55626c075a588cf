"""Text with entity mentions -> `input_ids` and inclusive token spans, for any fast tokenizer (RoBERTa's byte-level
BPE, BERT's WordPiece), through the tokenizer's character offsets."""

import bisect
from collections.abc import Mapping, Sequence

import torch
from transformers import BatchEncoding
from transformers.utils import logging

from .validation import is_int

logger = logging.get_logger(__name__)

# A mention is (start_char, end_char, entity): characters [start_char, end_char) of the text, Python-slice style;
# entity is an int id, or a key of `entity_vocab`. Text to be linked has mentions without entities: (start, end).
Mention = tuple[int, int, object] | tuple[int, int]
MENTION_COLUMNS = ("mention_entity_ids", "mention_starts", "mention_ends")


def check_span(span, where: str, listed_in: str = "mentions") -> tuple[int, int]:
    """`span` as `(start, end)` integers, or a ValueError saying `where` it is and what it should be."""
    if not isinstance(span, (tuple, list)):
        raise ValueError(
            f"{where}: {span!r} is not (start, end) characters; {listed_in} is a list of them (for a batch, one "
            "list a text): [(2, 5)], not (2, 5)"
        )
    if len(span) != 2 or not all(is_int(x) for x in span):
        raise ValueError(f"{where}: {span!r} is not (start, end) characters")
    return span[0], span[1]


def mention_coverage(starts: torch.Tensor, ends: torch.Tensor, length: int) -> torch.Tensor:
    """[batch, mentions, length]: whether each token lies in each mention's inclusive span (`starts`, `ends`
    `[batch, mentions]`, -1 pads: a padding mention covers nothing)."""
    positions = torch.arange(length, device=starts.device)
    covers = (positions >= starts.unsqueeze(-1)) & (positions <= ends.unsqueeze(-1))
    return covers & (starts >= 0).unsqueeze(-1)


def words_to_text(words: Sequence[str], word_spans: Sequence[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """Join pre-split words with single spaces (FewRel, SemCor) and turn inclusive word-index spans `(first, last)`
    into character spans `[start, end)` of the joined text."""
    if not words:
        raise ValueError("words_to_text got no words")
    starts, text_length = [], 0
    for word in words:
        starts.append(text_length)
        text_length += len(word) + 1
    char_spans = []
    for first, last in word_spans:
        if not 0 <= first <= last < len(words):
            raise ValueError(f"word span ({first}, {last}) is outside the {len(words)} words")
        char_spans.append((starts[first], starts[last] + len(words[last])))
    return " ".join(words), char_spans


def _entity_id(entity, example, index, entity_vocab, num_entities) -> int:
    if entity_vocab is not None and isinstance(entity, str):
        if entity not in entity_vocab:
            raise ValueError(f"example {example}, mention {index}: unknown entity {entity!r} (not in entity_vocab)")
        entity = entity_vocab[entity]
    if not is_int(entity):  # True would be entity 1
        raise ValueError(
            f"example {example}, mention {index}: entity {entity!r} is not an int id; pass entity_vocab to map it"
        )
    if entity < 0 or (num_entities is not None and entity >= num_entities):
        raise ValueError(f"example {example}, mention {index}: entity id {entity} is outside [0, {num_entities})")
    return entity


def _check_mentions(text: str, mentions: Sequence[Mention], example: int) -> list[tuple[int, Mention]]:
    """Validate the character spans of one example; returns (original index, mention) sorted by start."""
    for index, mention in enumerate(mentions):
        where = f"example {example}, mention {index}"
        if not isinstance(mention, (tuple, list)) or len(mention) not in (2, 3):
            raise ValueError(f"{where}: {mention!r} is not (start, end) or (start, end, entity)")
        start, end = check_span(tuple(mention[:2]), where)
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"{where}: character span [{start}, {end}) is out of range for a text of "
                f"{len(text)} characters (need 0 <= start < end <= length)"
            )
    ordered = sorted(enumerate(mentions), key=lambda item: item[1][0])
    for (i, previous), (j, current) in zip(ordered, ordered[1:]):
        if current[0] < previous[1]:
            raise ValueError(
                f"example {example}: mentions {i} [{previous[0]}, {previous[1]}) and {j} [{current[0]}, {current[1]}) "
                "overlap"
            )
    return ordered


def _check_texts(caller: str, tokenizer, texts, mentions) -> bool:
    """Whether the mentions carry entities: all of them `(start, end, entity)`, or all `(start, end)`."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{caller} needs a fast tokenizer (it maps spans through offset mappings)")
    if len(texts) != len(mentions):
        raise ValueError(f"got {len(texts)} texts but {len(mentions)} mention lists")
    for example, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"example {example}: text is empty")
    sizes = {}
    for example, example_mentions in enumerate(mentions):
        for index, mention in enumerate(example_mentions):
            sizes.setdefault(len(mention) if isinstance(mention, (tuple, list)) else None, (example, index))
    if 2 in sizes and 3 in sizes:
        (e2, i2), (e3, i3) = sizes[2], sizes[3]
        raise ValueError(
            f"example {e3}, mention {i3} has an entity but example {e2}, mention {i2} has none: give every mention "
            "its entity, or none"
        )
    return 2 not in sizes


def _mentions_to_tokens(text, mentions, tokens, example, entity_vocab, num_entities):
    """The inclusive token span of each mention of one example, in text order. `tokens` are the text's tokens as
    (position in input_ids, start char, end char); a mention that reaches past the last of them while text remains
    (cut off by truncation) is counted, not mapped. Returns (indices into `mentions`, entity ids (None for mentions
    without entities), starts, ends, number cut off)."""
    ordered = _check_mentions(text, mentions, example)
    token_ends = [end for _, _, end in tokens]
    covered_until = token_ends[-1] if tokens else 0
    indices, entity_ids, starts, ends, truncated = [], [], [], [], 0
    for index, (char_start, char_end, *entity) in ordered:
        entity = _entity_id(entity[0], example, index, entity_vocab, num_entities) if entity else None
        if char_end > covered_until and text[covered_until:].strip():
            truncated += 1
            continue
        first = bisect.bisect_right(token_ends, char_start)  # first token ending after the span starts
        last = bisect.bisect_left(token_ends, char_end)  # first token ending at or after the span ends
        if first >= len(tokens) or tokens[first][1] >= char_end:
            raise ValueError(
                f"example {example}, mention {index}: span [{char_start}, {char_end}) = "
                f"{text[char_start:char_end]!r} covers no token"
            )
        indices.append(index)
        entity_ids.append(entity)
        starts.append(tokens[first][0])
        ends.append(tokens[min(last, len(tokens) - 1)][0])
    return indices, entity_ids, starts, ends, truncated


def tokenize_with_mentions(
    tokenizer,
    texts: Sequence[str],
    mentions: Sequence[Sequence[Mention]],
    entity_vocab: Mapping[str, int] | None = None,
    num_entities: int | None = None,
    max_length: int = 512,
    text_pairs: Sequence[str] | None = None,
    pair_mentions: Sequence[Sequence[Mention]] | None = None,
    truncation: bool = True,
) -> BatchEncoding:
    """Tokenize `texts` (with `text_pairs`, each text and its pair as one sequence pair, as a tokenizer's
    `text_pair`) and map each mention's character span to inclusive token indices.

    Returns a `BatchEncoding` of lists, one entry per example: `input_ids`, `attention_mask` (and `token_type_ids`
    for pairs), `mention_entity_ids` (left out when the mentions are `(start, end)` without entities),
    `mention_starts`, `mention_ends` (the text's mentions in text order, then the pair's), `mention_indices` (which
    of the example's `mentions`, then `pair_mentions`, each is: the pair's counted on from the text's) and
    `num_truncated_mentions`. A mention that does not fit in `max_length` tokens, wholly or in part, is dropped and
    counted there, and a warning says how many; `truncation=False` keeps every token (and `max_length` is unused).

    Raises `ValueError` naming the example (and mention) for empty text, spans out of range, overlapping spans,
    spans that cover no token, unknown or out-of-range entities, and mentions of which some have an entity and
    some not.
    """
    with_entities = _check_texts("tokenize_with_mentions", tokenizer, texts, mentions)
    sequences = [(texts, mentions, "")]
    if text_pairs is not None or pair_mentions is not None:
        if text_pairs is None or pair_mentions is None:
            raise ValueError("text_pairs and pair_mentions go together: give both (pair_mentions [] for none)")
        if len(text_pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text pairs")
        pairs_with_entities = _check_texts("tokenize_with_mentions", tokenizer, text_pairs, pair_mentions)
        if any(map(len, pair_mentions)) and any(map(len, mentions)) and pairs_with_entities != with_entities:
            raise ValueError("the texts' mentions and the pairs' mentions must all have an entity, or none")
        with_entities = with_entities and pairs_with_entities
        sequences.append((text_pairs, pair_mentions, "pair "))
    if not is_int(max_length) or max_length < 3:  # 0 meant no truncation
        raise ValueError(
            f"max_length must be an integer of at least 3 (two special tokens and text), got {max_length!r}"
        )
    if truncation is not True and truncation is not False:
        raise ValueError(f"truncation must be True or False, got {truncation!r}")

    encoding = tokenizer(
        list(texts),
        list(text_pairs) if text_pairs is not None else None,
        truncation=truncation,
        max_length=max_length if truncation else None,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    names = (*MENTION_COLUMNS, "mention_indices", "num_truncated_mentions")
    columns = {key: [] for key in names}
    for example in range(len(texts)):
        sequence_ids = encoding.sequence_ids(example)
        row = {key: [] for key in names}
        row["num_truncated_mentions"], offset = 0, 0
        for sequence, (sequence_texts, sequence_mentions, label) in enumerate(sequences):
            tokens = [
                (position, start, end)
                for position, ((start, end), special) in enumerate(
                    zip(encoding["offset_mapping"][example], encoding["special_tokens_mask"][example])
                )
                if not special and end > start and sequence_ids[position] == sequence
            ]
            indices, entity_ids, starts, ends, truncated = _mentions_to_tokens(
                sequence_texts[example],
                sequence_mentions[example],
                tokens,
                f"{example} ({label.strip()})" if label else example,  # named in errors: "example 0 (pair), mention 1"
                entity_vocab,
                num_entities,
            )
            row["mention_entity_ids"] += entity_ids
            row["mention_starts"] += starts
            row["mention_ends"] += ends
            row["mention_indices"] += [offset + i for i in indices]
            row["num_truncated_mentions"] += truncated
            offset += len(sequence_mentions[example])
        for key in names:
            columns[key].append(row[key])
    if not with_entities:
        del columns["mention_entity_ids"]

    total_truncated = sum(columns["num_truncated_mentions"])
    if total_truncated:
        logger.warning(
            f"tokenize_with_mentions: dropped {total_truncated} mentions cut off by max_length={max_length}"
        )
    data = {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}
    if text_pairs is not None and "token_type_ids" in encoding:
        data["token_type_ids"] = encoding["token_type_ids"]
    return BatchEncoding({**data, **columns})


def window_bounds(num_tokens: int, mention_spans: Sequence[tuple[int, int]], size: int, stride: int = 0):
    """Consecutive `[begin, end)` ranges of at most `size` of a text's `num_tokens` tokens that together cover all of
    them, each starting `stride` tokens before the previous one ends. A boundary that would cut a mention (inclusive
    token spans `mention_spans`, in text order) moves back to the mention's start, so every mention lies whole in a
    window. Raises `ValueError` for a mention longer than `size`."""
    if size < 1 or not 0 <= stride < size:
        raise ValueError(f"windows need size >= 1 and 0 <= stride < size, got size {size}, stride {stride}")
    bounds, begin, first_open = [], 0, 0
    while True:
        end = min(begin + size, num_tokens)
        # the mentions not yet ended at `begin`; the first that starts before `end` and ends at or after it is cut
        while first_open < len(mention_spans) and mention_spans[first_open][1] < begin:
            first_open += 1
        for start, last in mention_spans[first_open:]:
            if start >= end:
                break
            if last >= end:
                end = start
                break
        if end <= begin:
            raise ValueError(f"a mention of {last - start + 1} tokens does not fit in a window of {size}")
        bounds.append((begin, end))
        if end == num_tokens:
            return bounds
        begin = end - stride if end - stride > begin else end


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a single text ([CLS] / [SEP], <s> / </s>)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for begin in range(len(full) - len(plain) + 1):
        if full[begin : begin + len(plain)] == plain:
            return full[:begin], full[begin + len(plain) :]
    raise ValueError(f"{type(tokenizer).__name__} does not keep a text's own tokens when it adds special tokens")


def tokenize_into_windows(
    tokenizer,
    texts: Sequence[str],
    mentions: Sequence[Sequence[Mention]],
    entity_vocab: Mapping[str, int] | None = None,
    num_entities: int | None = None,
    max_length: int = 512,
    stride: int = 0,
) -> BatchEncoding:
    """Tokenize each text whole and cut it into windows of at most `max_length` tokens (special tokens included), so
    that no token and no mention is lost: a long text (a Wikipedia article) becomes several rows, not its first
    `max_length` tokens. Consecutive windows share `stride` tokens; a boundary never cuts a mention (`window_bounds`).

    Returns a `BatchEncoding` of lists, one entry per window, in text order: `input_ids`, `attention_mask`,
    `mention_entity_ids`, `mention_starts`, `mention_ends` (inclusive token indices, as `tokenize_with_mentions`
    gives them) and `text_index` (the text each window comes from). A text short enough gives the very row
    `tokenize_with_mentions` would. Errors are `tokenize_with_mentions`' and a mention too long for a window, each
    naming the example.
    """
    if not _check_texts("tokenize_into_windows", tokenizer, texts, mentions):
        raise ValueError("tokenize_into_windows needs each mention's entity: (start, end, entity)")
    before, after = special_tokens_around(tokenizer)
    size = max_length - len(before) - len(after)
    if size < 1:
        raise ValueError(f"max_length {max_length} leaves no room for text beside the special tokens")
    prefix = len(before)
    # verbose=False: a whole article is longer than the model's inputs, which is why it is cut into windows here
    encoding = tokenizer(
        list(texts), add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False, verbose=False
    )
    columns = {key: [] for key in ("input_ids", "attention_mask", *MENTION_COLUMNS, "text_index")}
    for example, (text, example_mentions) in enumerate(zip(texts, mentions)):
        ids = encoding["input_ids"][example]
        tokens = [(i, start, end) for i, (start, end) in enumerate(encoding["offset_mapping"][example]) if end > start]
        _, entity_ids, starts, ends, _ = _mentions_to_tokens(
            text, example_mentions, tokens, example, entity_vocab, num_entities
        )
        try:
            bounds = window_bounds(len(ids), list(zip(starts, ends)), size, stride)
        except ValueError as error:
            raise ValueError(f"example {example}: {error} (max_length {max_length})") from None
        for begin, end in bounds:
            inside = [i for i, (start, last) in enumerate(zip(starts, ends)) if begin <= start and last < end]
            window = before + ids[begin:end] + after
            columns["input_ids"].append(window)
            columns["attention_mask"].append([1] * len(window))
            columns["mention_entity_ids"].append([entity_ids[i] for i in inside])
            columns["mention_starts"].append([starts[i] - begin + prefix for i in inside])
            columns["mention_ends"].append([ends[i] - begin + prefix for i in inside])
            columns["text_index"].append(example)
    return BatchEncoding(columns)


def encode_descriptions(
    tokenizer,
    names: Sequence[str],
    descriptions: Sequence[str],
    max_length: int = 64,
) -> BatchEncoding:
    """Tokenize entity (or relation) descriptions for [`EntityContextMemory`], marking the first mention of each
    name in its own description (case-insensitive); -1 where the name does not occur, in which case the model uses
    the first token after the start token. The paper keeps the first 64 tokens of each description."""
    if len(names) != len(descriptions):
        raise ValueError(f"got {len(names)} names but {len(descriptions)} descriptions")
    if not descriptions:
        return BatchEncoding({"input_ids": [], "mention_starts": [], "mention_ends": []})
    mentions = []
    for index, (name, description) in enumerate(zip(names, descriptions)):
        if not isinstance(description, str) or not description.strip():
            raise ValueError(f"description {index} ({name!r}) is empty: every entity needs a description")
        position = description.lower().find(name.lower()) if name else -1
        mentions.append([(position, position + len(name), index)] if position >= 0 else [])
    encoding = tokenize_with_mentions(tokenizer, descriptions, mentions, max_length=max_length)
    return BatchEncoding(
        {
            "input_ids": encoding["input_ids"],
            "mention_starts": [starts[0] if starts else -1 for starts in encoding["mention_starts"]],
            "mention_ends": [ends[0] if ends else -1 for ends in encoding["mention_ends"]],
        }
    )


def description_inputs(tokenizer, graph, max_length: int = 64) -> tuple[BatchEncoding, BatchEncoding]:
    """A `KnowledgeGraph`'s entity and relation descriptions, tokenized as `EntityContextMemory.refresh` takes them."""
    entities = encode_descriptions(tokenizer, graph.entity_names, graph.entity_descriptions, max_length)
    relations = encode_descriptions(tokenizer, graph.relation_names, graph.relation_descriptions, max_length)
    return entities, relations
