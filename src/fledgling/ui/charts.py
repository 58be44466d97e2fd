"""Inline SVG charts, computed on the server: no chart library, no script, CSP-clean.

The loss curve of a training run comes from the Hugging Face trainer's own log
(`trainer_state.json` in the newest checkpoint under the run directory) plus the live
`train_runs` row for the latest point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINTS_DIR = "checkpoints"  # where the lora/unsloth backends keep HF checkpoints


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]


@dataclass
class Chart:
    width: int
    height: int
    series: list[tuple[Series, str]]  # (series, polyline points attribute)
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    left: int
    bottom: int
    right: int
    top: int


def loss_history(run_dir: str | Path, step: int | None = None, loss: float | None = None) -> list[Series]:
    """Train loss and val loss per step, from the newest checkpoint's log plus the live value."""
    train: list[tuple[float, float]] = []
    val: list[tuple[float, float]] = []
    state = _newest_trainer_state(Path(run_dir))
    for entry in (state or {}).get("log_history", []):
        if "step" not in entry:
            continue
        if isinstance(entry.get("loss"), (int, float)):
            train.append((float(entry["step"]), float(entry["loss"])))
        if isinstance(entry.get("eval_loss"), (int, float)):
            val.append((float(entry["step"]), float(entry["eval_loss"])))
    if step is not None and loss is not None and (not train or step > train[-1][0]):
        train.append((float(step), float(loss)))
    out = [Series("train loss", train)]
    if val:
        out.append(Series("val loss", val))
    return out


def line_chart(series: list[Series], width: int = 640, height: int = 220) -> Chart | None:
    """Scale the series into an SVG box with axes and a few ticks; None until a line can be drawn."""
    pts = [p for s in series for p in s.points]
    if len({p[0] for p in pts}) < 2:
        return None
    left, right, top, bottom = 48, 12, 10, 26
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = 0.0, max(p[1] for p in pts) * 1.05 or 1.0
    if x1 == x0:
        x1 = x0 + 1
    iw, ih = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * iw

    def sy(y: float) -> float:
        return top + ih - (y - y0) / (y1 - y0) * ih

    drawn = [(s, " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)) for s in series if s.points]
    steps = sorted({round(x0 + (x1 - x0) * i / 4) for i in range(5)})
    x_ticks = [(sx(x), str(x)) for x in steps]
    y_ticks = [(sy(y1 * i / 4), f"{y1 * i / 4:.2f}") for i in range(5)]
    return Chart(width, height, drawn, x_ticks, y_ticks, left, height - bottom, width - right, top)


def _newest_trainer_state(run_dir: Path) -> dict[str, Any] | None:
    ckpts = sorted((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*/trainer_state.json"),
                   key=lambda p: _step_of(p.parent.name))
    if not ckpts:
        return None
    try:
        return json.loads(ckpts[-1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _step_of(name: str) -> int:
    try:
        return int(name.rsplit("-", 1)[-1])
    except ValueError:
        return -1
