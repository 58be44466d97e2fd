"""Model disagreement: labels that cross-validated models contradict with high confidence.

Confident learning (Northcutt et al., 2021) on a model cheap enough to train many times in a
curation run: a multinomial logistic regression over hashed word unigrams and bigrams, one
per *decision* the label makes — its class (which tool, or which structured class), and each
closed-set field (an `enum` or boolean argument, a structured field with an enum). Each model
is trained on `FOLDS - 1` folds and predicts the held-out fold, so every example is judged by a
model that never saw it; folds hold whole conversations (a hash of the session), and the cross-
validation is repeated `REPEATS` times with other folds, the probabilities averaged. An example
labelled `i` is flagged when the models are confident in another value `j`: for the class
(which tool, or a text answer) p(j) >= `CLASS_CONFIDENCE` and p(i) < `CLASS_GIVEN`; for a
field, p(j) >= `MIN_CONFIDENCE` and p(i) < `MAX_GIVEN`. The thresholds were chosen on the demo
traffic of seeds 1-3 (docs/curation.md): the class's wrong labels (a text that only says "let
me check", the wrong tool) sit at 70-90%, a field's at the edge of what the model can learn.

The features say what the agent reacts to: the words of the last user message (`u:`), of what
came after it in the turn (tool calls and results, `a:`), and the roles of those messages.
Digits become 0 (an order number is a shape, not a word). Cost: O(examples x features x
values) per step of full-batch Adam; on the demo's thousand examples, a second or two in all.
Below `MIN_EXAMPLES` examples, or for a decision with one value, nothing is judged.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from fledgling.contracts import Contract
from fledgling.curate.grounding import field_values

FOLDS = 5
REPEATS = 3
"""cross-validation is repeated with this many fold assignments and the held-out probabilities
averaged: one assignment's luck (which neighbours a call is held out with) moved single seeds'
recall by up to 7 points"""
DIM = 1 << 16
L2 = 1.0
MIN_EXAMPLES = 50
MIN_PER_VALUE = 3
MIN_CONFIDENCE = 0.9
MAX_GIVEN = 0.05
MIN_AGREEMENT = 0.95
CLASS_CONFIDENCE, CLASS_GIVEN = 0.7, 0.15
ITERATIONS = 300
STEP = 0.1
CLASS = "class"

_TOKEN = re.compile(r"[a-z0-9_]+")


def features(messages: list[dict[str, Any]]) -> bytes:
    """The hashed features of one input, as sorted unique uint32 bytes (compact, picklable)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    tokens: list[str] = []
    if last_user >= 0:
        tokens += _grams("u", _text(messages[last_user]))
    after = messages[last_user + 1:]
    tokens.append("n_after:" + str(min(len(after), 3)))
    for m in after:
        tokens.append("role:" + str(m.get("role")))
        tokens += _grams("a", _text(m))
    if messages:
        tokens.append("last:" + str(messages[-1].get("role")))
    ids = np.unique(np.fromiter((zlib.crc32(t.encode()) % DIM for t in tokens), dtype=np.uint32,
                                count=len(tokens)))
    return ids.tobytes()


def closed_fields(contract: Contract | None) -> dict[str, tuple[str, ...]]:
    """The contract's closed-set fields (named as `grounding.field_values` names them), each
    with its values as JSON text in schema order (booleans: false, true)."""
    out: dict[str, tuple[str, ...]] = {}
    if contract is None:
        return out
    for tool in contract.tools:
        _closed(tool.parameters, tool.name, out)
    if contract.output_schema:
        _closed(contract.output_schema, "$", out)
    return out


def decisions(answer: dict[str, Any], cls: str, closed: Collection[str]) -> tuple[tuple[str, str], ...]:
    """The `(decision, value)` pairs of one label: its class, and each closed-set field in it
    (`closed`: the names `closed_fields` gives; other booleans count too)."""
    values: dict[str, list[str]] = {}
    for name, value in field_values(answer):
        if name in closed or isinstance(value, bool):
            values.setdefault(name, []).append(orjson.dumps(value).decode())
    return ((CLASS, cls), *((name, "+".join(sorted(v))) for name, v in sorted(values.items())))


