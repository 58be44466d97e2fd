"""The curation report: what went in, what was dropped and why, what came out.

Written as `report.json` beside the data (no timestamps, so the same curation gives the same
bytes) and shown as rich tables in the terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from fledgling.curate.splits import SPLITS


def ground_truth(tally: dict[str, Any]) -> dict[str, Any] | None:
    """Precision and recall of "dropped as bad" against planted errors, when calls carry them.

    `tally` holds tp/fp/fn/tn and per-kind planted/caught counts, gathered from calls whose
    metadata has an `llm_error` key (the demo generator's ground truth).
    """
    tp, fp, fn, tn = (tally.get(k, 0) for k in ("tp", "fp", "fn", "tn"))
    if tp + fp + fn + tn == 0:
        return None
    return {
        "calls_with_ground_truth": tp + fp + fn + tn, "planted_errors": tp + fn,
        "dropped_as_bad": tp + fp, "true_positives": tp, "false_positives": fp,
        "false_negatives": fn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "by_kind": {k: v for k, v in sorted(tally.get("by_kind", {}).items())},
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
        truth = Table(title="planted errors vs dropped as bad (ground truth in metadata)")
        for col in ("kind", "planted", "caught"):
            truth.add_column(col, justify="left" if col == "kind" else "right")
        for kind, row in gt["by_kind"].items():
            truth.add_row(kind, f"{row['planted']:,}", f"{row['caught']:,}")
        truth.add_section()
        fmt = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
        truth.add_row("[bold]precision / recall[/]", fmt(gt["precision"]), fmt(gt["recall"]))
        parts.append(truth)
    for warning in report["warnings"]:
        parts.append(f"[yellow]warning:[/] {warning}")
    return Group(*parts)
