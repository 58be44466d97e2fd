"""Live figures per task, kept in memory by the gateway: share served by the candidate,
fallbacks by reason, shadow agreement, latency, cost saved. `GET /admin/swap` shows them, the
demo prints them; every number is also derivable from the recorded calls' metadata."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from fledgling.evals.stats import percentile


@dataclass
class TaskFigures:
    requests: int = 0
    served_by: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    client_errors: int = 0
    compared: int = 0
    agreed: int = 0
    shadow_skipped: int = 0
    audited: int = 0  # candidate answers also asked of the LLM (`swap/selective.py`)
    audit_agreed: int = 0
    audit_failed: int = 0  # the LLM gave no usable answer to compare with
    audit_skipped: int = 0
    audit_cost_usd: float = 0.0
    audit_priced: int = 0  # audits whose LLM answer came with usage and a price
    rollbacks: int = 0
    cost_usd: float = 0.0  # what the LLM's answers cost
    llm_priced: int = 0  # LLM answers with usage and a price
    candidate_tokens_usd: float = 0.0  # the candidate's own tokens at the LLM's price (a floor)
    candidate_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5000))
    llm_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5000))

    def as_dict(self) -> dict[str, Any]:
        served = sum(self.served_by.values())
        return {
            "requests": self.requests, "served_by": dict(self.served_by),
            "candidate_share": self.served_by["candidate"] / served if served else 0.0,
            "fallbacks": dict(self.fallbacks), "client_errors": self.client_errors,
            "compared": self.compared, "agreed": self.agreed,
            "agreement": self.agreed / self.compared if self.compared else None,
            "shadow_skipped": self.shadow_skipped, "rollbacks": self.rollbacks,
            "audited": self.audited, "audit_agreed": self.audit_agreed, "audit_failed": self.audit_failed,
            "audit_skipped": self.audit_skipped, "audit_cost_usd": round(self.audit_cost_usd, 6),
            "audit_agreement": (self.audit_agreed / (self.audited - self.audit_failed)
                                if self.audited > self.audit_failed else None),
            "cost_usd": round(self.cost_usd, 6), **self.saved(),
            "candidate_p50_ms": percentile(list(self.candidate_ms), 50),
            "candidate_p95_ms": percentile(list(self.candidate_ms), 95),
            "llm_p50_ms": percentile(list(self.llm_ms), 50),
            "llm_p95_ms": percentile(list(self.llm_ms), 95),
        }

    def saved(self) -> dict[str, Any]:
        """What the LLM would have charged for the requests the candidate served.

        The LLM's bill for a request is its full prompt (the agent's system prompt, every tool)
        plus its answer, several times the candidate's lean prompt; so each served request is
        priced at the LLM's mean cost per request, measured on the audited share when there is
        one (a random sample of the covered traffic), else on every LLM answer of the task; with
        no priced LLM answer yet, at the candidate's own tokens at the LLM's price (a floor)."""
        served = self.served_by["candidate"]
        if self.audit_priced:
            per_call, basis = self.audit_cost_usd / self.audit_priced, "audited LLM answers"
        elif self.llm_priced:
            per_call, basis = self.cost_usd / self.llm_priced, "LLM answers"
        else:
            return {"saved_usd": round(self.candidate_tokens_usd, 6),
                    "saved_basis": "candidate tokens at the LLM's price (a floor)"}
        return {"saved_usd": round(served * per_call, 6), "saved_basis": f"{basis}' mean cost per request"}


class Figures:
    def __init__(self) -> None:
        self.tasks: dict[str, TaskFigures] = {}

    def of(self, task: str) -> TaskFigures:
        f = self.tasks.get(task)
        if f is None:
            f = self.tasks[task] = TaskFigures()
        return f

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {task: f.as_dict() for task, f in self.tasks.items()}


def figures_table(tasks: dict, only: str | None = None) -> Table:
    """The gateway's live swap figures as a table (also used by the demo)."""
    table = Table(title="live figures")
    for col in ("task", "requests", "served by SLM", "fallbacks by reason", "agreement", "SLM p50/p95 ms",
                "LLM p50 ms", "saved USD", "rollbacks"):
        table.add_column(col, justify="right" if col not in ("task", "fallbacks by reason") else "left")
    for name, f in sorted(tasks.items()):
        if only and name != only:
            continue
        fallbacks = ", ".join(f"{k} {v}" for k, v in sorted(f["fallbacks"].items())) or "none"
        agreement = f"{f['agreement']:.0%} of {f['compared']}" if f["agreement"] is not None else "-"
        if f.get("audit_agreement") is not None:
            agreement += f"; audit {f['audit_agreement']:.0%} of {f['audited'] - f['audit_failed']}"
        cand = (f"{f['candidate_p50_ms']:.0f}/{f['candidate_p95_ms']:.0f}"
                if f["candidate_p50_ms"] is not None else "-")
        llm = f"{f['llm_p50_ms']:.0f}" if f["llm_p50_ms"] is not None else "-"
        table.add_row(name, str(f["requests"]), f"{f['candidate_share']:.0%}", fallbacks, agreement, cand, llm,
                      f"{f['saved_usd']:.4f}", str(f["rollbacks"]))
    return table
