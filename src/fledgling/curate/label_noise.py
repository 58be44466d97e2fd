"""Label noise: near-identical inputs whose answers disagree, and which duplicate to keep.

Within one duplicate cluster (see `dedupe`), answers disagree when two members with the *same*
normalised input have different answers (tool names and parsed arguments, or content), or when
two near-duplicate members fall in different output classes (a different tool, or a different
structured class). Near-duplicates may legitimately differ in an argument (another order id),
so for them only the class is compared.

A noisy cluster is flagged, not dropped, unless asked (`drop=True`); even then a cluster whose
chosen answer is a human correction is kept, since the correction settles the disagreement.

The `consistency` label check (`suspects`) is narrower: a near-duplicate conversation is often
the same session one step later (a tool result more), whose answer rightly differs, so it only
compares members that answer the same last message (identical after normalisation). Among
those, answers disagree as above; the majority answer (most votes, or a better label such as a
correction) wins and the others are suspect; without a majority (two members, two answers)
nothing says which is right, and every one of them is suspect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Member:
    """What the choice needs to know about one example, and nothing more (memory is O(n))."""

    item: int
    exact: bytes
    answer: bytes
    cls: str
    quality: int
    tail: bytes = b""
    """Digest of the last input message, normalised: what the answer responds to."""


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


def suspects(members: list[Member]) -> list[Member]:
    """The members whose label their near-identical neighbours contradict (see above)."""
    by_tail: dict[bytes, list[Member]] = {}
    for m in members:
        by_tail.setdefault(m.tail, []).append(m)
    out: list[Member] = []
    for group in by_tail.values():
        if len(group) < 2:
            continue
        winner = _majority(group, lambda m: m.cls)
        if winner is None:
            out += group
            continue
        out += [m for m in group if m.cls != winner]
        by_exact: dict[bytes, list[Member]] = {}
        for m in group:
            if m.cls == winner:
                by_exact.setdefault(m.exact, []).append(m)
        for same in by_exact.values():
            answer = _majority(same, lambda m: m.answer)
            out += same if answer is None else [m for m in same if m.answer != answer]
    return out


def _majority(group: list[Member], key: Callable[[Member], object]) -> object | None:
    """The key most members share (a better label, such as a correction, first); None on a tie."""
    ranked: Counter[object] = Counter()
    for m in group:
        ranked[key(m)] += 1
    best = max(m.quality for m in group)
    top = {key(m) for m in group if m.quality == best}
    if len(top) == 1 and best > min(m.quality for m in group):
        return next(iter(top))
    counts = ranked.most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]
