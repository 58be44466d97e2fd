"""`curate`: from a task's calls in the store to a versioned, leak-free, trainer-ready dataset.

The loop, in order: stream the calls (`Store.iter_call_rows`, keyset batches) -> prepare each
one (`prepare`: filter with named reasons, build the example from request messages + label,
redact, format the line, digest and sign its input; in worker processes for large inputs, see
`parallel`) -> absorb them in input order (count, cluster duplicates, spool the line to disk
and keep a compact record). Then choose one example per cluster, group and split, copy the
chosen lines from the spool into the split files, and record the version in the store.

Memory: the examples themselves live in the spool file, never in memory. What is kept is O(n)
in compact records (per kept call: its id, session and trace ids, a spool offset, two 8-byte
digests, its class and a quality rank, about 300 bytes) plus O(clusters) MinHash signatures.
At 100,000 calls that is tens of megabytes.

Output is byte-identical for the same calls, seed and options, whatever the number of workers:
the call order is the store's (created_at, id) order (prepared calls are absorbed in that
order), the split order comes from a seeded hash, JSON keys are sorted and no timestamp is
written into the files (the creation time is in the store).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from fledgling.contracts import Contract, infer_contract, load_contract, save_contract
from fledgling.curate import registry
from fledgling.curate.dedupe import Deduper
from fledgling.curate.disagreement import DisagreementCheck, closed_fields
from fledgling.curate.formats import FORMATS, Format
from fledgling.curate.grounding import GroundingCheck
from fledgling.curate.label_noise import Member, choose, suspects
from fledgling.curate.parallel import auto_workers, chunk_size, prepared
from fledgling.curate.prepare import (
    CONSISTENCY,
    GROUNDING,
    LABEL_CHECKS,
    MODEL_DISAGREEMENT,
    QUALITY_CORRECTED,
    Prepared,
    PrepareOptions,
)
from fledgling.curate.registry import Dataset
from fledgling.curate.repeats import RepeatCheck
from fledgling.curate.report import GroundTruth
from fledgling.curate.splits import SPLITS, Groups, assign
from fledgling.errors import InputError, StoreError
from fledgling.store import CallFilter, Store

DEFAULT_ROOT = Path(".fledgling") / "datasets"
_BUFFER = 1 << 20
"""File buffer for the spool and the split files: lines are kilobytes, so 8 KiB would mean a
system call for nearly every line."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def curate(store: Store, task: str, *, seed: int = 0, val: float = 0.1, test: float = 0.2,
           near_dup_threshold: float = 0.9, fmt: Format = "chat", drop_label_noise: bool = False,
           keep_tool_failures: bool = False, label_checks: Sequence[str] = LABEL_CHECKS,
           drop_flagged: bool = False, out_dir: Path | None = None,
           progress: Callable[[int, int], None] | None = None, workers: int | None = None) -> Dataset:
    """Curate the calls of `task` into a new dataset version under `out_dir/<task>/v<N>/`.

    `workers` is the number of processes that prepare calls (0: this process; None: one per
    core for inputs of 5,000 calls or more, else 0); it changes the speed, never the output.
    `label_checks` (any of `LABEL_CHECKS`) look for well-formed wrong labels; what they find is
    flagged in the report, and with `drop_flagged` also left out of train and val (never out of
    test: the test items stay the same whatever the checks, so runs on them compare).
    `progress(done, total)` is called as calls are read. When the result is byte-identical to
    the latest version (same calls, same options), that version is returned (`new=False`)
    instead of a copy. Raises `InputError` for bad options or a task without calls; on any
    failure no version directory and no store row is left.
    """
    _check_options(val, test, near_dup_threshold, fmt, workers)
    checks = tuple(c for c in LABEL_CHECKS if c in label_checks)
    unknown = sorted(set(label_checks) - set(LABEL_CHECKS))
    if unknown:
        raise InputError(f"label check {', '.join(map(repr, unknown))} is not known; use any of "
                         f"{', '.join(LABEL_CHECKS)}")
    flt = CallFilter(task=task)
    total = store.count_calls(flt)
    if total == 0:
        known = ", ".join(t for t, _ in store.tasks()) or "none yet"
        raise InputError(f"task '{task}' has no calls in the store (tasks: {known}); "
                         "capture or import some first")
    contract = _contract(store, task, flt)
    root = Path(out_dir if out_dir is not None else DEFAULT_ROOT) / _SAFE_NAME.sub("_", task)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        run = _Run(contract, fmt, near_dup_threshold, checks)
        options = PrepareOptions.of(contract, fmt, drop_tool_failures=not keep_tool_failures,
                                    near_duplicates=near_dup_threshold < 1, label_checks=checks)
        n_workers = auto_workers(total) if workers is None else workers
        with open(work / "spool.jsonl", "wb", buffering=_BUFFER) as spool:
            for item in prepared(store.iter_call_rows(flt), options, n_workers,
                                 chunk=chunk_size(total, n_workers)):
                run.absorb(item, spool)
                if progress is not None and run.calls_in % 500 == 0:
                    progress(run.calls_in, total)
        if progress is not None:
            progress(run.calls_in, total)
        params = {"seed": seed, "val": val, "test": test, "near_dup_threshold": near_dup_threshold,
                  "format": fmt, "drop_label_noise": drop_label_noise,
                  "keep_tool_failures": keep_tool_failures, "label_checks": list(checks),
                  "drop_flagged": drop_flagged}
        report, items = run.finish(work, task=task, seed=seed, val=val, test=test,
                                   drop_label_noise=drop_label_noise, drop_flagged=drop_flagged,
                                   params=params)
        counts = {s: report["splits"][s]["examples"] for s in SPLITS}
        latest = registry.latest_version(store, task)
        previous = root / f"v{latest}" / "manifest.json"
        if latest and previous.is_file() and previous.read_bytes() == (work / "manifest.json").read_bytes():
            # Same calls, same options: the latest version already is this dataset.
            return Dataset(task=task, version=latest, path=previous.parent.resolve(), format=fmt,
                           seed=seed, contract_version=contract.version if contract else None,
                           counts=counts, report=report, new=False)
        version = max(latest, _latest_dir(root)) + 1
        final = root / f"v{version}"
        dataset = Dataset(task=task, version=version, path=final.resolve(), format=fmt, seed=seed,
                          contract_version=contract.version if contract else None, counts=counts,
                          report=report)
        (work / "spool.jsonl").unlink()
        try:
            with store.transaction() as conn:
                registry.record(store, dataset, params, items, conn=conn)
                os.rename(work, final)
        except Exception as exc:
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            if isinstance(exc, OSError):
                raise InputError(f"cannot write the dataset to {final}: {exc.strerror}; check "
                                 "that the directory is writable") from None
            raise StoreError(f"cannot record dataset {task} v{version} in the store: {exc}; "
                             "nothing was written, run curate again") from None
        return dataset
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_options(val: float, test: float, threshold: float, fmt: str, workers: int | None) -> None:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise InputError(f"--val {val} and --test {test} must be fractions in [0, 1) that leave "
                         "room for train (val + test < 1), e.g. --val 0.1 --test 0.2")
    if not 0 < threshold <= 1:
        raise InputError(f"--near-dup-threshold {threshold} must be in (0, 1]; 0.9 is a good "
                         "start, 1 turns near-duplicate detection off")
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not known; use one of {', '.join(FORMATS)}")
    if workers is not None and workers < 0:
        raise InputError(f"--workers {workers} must be 0 (prepare calls in this process) or more; "
                         "leave it out to choose by the number of calls and cores")


