"""Text with entity mentions -> model inputs: token ids, inclusive token spans of each mention, and collation."""

from .collator import DataCollatorWithMentions
from .mentions import encode_descriptions, tokenize_with_mentions, words_to_text

__all__ = ["DataCollatorWithMentions", "encode_descriptions", "tokenize_with_mentions", "words_to_text"]
