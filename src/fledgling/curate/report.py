"""The curation report: what went in, what was dropped and why, what came out.

Written as `report.json` beside the data (no timestamps, so the same curation gives the same
bytes) and shown as rich tables in the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table

from fledgling.curate.filters import TOOL_FAILED
from fledgling.curate.splits import SPLITS


@dataclass
class GroundTruth:
    """How curation did against planted errors, for calls whose metadata names them.

    The demo generator (and any labelled traffic) sets `metadata.llm_error` to None for a good
    answer and to the kind of mistake otherwise. A call is *caught* when it is dropped for a
    reason that judges the answer (error, truncated, contract, negative feedback) or flagged by
    a label check (grounding, consistency, model disagreement). `tool_failed` judges the
    conversation, not the answer, so it is counted apart and left out of precision and recall.
    A planted mistake whose label was replaced by a human correction has a right label: it
    counts as a good call (caught, it is a false alarm), and is shown as corrected.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    tool_failed: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    by_reason: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, kind: object, reason: str | None, corrected: bool, *, flagged: str | None = None) -> None:
        dropped = reason is not None and reason != TOOL_FAILED
        caught = dropped or flagged is not None
        if kind:
            row = self.by_kind.setdefault(str(kind), {"planted": 0, "dropped": 0, "flagged": 0,
                                                      "corrected": 0, "tool_failed": 0})
            row["planted"] += 1
            row["dropped"] += dropped
            row["flagged"] += flagged is not None
            row["corrected"] += corrected
            row["tool_failed"] += reason == TOOL_FAILED
        if reason == TOOL_FAILED:
            self.tool_failed += 1
            return
        wrong = bool(kind) and not corrected
        why = flagged if flagged is not None else reason
        if why is not None:
            hits = self.by_reason.setdefault(why, {"wrong_labels": 0, "false_alarms": 0})
            hits["wrong_labels" if wrong else "false_alarms"] += 1
        if wrong:
            self.tp += caught
            self.fn += not caught
        else:
            self.fp += caught
            self.tn += not caught

    def summary(self) -> dict[str, Any] | None:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        tool_failed = self.tool_failed
        if tp + fp + fn + tn + tool_failed == 0:
            return None
        planted = sum(r["planted"] for r in self.by_kind.values())
        handled = sum(r["dropped"] + r["flagged"] + r["corrected"] + r["tool_failed"]
                      for r in self.by_kind.values())
        return {
            "calls_with_ground_truth": tp + fp + fn + tn + tool_failed, "planted_errors": planted,
            "wrong_labels": tp + fn, "caught": tp + fp, "true_positives": tp, "false_positives": fp,
            "false_negatives": fn,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "planted_kept_out": round(handled / planted, 4) if planted else None,
            "by_kind": {k: {**v, "recall": _share(v["dropped"] + v["flagged"],
                                                  v["planted"] - v["corrected"] - v["tool_failed"])}
                        for k, v in sorted(self.by_kind.items())},
            "by_reason": dict(sorted(self.by_reason.items())),
        }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def render(report: dict[str, Any]) -> Group:
    """The report as terminal tables."""
    summary = Table(title=f"curation of '{report['task']}'", show_header=False)
    summary.add_column("what")
    summary.add_column("n", justify="right")
    summary.add_row("calls in", f"{report['calls_in']:,}")
    for reason, n in report["dropped"].items():
        summary.add_row(f"  dropped: {reason}", f"[red]{n:,}[/]")
    summary.add_row("labels from corrected feedback", f"{report['corrected_labels']:,}")
    dup = report["duplicates"]
    summary.add_row("duplicates removed (exact / near)", f"{dup['exact']:,} / {dup['near']:,}")
    summary.add_row("duplicate clusters (size > 1)", f"{dup['clusters']:,}")
    noise = report["label_noise"]
    summary.add_row("label-noise clusters flagged" + (" (dropped)" if noise["dropped"] else ""),
                    f"{noise['clusters']:,} ({noise['calls']:,} calls)")
    redactions = report["redactions"]
    summary.add_row("examples with redactions", f"{redactions['examples']:,}")
    for kind, n in redactions["by_type"].items():
        summary.add_row(f"  redacted: {kind}", f"{n:,}")
    summary.add_row("[bold]examples out[/]", f"[bold]{report['examples_out']:,}[/]")

    per_class = Table(title="examples per class and split")
    per_class.add_column("class")
    for split in SPLITS:
        per_class.add_column(split, justify="right")
    classes = sorted({c for s in SPLITS for c in report["splits"][s]["classes"]})
    for cls in classes:
        per_class.add_row(cls, *[f"{report['splits'][s]['classes'].get(cls, 0):,}" for s in SPLITS])
    per_class.add_section()
    per_class.add_row("[bold]all[/]", *[f"[bold]{report['splits'][s]['examples']:,}[/]" for s in SPLITS])
    parts: list[Any] = [summary, per_class]

    checks = report.get("label_checks")
    if checks and checks["checks"]:
        table = Table(title="label checks: well-formed answers that look wrong"
                      + (" (dropped from train and val)" if checks["dropped"] else " (flagged, kept)"))
        table.add_column("reason")
        table.add_column("flagged", justify="right")
        table.add_column("dropped", justify="right")
        for reason, n in checks["flagged"].items():
            dropped = sum(s.get(reason, 0) for s in checks["dropped_from"].values())
            table.add_row(reason, f"{n:,}", f"{dropped:,}")
        parts.append(table)

    gt = report.get("ground_truth")
    if gt:
        truth = Table(title="planted errors (metadata.llm_error) vs what curation did")
        cols = ("planted", "dropped", "flagged", "corrected", "tool_failed")
        for col in ("kind", "planted", "dropped as bad", "flagged", "corrected", "tool_failed", "recall"):
            truth.add_column(col, justify="left" if col == "kind" else "right")
        for kind, row in gt["by_kind"].items():
            truth.add_row(kind, *[f"{row.get(k, 0):,}" for k in cols], _pct(row.get("recall")))
        truth.add_section()
        truth.add_row("[bold]dropped or flagged as bad: precision / recall[/]", _pct(gt["precision"]),
                      _pct(gt["recall"]), f"{gt['true_positives']} of {gt['wrong_labels']} wrong labels", "",
                      f"{gt['false_positives']} false alarms", "")
        truth.add_row("[bold]planted errors kept out of the labels[/]", _pct(gt["planted_kept_out"]),
                      "", "", "", "", "")
        parts.append(truth)
    for warning in report["warnings"]:
        parts.append(f"[yellow]warning:[/] {warning}")
    return Group(*parts)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