def _contract(store: Store, task: str, flt: CallFilter) -> Contract | None:
    """The task's latest contract; inferred from its calls (and saved) when there is none."""
    contract = load_contract(store, task)
    if contract is None:
        contract = infer_contract(store.iter_calls(flt), task)
        save_contract(store, contract)
    return contract


def _latest_dir(root: Path) -> int:
    versions = [int(p.name[1:]) for p in root.glob("v*") if p.name[1:].isdigit()]
    return max(versions, default=0)


class _Run:
    """The order-dependent part of one curation, and the compact state it keeps between passes."""

    def __init__(self, contract: Contract | None, fmt: Format, threshold: float,
                 checks: tuple[str, ...] = ()):
        self.contract = contract
        self.checks = checks
        self.grounding = GroundingCheck()
        self.repeats = RepeatCheck()
        self.model = DisagreementCheck(orders=closed_fields(contract))
        self.corrections: set[int] = set()
        """kept items whose label is a human correction: the checks never flag those"""
        self.kinds: list[tuple[object, bool] | None] = []
        """per kept item: (metadata llm_error, corrected) when the call carries ground truth"""
        self.fmt = fmt
        self.deduper = Deduper(threshold)
        self.calls_in = 0
        self.dropped: Counter[str] = Counter()
        self.redactions: Counter[str] = Counter()
        self.examples_redacted = 0
        self.corrected = 0
        self.truth = GroundTruth()
        self.call_ids: list[str] = []
        self.sessions: list[str | None] = []
        self.traces: list[str | None] = []
        self.offsets = array("q")
        self.spooled = 0
        self.clusters: dict[int, list[Member]] = {}

    def _flags(self, contradicted: set[int]) -> dict[int, tuple[str, str]]:
        """item -> (reason, what it saw), for the examples a label check finds suspect; the first
        check that applies names the reason, so the counts add up."""
        found: dict[str, dict[int, str]] = {
            GROUNDING: {i: "not in the conversation: " + ", ".join(f)
                        for i, f in self.grounding.flagged().items()} if GROUNDING in self.checks else {},
            CONSISTENCY: {i: "near-identical inputs answered otherwise" for i in contradicted}
            if CONSISTENCY in self.checks else {},
            MODEL_DISAGREEMENT: {i: "; ".join(f"{name}: {label} -> {other} ({p_other:.0%})"
                                            for name, label, other, _, p_other in self.model.evidence[i])
                                 for i in self.model.flagged()} if MODEL_DISAGREEMENT in self.checks else {},
        }
        flags: dict[int, tuple[str, str]] = {}
        for reason in LABEL_CHECKS:
            for item, detail in found[reason].items():
                if item not in self.corrections:
                    flags.setdefault(item, (reason, detail))
        return flags

    def _checks_report(self, flags: dict[int, tuple[str, str]], dropped: dict[str, Counter[str]],
                       drop: bool) -> dict[str, Any]:
        by_reason: Counter[str] = Counter(reason for reason, _ in flags.values())
        examples: dict[str, list[dict[str, str]]] = {}
        for item in sorted(flags):
            reason, detail = flags[item]
            rows = examples.setdefault(reason, [])
            if len(rows) < 20:
                rows.append({"call_id": self.call_ids[item], "why": detail})
        return {
            "checks": list(self.checks), "dropped": drop,
            "flagged": {r: by_reason[r] for r in LABEL_CHECKS if r in self.checks},
            "dropped_from": {s: dict(sorted(dropped[s].items())) for s in SPLITS if dropped[s]},
            "grounded_fields": {k: round(v, 4) for k, v in self.grounding.grounded_fields().items()},
            "copy_rules": self.grounding.copy_rules(),
            "call_rules": self.repeats.report(),
            "model_agreement": dict(sorted(self.model.agreement.items())),
            "examples": examples,
        }

    def absorb(self, p: Prepared, spool: Any) -> None:
        """Count one prepared call and, when it is kept, cluster it and spool its line."""
        self.calls_in += 1
        if p.reason is not None:
            if p.truth is not None:
                self.truth.add(p.truth[0], p.reason, p.corrected)
            self.dropped[p.reason] += 1
            return
        self.corrected += p.corrected
        if p.redactions:
            self.examples_redacted += 1
            self.redactions.update(p.redactions)
        item = len(self.call_ids)
        self.kinds.append((p.truth[0], p.corrected) if p.truth is not None else None)
        if p.corrected:
            self.corrections.add(item)
        if p.grounding:
            self.grounding.add(item, p.grounding)
        self.repeats.add(p.repeats)
        if p.features:
            self.model.add(item, p.features, p.decisions, p.session_id or p.trace_id or p.call_id)
        cluster = self.deduper.add(p.exact, p.signature)
        self.clusters.setdefault(cluster, []).append(Member(item, p.exact, p.answer, p.cls, p.quality, p.tail))
        self.call_ids.append(p.call_id)
        self.sessions.append(p.session_id)
        self.traces.append(p.trace_id)
        self.offsets.append(self.spooled)
        self.spooled += spool.write(p.line)

    def finish(self, work: Path, *, task: str, seed: int, val: float, test: float,
               drop_label_noise: bool, drop_flagged: bool,
               params: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, int, str]]]:
        """Choose, split and write the files; returns the report and the (split, line, call_id) items."""
        chosen: list[Member] = []
        noise_clusters = noise_calls = noise_dropped = multi = 0
        noise_examples: list[list[str]] = []
        suspect: set[int] = set()
        for cluster in sorted(self.clusters):
            members = self.clusters[cluster]
            multi += len(members) > 1
            choice = choose(members)
            if len(members) > 1:
                suspect.update(m.item for m in suspects(members) if m.quality < QUALITY_CORRECTED)
            if choice.noisy:
                noise_clusters += 1
                noise_calls += len(choice.disagreeing)
                if len(noise_examples) < 20:
                    noise_examples.append([self.call_ids[m.item] for m in members])
                if drop_label_noise and choice.representative.quality < QUALITY_CORRECTED:
                    noise_dropped += 1
                    continue
            chosen.append(choice.representative)
        chosen.sort(key=lambda m: m.item)
        flags = self._flags(suspect)
        for item, kind in enumerate(self.kinds):
            if kind is not None:
                self.truth.add(kind[0], None, kind[1], flagged=flags.get(item, (None,))[0])

        groups = Groups()
        for m in chosen:
            groups.link(self.call_ids[m.item], self.sessions[m.item], self.traces[m.item])
        group_classes: dict[str, Counter[str]] = {}
        for m in chosen:
            group_classes.setdefault(groups.of(self.call_ids[m.item]), Counter())[m.cls] += 1
        split_of, warnings = assign(group_classes, seed=seed, val=val, test=test)

        items: list[tuple[str, int, str]] = []
        flag_dropped: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        lines = dict.fromkeys(SPLITS, 0)
        classes: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        outs = {s: open(work / f"{s}.jsonl", "wb", buffering=_BUFFER) for s in SPLITS}
        ids_out = ({s: open(work / f"{s}.call_ids.txt", "w", encoding="utf-8") for s in SPLITS}
                   if self.fmt == "openai" else {})
        try:
            with open(work / "spool.jsonl", "rb", buffering=_BUFFER) as spool:
                for m in chosen:
                    call_id = self.call_ids[m.item]
                    split = split_of[groups.of(call_id)]
                    if drop_flagged and m.item in flags and split != "test":
                        flag_dropped[split][flags[m.item][0]] += 1
                        continue
                    start = self.offsets[m.item]
                    end = self.offsets[m.item + 1] if m.item + 1 < len(self.offsets) else None
                    spool.seek(start)
                    outs[split].write(spool.read(end - start) if end is not None else spool.read())
                    if ids_out:
                        ids_out[split].write(call_id + "\n")
                    items.append((split, lines[split], call_id))
                    lines[split] += 1
                    classes[split][m.cls] += 1
        finally:
            files: list[IO[Any]] = [*outs.values(), *ids_out.values()]
            for f in files:
                f.close()
        for cls in sorted({m.cls for m in chosen}):
            if lines["test"] and classes["test"][cls] == 0 and not any(cls in w for w in warnings):
                warnings.append(f"class '{cls}' has no example in test")

        group_count: Counter[str] = Counter(split_of.values())
        report = {
            "task": task,
            "contract_version": self.contract.version if self.contract else None,
            "params": params,
            "calls_in": self.calls_in,
            "dropped": dict(sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0]))),
            "corrected_labels": self.corrected,
            "redactions": {"examples": self.examples_redacted,
                           "by_type": dict(sorted(self.redactions.items()))},
            "duplicates": {"exact": self.deduper.exact_dups, "near": self.deduper.near_dups,
                           "clusters": multi, "threshold": self.deduper.threshold},
            "label_noise": {"clusters": noise_clusters, "calls": noise_calls,
                            "dropped": drop_label_noise, "clusters_dropped": noise_dropped,
                            "examples": noise_examples},
            "label_checks": self._checks_report(flags, flag_dropped, drop_flagged),
            "examples_out": sum(lines.values()),
            "splits": {s: {"examples": lines[s], "groups": group_count[s],
                           "classes": dict(sorted(classes[s].items()))} for s in SPLITS},
            "warnings": warnings,
            "ground_truth": self.truth.summary(),
        }
        _write_json(work / "report.json", report)
        manifest = {"task": task, "format": self.fmt, "seed": seed,
                    "contract_version": report["contract_version"], "params": params,
                    "files": {p.name: _file_info(p) for p in sorted(work.glob("*"))
                              if p.name != "spool.jsonl"}}
        _write_json(work / "manifest.json", manifest)
        return report, items


def _write_json(path: Path, obj: Any) -> None:
    path.write_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
                                  | orjson.OPT_APPEND_NEWLINE))


def _file_info(path: Path) -> dict[str, Any]:
    sha, lines, size = hashlib.sha256(), 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            lines += chunk.count(b"\n")
            size += len(chunk)
    return {"sha256": sha.hexdigest(), "lines": lines, "bytes": size}
