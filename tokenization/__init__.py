"""Text with entity mentions -> model inputs: token ids, inclusive token spans of each mention, collation, and the
`JaketProcessor` that does all of it (with the graph and the memory) in one call.

The code lives in `modeling_jaket`, so that a saved model's folder holds it beside the weights for
`trust_remote_code`; this package is its name for the text side."""

from modeling_jaket.collator import DataCollatorForJaketPreTraining, DataCollatorWithMentions, confusable_entities
from modeling_jaket.processing_jaket import JaketProcessor
from modeling_jaket.tokenization_jaket import (
    description_inputs,
    encode_descriptions,
    tokenize_with_mentions,
    words_to_text,
)

__all__ = [
    "DataCollatorForJaketPreTraining",
    "DataCollatorWithMentions",
    "JaketProcessor",
    "confusable_entities",
    "description_inputs",
    "encode_descriptions",
    "tokenize_with_mentions",
    "words_to_text",
]
