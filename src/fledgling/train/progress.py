"""The terminal view of a training run: one rich progress bar with state, epoch, loss, val loss."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TerminalView:
    """Use as a context manager; `StoreReporter` forwards every update here."""

    def __init__(self, console: Console | None = None, title: str = "train"):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=console, transient=False)
        self.task = self.progress.add_task(title, total=None, status="starting")
        self.fields: dict[str, Any] = {"state": "starting"}
        self._started = False

    def __enter__(self) -> TerminalView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.progress.stop()

    def update(self, *, step: int | None = None, total_steps: int | None = None,
               epoch: float | None = None, loss: float | None = None,
               metrics: dict[str, Any] | None = None, state: str | None = None,
               message: str | None = None) -> None:
        if not self._started:  # the bar appears when the run does, not before a failed start
            self.progress.start()
            self._started = True
        if state is not None:
            self.fields["state"] = state
        if epoch is not None:
            self.fields["epoch"] = epoch
        if loss is not None:
            self.fields["loss"] = loss
        if metrics and "eval_loss" in metrics:
            self.fields["val"] = metrics["eval_loss"]
        kwargs: dict[str, Any] = {"status": self._status()}
        if total_steps is not None:
            kwargs["total"] = total_steps
        if step is not None:
            kwargs["completed"] = step
        self.progress.update(self.task, **kwargs)
        if message is not None and state is None:
            self.progress.console.log(message)

    def _status(self) -> str:
        parts = [self.fields["state"]]
        if "epoch" in self.fields:
            parts.append(f"epoch {self.fields['epoch']:.2f}")
        if "loss" in self.fields:
            parts.append(f"loss {self.fields['loss']:.4f}")
        if "val" in self.fields:
            parts.append(f"val {self.fields['val']:.4f}")
        return " · ".join(parts)
