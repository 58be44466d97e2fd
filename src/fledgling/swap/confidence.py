"""Candidate confidence: the low-confidence fallback's score and its calibration.

The score is the mean log-probability of the tokens the model actually chose between. For a
local model decoding under the contract's grammar, the tokens the grammar forces (braces, key
names, the answer format) have probability 1 after the mask and carry no information; what is
left is the tool name and the argument values (and, for structured output, the field values):
the score is their mean log-probability. A remote server's answer is scored from the `logprobs`
it returns (the mean over its content tokens); a server that returns none gets no score, and
the check is skipped for it.

The threshold is calibrated on the task's curated val split (`fledgling rollout calibrate`):
the lowest score at which the answers scoring at least that agree with the reference at the
target rate, or (`calibrate_parity`) the lowest at which they are non-inferior to the LLM's own
answers on the same items. The gateway falls back to the LLM under it (`fallback_on` with
"low_confidence"). Other scores of a local answer (`evals/confidence.py`: e.g. the least sure
free token) are compared on val the same way, and the one giving more coverage at parity is
the one a rollout from the report uses (`score_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fledgling.evals.confidence import SCORES, mean_logprob


def local_confidence(token_logprobs: Sequence[float] | None) -> float | None:
    """Mean log-probability of the chosen tokens the grammar did not force (0.0 if it forced all)."""
    return None if token_logprobs is None else mean_logprob(token_logprobs)


def score_of(token_logprobs: Sequence[float] | None, score: str, fallback: float | None) -> float | None:
    """A named score of a local answer (`evals.confidence.SCORES`); `fallback` (the answer's
    own score: a remote server's mean) when there are no token log-probabilities."""
    if token_logprobs is None or score not in SCORES:
        return fallback
    return SCORES[score](token_logprobs)


def remote_confidence(logprobs: Any) -> float | None:
    """Mean log-probability of the content tokens an OpenAI-compatible server returned, if any."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    values = [t["logprob"] for t in content or [] if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Calibration:
    threshold: float | None  # None: no threshold reaches the target accuracy
    target_accuracy: float
    accuracy: float  # of the answers at or above the threshold
    coverage: float  # share of answers at or above the threshold (the candidate keeps them)
    n: int
    overall_accuracy: float


def calibrate(scored: Sequence[tuple[float, bool]], target_accuracy: float) -> Calibration:
    """The lowest threshold whose kept answers (score >= threshold) are right at the target
    rate: the most coverage the target allows. `scored` is (score, agreed with reference)."""
    n = len(scored)
    overall = sum(ok for _, ok in scored) / n if n else 0.0
    best = Calibration(None, target_accuracy, 0.0, 0.0, n, overall)
    right = 0
    ranked = sorted(scored, key=lambda s: -s[0])
    for i, (score, ok) in enumerate(ranked, 1):
        right += ok
        if i < n and ranked[i][0] == score:
            continue  # a threshold keeps every answer of equal score
        if right / i >= target_accuracy:
            best = Calibration(score, target_accuracy, right / i, i / n, n, overall)
    return best
