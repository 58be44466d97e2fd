"""Confidence scores of one answer, from the log-probabilities of the tokens a model chose.

Pure functions, shared by the eval runs (which store every score per item, so the report can
compare them) and the gateway (`swap/confidence.py`, which checks one of them per request).

Every score is a log-probability (<= 0; higher is surer). Tokens with log-probability 0.0 are
the ones a grammar forced (braces, key names, the answer format): they carry no information and
are left out; what is left is what the model chose between (the tool name, the argument values).

- `mean_logprob`: the mean over the free tokens (the geometric-mean probability, logged).
- `min_logprob`: the least sure free token: one guessed argument value is enough to be wrong,
  and a mean over many easy tokens hides it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Score = Callable[[Sequence[float]], float]


def free_tokens(token_logprobs: Sequence[float]) -> list[float]:
    return [lp for lp in token_logprobs if lp < 0.0]


def mean_logprob(token_logprobs: Sequence[float]) -> float:
    """Mean log-probability of the free tokens (0.0 when the grammar forced every one)."""
    free = free_tokens(token_logprobs)
    return sum(free) / len(free) if free else 0.0


def min_logprob(token_logprobs: Sequence[float]) -> float:
    """The lowest log-probability among the free tokens (0.0 when there are none)."""
    return min(free_tokens(token_logprobs), default=0.0)


SCORES: dict[str, Score] = {"mean_logprob": mean_logprob, "min_logprob": min_logprob}
DEFAULT_SCORE = "mean_logprob"
PREFIX = "confidence."  # how an eval item's scores name them: "confidence.mean_logprob"


def all_scores(token_logprobs: Sequence[float] | None) -> dict[str, float]:
    """Every score of one answer, keyed as an eval item stores them (empty without logprobs)."""
    if token_logprobs is None:
        return {}
    return {PREFIX + name: fn(token_logprobs) for name, fn in SCORES.items()}
