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
    """How the filters did against planted errors, for calls whose metadata names them.

    The demo generator (and any labelled traffic) sets `metadata.llm_error` to None for a good
    answer and to the kind of mistake otherwise. "Dropped as bad" means dropped for a reason
    that judges the answer (error, truncated, contract, negative feedback); `tool_failed` judges
    the conversation, not the answer, so it is counted apart and left out of precision/recall.
    A planted mistake whose label was replaced by a correction is not in the data either; it is
    counted as corrected.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, kind: object, reason: str | None, corrected: bool) -> None:
        bad = reason is not None and reason != TOOL_FAILED
        if kind:
            row = self.by_kind.setdefault(str(kind), {"planted": 0, "dropped": 0, "corrected": 0,
                                                      "tool_failed": 0})
            row["planted"] += 1
            row["dropped"] += bad
            row["corrected"] += corrected
            row["tool_failed"] += reason == TOOL_FAILED
            if bad:
                self.tp += 1
            else:
                self.fn += 1
        elif bad:
            self.fp += 1
        else:
            self.tn += 1

    def summary(self) -> dict[str, Any] | None:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        if tp + fp + fn + tn == 0:
            return None
        planted = tp + fn
        handled = sum(r["dropped"] + r["corrected"] + r["tool_failed"] for r in self.by_kind.values())
        return {
            "calls_with_ground_truth": tp + fp + fn + tn, "planted_errors": planted,
            "dropped_as_bad": tp + fp, "true_positives": tp, "false_positives": fp,
            "false_negatives": fn,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / planted, 4) if planted else None,
            "planted_kept_out": round(handled / planted, 4) if planted else None,
            "by_kind": {k: v for k, v in sorted(self.by_kind.items())},
        }


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

    gt = report.get("ground_truth")
    if gt:
        truth = Table(title="planted errors (metadata.llm_error) vs what curation did")
        for col in ("kind", "planted", "dropped as bad", "corrected", "tool_failed"):
            truth.add_column(col, justify="left" if col == "kind" else "right")
        for kind, row in gt["by_kind"].items():
            truth.add_row(kind, *[f"{row[k]:,}" for k in ("planted", "dropped", "corrected", "tool_failed")])
        truth.add_section()
        truth.add_row("[bold]precision / recall of dropped as bad[/]", _pct(gt["precision"]),
                      _pct(gt["recall"]), "", "")
        truth.add_row("[bold]planted errors kept out of the labels[/]", _pct(gt["planted_kept_out"]),
                      "", "", "")
        parts.append(truth)
    for warning in report["warnings"]:
        parts.append(f"[yellow]warning:[/] {warning}")
    return Group(*parts)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
