"""The fine-tuning metrics: accuracy and hits@1 computed as what they are."""

import pytest

from jaket_training.metrics import accuracy, hits_at_1


def test_accuracy_is_the_share_of_predictions_equal_to_their_reference():
    assert accuracy([1, 2, 3, 4], [1, 0, 3, 0]) == 0.5
    assert accuracy([[0, 1]], [[0, 0]]) == 0.5  # any shape, element by element
    with pytest.raises(ValueError, match=r"\(3,\) predictions for \(2,\) references"):
        accuracy([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="accuracy of no predictions is undefined"):
        accuracy([], [])


def test_hits_at_1_is_the_share_of_questions_whose_top_candidate_is_an_answer():
    # question 0: 7 is one of its two answers; question 1: 5 is not its answer; question 2: 9 is
    assert hits_at_1([7, 5, 9], [[3, 7], [6], [9]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 top candidates for 1 questions"):
        hits_at_1([1, 2], [[1]])
    with pytest.raises(ValueError, match="hits@1 of no questions is undefined"):
        hits_at_1([], [])
