"""Label noise: near-identical inputs whose answers disagree, and which duplicate to keep.

Within one duplicate cluster (see `dedupe`), answers disagree when two members with the *same*
normalised input have different answers (tool names and parsed arguments, or content), or when
two near-duplicate members fall in different output classes (a different tool, or a different
structured class). Near-duplicates may legitimately differ in an argument (another order id),
so for them only the class is compared.

A noisy cluster is flagged, not dropped, unless asked (`drop=True`); even then a cluster whose
chosen answer is a human correction is kept, since the correction settles the disagreement.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Member:
    """What the choice needs to know about one example, and nothing more (memory is O(n))."""

    item: int
    exact: bytes
    answer: bytes
    cls: str
    quality: int


@dataclass(frozen=True)
class Choice:
    representative: Member
    noisy: bool
    disagreeing: list[Member]


def choose(members: list[Member]) -> Choice:
    """Keep the best-labelled member; among equals, the most common answer, then the earliest."""
    votes = Counter(m.answer for m in members)
    rep = max(members, key=lambda m: (m.quality, votes[m.answer], -m.item))
    by_exact: dict[bytes, set[bytes]] = {}
    for m in members:
        by_exact.setdefault(m.exact, set()).add(m.answer)
    noisy = (any(len(answers) > 1 for answers in by_exact.values())
             or len({m.cls for m in members}) > 1)
    def agrees(m: Member) -> bool:
        return m.cls == rep.cls and (m.answer == rep.answer
                                     or (m.exact != rep.exact and len(by_exact[m.exact]) == 1))

    disagreeing = [m for m in members if not agrees(m)] if noisy else []
    return Choice(rep, noisy, disagreeing)
