"""The fine-tuning metrics, as plain code: accuracy and hits@1. `evaluate.load("accuracy")` reads its module from
the Hub, and a copy of a published module kept here would be a second source of truth for one line of arithmetic."""

from collections.abc import Sequence

import numpy as np


def accuracy(predictions, references) -> float:
    """The share of predictions equal to their reference."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.shape} predictions for {references.shape} references")
    if predictions.size == 0:
        raise ValueError("accuracy of no predictions is undefined")
    return float((predictions == references).mean())


def hits_at_1(top_candidates: Sequence[int], answers: Sequence[Sequence[int]]) -> float:
    """The share of questions whose top-ranked candidate is one of their answers."""
    if len(top_candidates) != len(answers):
        raise ValueError(f"{len(top_candidates)} top candidates for {len(answers)} questions")
    if not top_candidates:
        raise ValueError("hits@1 of no questions is undefined")
    return sum(top in set(answer) for top, answer in zip(top_candidates, answers)) / len(top_candidates)