@dataclass
class DisagreementCheck:
    """Collects features and decisions per kept example, then judges them out of fold."""

    orders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """decision -> its values in schema order (`closed_fields`): such a decision may also be
    judged as ordered (see `_ordinal`), when that agrees with more labels"""
    folds: int = FOLDS
    repeats: int = REPEATS
    items: list[int] = field(default_factory=list)
    rows: list[bytes] = field(default_factory=list)
    labels: list[dict[str, str]] = field(default_factory=list)
    evidence: dict[int, list[tuple[str, str, str, float, float]]] = field(default_factory=dict)
    """item -> (decision, label, the value the models are confident in, p(label), p(value))"""
    agreement: dict[str, float] = field(default_factory=dict)
    """decision -> share of labels the out-of-fold models agree with (set by `flagged`)"""

    groups: list[str | None] = field(default_factory=list)
    """per example, what it is grouped by (its session): a group is held out whole"""

    def add(self, item: int, feats: bytes, pairs: Iterable[tuple[str, str]], group: str | None = None) -> None:
        """One kept example; `group` (its session or trace) keeps the examples of one conversation
        in one fold, so no model judges a call after training on its conversation's other calls.
        Folds are a hash of the group (else of the example's position), never the order calls
        arrive in."""
        self.items.append(item)
        self.rows.append(feats)
        self.labels.append(dict(pairs))
        self.groups.append(group)

    def flagged(self) -> dict[int, list[str]]:
        """item -> the decisions whose label the out-of-fold models contradict."""
        n = len(self.items)
        if n < MIN_EXAMPLES:
            return {}
        x = _matrix(self.rows)
        keys = [g if g is not None else f"#{i}" for i, g in enumerate(self.groups)]
        folds = np.array([[zlib.crc32(f"{r}/{key}".encode()) % self.folds for key in keys]
                          for r in range(self.repeats)], dtype=np.intp)
        out: dict[int, list[str]] = {}
        names = sorted({d for lab in self.labels for d in lab}, key=lambda d: (d == CLASS, d))
        seen: set[bytes] = set()
        for name in names:
            rows = np.array([i for i, lab in enumerate(self.labels) if name in lab], dtype=np.intp)
            values = [self.labels[i][name] for i in rows]
            kinds, y = np.unique(np.array(values, dtype=object), return_inverse=True)
            counts = np.bincount(y, minlength=len(kinds))
            partition = rows.tobytes() + y.astype(np.int32).tobytes()
            if len(kinds) < 2 or len(rows) < MIN_EXAMPLES or partition in seen:
                continue  # nothing to judge, or the same decision under another name (a class field)
            seen.add(partition)
            probs = np.mean([_out_of_fold(x[rows], y, fold[rows], len(kinds)) for fold in folds], axis=0)
            agreement = float((probs.argmax(axis=1) == y).mean())
            order = self.orders.get(name, ())
            if len(order) >= 3 and set(kinds) <= set(order):
                ranked = np.mean([_ordinal(x[rows], y, fold[rows], [order.index(k) for k in kinds])
                                  for fold in folds], axis=0)
                ranked_agreement = float((ranked.argmax(axis=1) == y).mean())
                if ranked_agreement > agreement:
                    probs, agreement = ranked, ranked_agreement
            self.agreement[name] = round(agreement, 4)
            if agreement < MIN_AGREEMENT:
                continue  # a decision the cheap model cannot make: its contradictions mean little
            given = probs[np.arange(len(rows)), y]
            at_least, at_most = (CLASS_CONFIDENCE, CLASS_GIVEN) if name == CLASS else (MIN_CONFIDENCE, MAX_GIVEN)
            confident = (probs >= at_least) & (counts >= MIN_PER_VALUE)
            confident[np.arange(len(rows)), y] = False
            hit = confident.any(axis=1) & (given < at_most)
            for r in np.flatnonzero(hit):
                out.setdefault(self.items[rows[r]], []).append(name)
                other = np.where(confident[r], probs[r], -1.0)
                self.evidence.setdefault(self.items[rows[r]], []).append(
                    (name, kinds[y[r]], kinds[int(other.argmax())], round(float(given[r]), 3),
                     round(float(other.max()), 3)))
        return out


