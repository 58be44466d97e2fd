"""Duplicate inputs: exact (after normalisation) and near (MinHash + LSH over character shingles).

Examples arrive one at a time; each joins the cluster of an earlier example with the same
normalised input, or of the most similar earlier cluster anchor whose estimated Jaccard
similarity reaches the threshold, or starts a cluster of its own. Which member of a cluster is
kept is decided later (`label_noise.choose`), once the whole cluster is known.

Memory: one dict entry per distinct exact input (an 8-byte digest), and per cluster one
MinHash signature (`NUM_PERM` 32-bit values) plus its LSH band entries. That is O(clusters), a
few hundred bytes each; the examples themselves are never held.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from dataclasses import dataclass, field

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 64
SHINGLE = 5
MAX_CHARS = 4000
"""Longer texts are shingled on their first and last MAX_CHARS/2 characters (bounded cost)."""

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s<>]")


def normalise(text: str) -> str:
    """Case, whitespace and punctuation do not make an input different."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


@dataclass
class Deduper:
    """Assigns each example to a duplicate cluster; a cluster is named by its first example."""

    threshold: float = 0.9
    exact_dups: int = 0
    near_dups: int = 0
    cluster_of: array = field(default_factory=lambda: array("q"))

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError("the near-duplicate threshold must be in (0, 1]")
        self._exact: dict[bytes, int] = {}
        self._template = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=zlib.crc32)
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM) if self.threshold < 1 else None
        self._anchors: dict[int, np.ndarray] = {}

    def add(self, exact_key: bytes, text: str) -> int:
        """Cluster of the next example, given its exact-input digest and its normalised text."""
        item = len(self.cluster_of)
        cluster = self._exact.get(exact_key)
        if cluster is not None:
            self.exact_dups += 1
        elif self._lsh is not None and len(text) >= SHINGLE:
            signature = self._signature(text)
            cluster = self._nearest(signature)
            if cluster is not None:
                self.near_dups += 1
            else:
                cluster = item
                self._lsh.insert(cluster, signature)
                self._anchors[cluster] = signature.hashvalues.astype(np.uint32)
            self._exact[exact_key] = cluster
        else:
            cluster = self._exact[exact_key] = item
        self.cluster_of.append(cluster)
        return cluster

    def _signature(self, text: str) -> MinHash:
        if len(text) > MAX_CHARS:
            text = text[: MAX_CHARS // 2] + " " + text[-MAX_CHARS // 2:]
        shingles = {text[i:i + SHINGLE].encode() for i in range(len(text) - SHINGLE + 1)}
        mh = MinHash(num_perm=NUM_PERM, permutations=self._template.permutations,
                     hashfunc=zlib.crc32, scheme=self._template.scheme)
        mh.update_batch(sorted(shingles))
        return mh

    def _nearest(self, signature: MinHash) -> int | None:
        assert self._lsh is not None
        best, best_sim = None, -1.0
        values = signature.hashvalues.astype(np.uint32)
        for candidate in sorted(self._lsh.query(signature)):
            sim = float(np.count_nonzero(self._anchors[candidate] == values)) / NUM_PERM
            if sim >= self.threshold and sim > best_sim:
                best, best_sim = candidate, sim
        return best
