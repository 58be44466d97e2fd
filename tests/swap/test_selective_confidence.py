"""Confidence scores compared on val: the one giving more coverage at parity with the LLM wins."""

from __future__ import annotations

from fledgling.swap.calibrate import TaskCalibration, calibrate_parity
from fledgling.swap.confidence import Calibration, score_of


def rows():
    """120 right and sure answers; 80 coin flips whose mean looks sure but whose least sure
    token does not (one guessed value among easy tokens)."""
    sure = [({"mean_logprob": -0.2, "min_logprob": -0.3}, True, True, True) for _ in range(120)]
    flips = [({"mean_logprob": -0.1, "min_logprob": -3.0}, k % 2 == 0, True, True) for k in range(80)]
    invalid = [({}, False, True, False) for _ in range(10)]
    return sure + flips + invalid


def test_min_logprob_covers_more_at_parity_here():
    parity = calibrate_parity(rows(), delta=0.05)
    assert parity["mean_logprob"] is None  # the flips score highest on the mean: no share is at parity
    best = parity["min_logprob"]
    assert best is not None and best.threshold == -0.3 and (best.covered, best.n) == (120, 210)
    cal = TaskCalibration("t", "slm", "val v1", Calibration(None, 0.95, 0.0, 0.0, 200, 0.8), 200, 0, 10,
                          parity, 0.05)
    assert cal.best_score == "min_logprob"


def test_a_tie_keeps_the_mean():
    same = [({"mean_logprob": -0.1, "min_logprob": -0.2}, True, True, True) for _ in range(200)]
    parity = calibrate_parity(same, delta=0.05)
    cal = TaskCalibration("t", "slm", "val v1", Calibration(None, 0.95, 0.0, 0.0, 200, 1.0), 200, 0, 0,
                          parity, 0.05)
    assert parity["mean_logprob"].coverage == parity["min_logprob"].coverage == 1.0
    assert cal.best_score == "mean_logprob"


def test_score_of_a_local_answer_and_a_remote_one():
    assert score_of([0.0, -0.5, -1.5], "min_logprob", None) == -1.5
    assert score_of([0.0, -0.5, -1.5], "mean_logprob", None) == -1.0
    assert score_of(None, "min_logprob", -0.4) == -0.4  # remote: its mean logprob path
