"""Duplicate inputs: exact (after normalisation) and near (MinHash + LSH over byte shingles).

Examples arrive one at a time; each joins the cluster of an earlier example with the same
normalised input, or of the most similar earlier cluster anchor whose estimated Jaccard
similarity reaches the threshold, or starts a cluster of its own. Which member of a cluster is
kept is decided later (`label_noise.choose`), once the whole cluster is known.

Signatures are computed with numpy (5-byte shingles of the UTF-8 text, `NUM_PERM` seeded
affine hash functions, the minimum of each), which is several times faster than feeding
shingles one by one. `signature` is pure, so it runs where the call is prepared (possibly a
worker process) and `Deduper.add` receives it ready-made, as bytes.

The LSH index uses the banding datasketch's `MinHashLSH` chooses for the threshold (b bands of
r values; 3 x 21 for 0.9): an anchor is a candidate when one of its bands equals the query's.
The bands are plain dicts keyed by the band's bytes and the anchors' signatures one numpy
matrix, so a query compares all its candidates in one operation; at 100,000 calls this is
several times cheaper than going through `MinHashLSH` objects, with the same candidates.

Memory: one dict entry per distinct exact input (an 8-byte digest), and per cluster one
MinHash signature (`NUM_PERM` 32-bit values) plus its band entries. That is O(clusters), a
few hundred bytes each; the examples themselves are never held.
"""

from __future__ import annotations

import hashlib
import string
from array import array
from dataclasses import dataclass, field

import numpy as np

NUM_PERM = 64
SHINGLE = 5
MAX_BYTES = 2000
"""Longer texts are shingled on their first and last MAX_BYTES/2 bytes (bounded cost)."""

_rng = np.random.RandomState(20260301)
_A = _rng.randint(1, 2**32, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)
_B = _rng.randint(0, 2**32, size=NUM_PERM, dtype=np.uint64)
_A32, _B32 = _A.astype(np.uint32), _B.astype(np.uint32)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_WINDOW_PAD = bytes(8 - SHINGLE)
_WINDOW_SHIFT = np.uint64(8 * (8 - SHINGLE))

_PUNCT = str.maketrans({ch: " " for ch in string.punctuation if ch not in "<>_"})


def normalise(text: str) -> str:
    """Case, whitespace and ASCII punctuation do not make an input different."""
    return " ".join(text.lower().translate(_PUNCT).split())


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
        self._bands: list[tuple[int, int, dict[bytes, list[int]]]] = []
        if self.threshold < 1:
            # datasketch imports scipy (most of a second): only here, so worker processes,
            # which only sign texts, start faster under spawn and forkserver.
            from datasketch import MinHashLSH

            ranges = MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM).hashranges
            self._bands = [(4 * start, 4 * end, {}) for start, end in ranges]
        self._anchor_sigs = np.empty((1024, NUM_PERM), dtype=np.uint32)
        self._anchor_clusters: list[int] = []

    def add(self, exact_key: bytes, sig: bytes | None) -> int:
        """Cluster of the next example, given its exact-input digest and its `signature` bytes
        (None: no near-duplicate check, e.g. for a text shorter than a shingle)."""
        item = len(self.cluster_of)
        cluster = self._exact.get(exact_key)
        if cluster is not None:
            self.exact_dups += 1
        elif self._bands and sig is not None:
            cluster = self._nearest(sig)
            if cluster is not None:
                self.near_dups += 1
            else:
                cluster = item
                self._insert(cluster, sig)
            self._exact[exact_key] = cluster
        else:
            cluster = self._exact[exact_key] = item
        self.cluster_of.append(cluster)
        return cluster

    def _nearest(self, sig: bytes) -> int | None:
        """The anchor most similar to `sig` among the candidates, if similar enough; the
        earliest one among equals."""
        rows: set[int] = set()
        for start, end, table in self._bands:
            bucket = table.get(sig[start:end])
            if bucket:
                rows.update(bucket)
        if not rows:
            return None
        candidates = np.fromiter(sorted(rows), dtype=np.intp, count=len(rows))
        values = np.frombuffer(sig, dtype=np.uint32)
        same = np.count_nonzero(self._anchor_sigs[candidates] == values, axis=1)
        best = int(np.argmax(same))  # the first maximum: the earliest anchor
        if same[best] / NUM_PERM >= self.threshold:
            return self._anchor_clusters[candidates[best]]
        return None

    def _insert(self, cluster: int, sig: bytes) -> None:
        row = len(self._anchor_clusters)
        if row == len(self._anchor_sigs):
            self._anchor_sigs = np.concatenate([self._anchor_sigs, np.empty_like(self._anchor_sigs)])
        self._anchor_sigs[row] = np.frombuffer(sig, dtype=np.uint32)
        self._anchor_clusters.append(cluster)
        for start, end, table in self._bands:
            table.setdefault(sig[start:end], []).append(row)


def signature(text: str) -> np.ndarray:
    """The MinHash signature (NUM_PERM uint32 values) of a text's 5-byte shingles.

    Each shingle is read as a big-endian integer straight from the bytes (a strided view of
    overlapping 8-byte windows, shifted), and the affine hashes are computed modulo 2**32 in
    uint32 arithmetic, which wraps exactly like the 64-bit product masked to 32 bits.
    """
    data = text.encode()
    if len(data) > MAX_BYTES:
        data = data[: MAX_BYTES // 2] + data[-MAX_BYTES // 2:]
    n = len(data) - SHINGLE + 1
    raw = np.frombuffer(data + _WINDOW_PAD, dtype=np.uint8)
    windows = np.ndarray((n,), dtype=">u8", buffer=raw, strides=(1,))
    hashed = (((windows >> _WINDOW_SHIFT) * _GOLDEN) >> np.uint64(32)).astype(np.uint32)
    return (_A32[:, None] * hashed[None, :] + _B32[:, None]).min(axis=1)