def _out_of_fold(x: Any, y: np.ndarray, fold: np.ndarray, k: int) -> np.ndarray:
    probs = np.zeros((len(y), k))
    for f in np.unique(fold):
        test = fold == f
        train = ~test
        if len(np.unique(y[train])) < 2:
            probs[test] = np.bincount(y[train], minlength=k) / max(int(train.sum()), 1)
            continue
        w = _fit(x[train], y[train], k)
        probs[test] = _softmax(x[test] @ w[:-1] + w[-1])
    return probs


def _ordinal(x: Any, y: np.ndarray, fold: np.ndarray, rank: list[int]) -> np.ndarray:
    """Out-of-fold probabilities of an ordered decision (Frank and Hall, 2001): one binary model
    per cut "above value j", P(j) = P(above j-1) - P(above j). A cue that raises any value by
    one level ("this is urgent!") is one weight here, while the unordered model needs it in
    every pair of neighbouring values."""
    k = len(rank)
    ranks = np.asarray(rank)[y]
    levels = sorted(set(rank))
    above = np.ones((len(y), len(levels) + 1))
    above[:, -1] = 0.0
    for j, level in enumerate(levels[:-1], start=1):
        above[:, j] = _out_of_fold(x, (ranks > level).astype(np.intp), fold, 2)[:, 1]
    above[:, 1:-1] = np.minimum.accumulate(above[:, 1:-1], axis=1)
    by_level = np.clip(above[:, :-1] - above[:, 1:], 0.0, None)
    by_level /= np.maximum(by_level.sum(axis=1, keepdims=True), 1e-12)
    probs = np.zeros((len(y), k))
    for col, r in enumerate(rank):
        probs[:, col] = by_level[:, levels.index(r)]
    return probs


def _fit(x: Any, y: np.ndarray, k: int) -> np.ndarray:
    """Softmax regression (weights and a bias row) by full-batch Adam: binary features of very
    different frequencies make plain gradient descent crawl; per-weight steps do not."""
    n, d = x.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    w = np.zeros((d + 1, k))
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    beta1, beta2 = 0.9, 0.999
    for t in range(1, ITERATIONS + 1):
        g = _softmax(x @ w[:-1] + w[-1]) - onehot
        grad = np.vstack([np.asarray(x.T @ g), g.sum(axis=0)]) / n
        grad[:-1] += L2 / n * w[:-1]
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        w -= STEP * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + 1e-8)
    return w


def _matrix(rows: list[bytes]) -> Any:
    """Binary features as a CSR matrix, with the columns at least two rows use (a feature seen
    once, a name or a ticket number, says nothing about other examples)."""
    from scipy.sparse import csr_matrix

    cols = [np.frombuffer(r, dtype=np.uint32) for r in rows]
    every = np.concatenate(cols) if cols else np.zeros(0, np.uint32)
    used, counts = np.unique(every, return_counts=True)
    keep = used[counts >= 2]
    kept = [np.searchsorted(keep, c[np.isin(c, keep)]) for c in cols]
    indptr = np.zeros(len(rows) + 1, dtype=np.intp)
    np.cumsum([len(c) for c in kept], out=indptr[1:])
    indices = np.concatenate(kept) if kept else np.zeros(0, np.intp)
    return csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), max(len(keep), 1)))


def _closed(schema: Any, path: str, out: dict[str, tuple[str, ...]]) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("enum"), list):
        out[path] = tuple(orjson.dumps(v).decode() for v in schema["enum"])
    elif "const" in schema:
        out[path] = (orjson.dumps(schema["const"]).decode(),)
    elif schema.get("type") == "boolean":
        out[path] = ("false", "true")
    for k, sub in (schema.get("properties") or {}).items():
        _closed(sub, f"{path}.{k}", out)
    if isinstance(schema.get("items"), dict):
        _closed(schema["items"], path, out)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            _closed(sub, path, out)


def _softmax(z: Any) -> np.ndarray:
    z = np.asarray(z)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _grams(prefix: str, text: str) -> list[str]:
    words = _TOKEN.findall(re.sub(r"\d", "0", text.lower()))
    return [f"{prefix}:{w}" for w in words] + [f"{prefix}:{a}_{b}" for a, b in zip(words, words[1:], strict=False)]


def _text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    parts = [content if isinstance(content, str) else ""]
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        parts.append(f"{fn.get('name', '')} {args if isinstance(args, str) else orjson.dumps(args).decode()}")
    return " ".join(parts)
