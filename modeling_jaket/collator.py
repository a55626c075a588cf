"""Batch collation: pad token sequences with the tokenizer's pad id and mention arrays with -1."""

from dataclasses import dataclass

import torch

TOKEN_KEYS = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0, "labels": -100}
MENTION_KEYS = ("mention_entity_ids", "mention_starts", "mention_ends")
METADATA_KEYS = ("num_truncated_mentions",)


@dataclass
class DataCollatorWithMentions:
    """Collates the output of `tokenize_with_mentions` (one dict per example) into padded tensors.

    Token-level lists (`input_ids`, `attention_mask`, `token_type_ids`, `labels`) are right-padded to the longest
    example (rounded up to `pad_to_multiple_of`); mention lists are padded with -1 to the most mentions in the batch;
    any other numeric field, and a `labels` that holds one value per example, is stacked as is.
    `num_truncated_mentions` is dropped.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("DataCollatorWithMentions got an empty batch")
        keys = [key for key in features[0] if key not in METADATA_KEYS]
        for index, feature in enumerate(features):
            if set(k for k in feature if k not in METADATA_KEYS) != set(keys):
                raise ValueError(f"feature {index} has keys {sorted(feature)}, but feature 0 has {sorted(keys)}")
        batch = {}
        length = max(len(feature["input_ids"]) for feature in features) if "input_ids" in keys else 0
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        mention_key = next((key for key in MENTION_KEYS if key in keys), None)  # text without mentions has none
        num_mentions = max((len(feature[mention_key]) for feature in features), default=0) if mention_key else 0
        for key in keys:
            values = [feature[key] for feature in features]
            if key in TOKEN_KEYS and isinstance(values[0], (list, tuple)):  # token-level, not a sequence label
                pad = self.pad_token_id if key == "input_ids" else TOKEN_KEYS[key]
                batch[key] = pad_rows(values, length, pad, key)
            elif key in MENTION_KEYS:
                batch[key] = pad_rows(values, num_mentions, -1, key)
            else:
                batch[key] = torch.tensor(values)
        return batch


def pad_rows(rows, length, value, key):
    """`rows` (lists of ids) right-padded with `value` to `length` columns; a longer row is refused, naming `key`."""
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for index, row in enumerate(rows):
        if len(row) > length:
            raise ValueError(f"{key} of feature {index} has {len(row)} entries, more than the batch's {length}")
        out[index, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out
