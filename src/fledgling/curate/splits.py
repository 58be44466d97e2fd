"""Train/val/test splits: grouped so nothing leaks, stratified so every class is tested.

Grouping: examples that share a session id or a trace id are one group (connected components,
so a trace that spans two sessions joins them); an example with neither is its own group. A
group goes to exactly one split.

Assignment is deterministic for a seed: groups are visited in an order given by a hash of
(seed, group), never by arrival order. First, classes are placed rarest first: a class with
fewer than `min_count` examples, or held by a single group, goes to train (with a warning: it
cannot be tested); otherwise the first group holding it goes to test and the next to val, as
long as a group remains for train. Then each remaining group goes to the split whose per-class
targets it helps most (a greedy stratified fill).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

SPLITS = ("train", "val", "test")
MIN_COUNT = 3
"""A class seen at least this many times is guaranteed a place in test when its groups allow."""


class Groups:
    """Union-find over session and trace ids: which examples must stay together."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def _find(self, x: str) -> str:
        parent = self._parent
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def link(self, call_id: str, session_id: str | None, trace_id: str | None) -> None:
        node = self._find("c:" + call_id)
        for other in (("s:" + session_id) if session_id else None,
                      ("t:" + trace_id) if trace_id else None):
            if other is not None:
                a, b = self._find(node), self._find(other)
                if a != b:
                    self._parent[max(a, b)] = min(a, b)

    def of(self, call_id: str) -> str:
        return self._find("c:" + call_id)


def assign(groups: dict[str, Counter[str]], *, seed: int, val: float, test: float,
           min_count: int = MIN_COUNT) -> tuple[dict[str, str], list[str]]:
    """Split for each group (given its class counts), and warnings about rare classes."""
    fractions = {"train": 1.0 - val - test, "val": val, "test": test}
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}\x1f{g}".encode()).digest())
    totals: Counter[str] = Counter()
    for counts in groups.values():
        totals.update(counts)
    n_total = sum(totals.values()) or 1
    filled: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    size = dict.fromkeys(SPLITS, 0)
    out: dict[str, str] = {}
    warnings: list[str] = []

    def put(group: str, split: str) -> None:
        out[group] = split
        filled[split].update(groups[group])
        size[split] += sum(groups[group].values())

    holders: dict[str, list[str]] = {}
    for g in order:
        for cls in groups[g]:
            holders.setdefault(cls, []).append(g)
    for cls in sorted(totals, key=lambda c: (totals[c], c)):
        free = [g for g in holders[cls] if g not in out]
        if totals[cls] < min_count:
            warnings.append(f"class '{cls}' has only {totals[cls]} example(s) (< {min_count}): it "
                            "goes to train only; capture more calls of it to test it")
            for g in free:
                put(g, "train")
            continue
        for split in ("test", "val"):
            free = [g for g in holders[cls] if g not in out]
            if fractions[split] <= 0 or filled[split][cls] > 0:
                continue
            if len(free) < 2 and filled["train"][cls] == 0:
                if split == "test":
                    warnings.append(f"class '{cls}' ({totals[cls]} examples) sits in too few "
                                    "sessions/traces to appear in test as well as train; it "
                                    "goes to train")
                for g in free:
                    put(g, "train")
                break
            if free:
                put(free[0], split)

    for g in order:
        if g in out:
            continue
        best, best_score = "train", None
        for split in SPLITS:
            if fractions[split] <= 0:
                continue
            score = sum(n * (fractions[split] * totals[c] - filled[split][c]) / totals[c]
                        for c, n in groups[g].items())
            score += (fractions[split] * n_total - size[split]) / n_total
            if best_score is None or score > best_score:
                best, best_score = split, score
        put(g, best)
    return out, warnings


def class_counts(assignments: Iterable[tuple[str, str]]) -> dict[str, Counter[str]]:
    """Per split, how many examples of each class it got (for the report)."""
    out: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    for split, cls in assignments:
        out[split][cls] += 1
    return out
