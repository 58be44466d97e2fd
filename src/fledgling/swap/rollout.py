"""Rollout: which mode each task is in (record, shadow, canary, swapped) and what share goes to
the candidate, as requested at run time, with its history.

`[tasks.X] mode` and `canary_percent` in fledgling.toml are the declared starting point; a
change made at run time (the dashboard, or the live gate rolling back) is stored in the trace
store's `rollouts` table and wins over the file, so every gateway process sharing the store
sees the same state without anyone rewriting the user's config. Every change appends a
`rollout_events` row: who, when, from what to what, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from fledgling.config import Mode, Settings
from fledgling.errors import InputError
from fledgling.store import Store

MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class RolloutState:
    task: str
    mode: str
    canary_percent: float
    source: str  # "store" (changed at run time) or "config" (fledgling.toml / default)
    updated_at: datetime | None = None
    updated_by: str | None = None
    min_confidence: float | None = None  # a selective rollout's threshold (None: the config's)
    confidence_score: str | None = None  # the score it applies to (None: the mean log-probability)
    audit_percent: float | None = None  # share of the candidate's answers also asked of the LLM


@dataclass(frozen=True)
class Selective:
    """A threshold to swap at, as a report chose it (`from_report`)."""

    min_confidence: float
    confidence_score: str
    audit_percent: float
    verdict: str
    text: str


@dataclass(frozen=True)
class RolloutEvent:
    id: int
    task: str
    at: datetime
    kind: str  # "change" or "rollback"
    from_mode: str | None
    to_mode: str
    from_percent: float | None
    to_percent: float
    actor: str
    reason: str | None


def current(store: Store, settings: Settings, task: str) -> RolloutState:
    """The task's mode and canary share: the stored run-time choice, else the config's."""
    row = store.rollouts.get(task)
    if row is not None:
        return _stored(row)
    declared = settings.tasks.get(task)
    if declared is None:
        return RolloutState(task, "record", 0.0, "config")
    return RolloutState(task, declared.mode, float(declared.canary_percent), "config")


def set_mode(store: Store, settings: Settings, task: str, mode: str, canary_percent: float = 0.0, *,
             actor: str, reason: str | None = None, selective: Selective | None = None) -> RolloutState:
    """Move a task to `mode` (with `canary_percent` for canary). Anything beyond `record` needs
    a candidate: `[tasks.X] candidate` or one selected in the model catalog. With `selective`
    (canary or swapped), the candidate answers only what scores at least its threshold."""
    if selective is not None and mode not in ("canary", "swapped"):
        raise InputError(f"a confidence threshold applies to canary or swapped mode, not '{mode}'")
    if mode not in MODES:
        raise InputError(f"mode '{mode}' is not one of {', '.join(MODES)}")
    if not 0 <= canary_percent <= 100:
        raise InputError(f"canary percent {canary_percent:g} must be between 0 and 100")
    if mode == "canary" and canary_percent <= 0:
        raise InputError("a canary needs a share above 0%; pick e.g. 5 or use shadow mode")
    percent = float(canary_percent) if mode == "canary" else (100.0 if mode == "swapped" else 0.0)
    if mode != "record" and candidate_of(store, settings, task) is None:
        raise InputError(f"task '{task}' has no candidate model; select one first (`fledgling models "
                         f"select NAME --task {task}` or the dashboard's Models page)")
    return _write(store, settings, task, mode, percent, kind="change", actor=actor, reason=reason,
                  selective=selective)


def from_report(report: dict[str, Any], task: str, audit_percent: float) -> Selective:
    """The threshold a swap-readiness report chose on val and tested on test (its JSON)."""
    if report.get("task") != task:
        raise InputError(f"the report is for task '{report.get('task')}', not '{task}'")
    section = report.get("selective")
    if not section:
        raise InputError("the report has no selective verdict (its candidate run carries no confidence "
                         "scores, or there is no val run to choose a threshold on)")
    if section.get("threshold") is None:
        raise InputError(f"the report chose no threshold: {section.get('text')}")
    if not 0 <= audit_percent <= 100:
        raise InputError(f"audit percent {audit_percent:g} must be between 0 and 100")
    return Selective(float(section["threshold"]), str(section.get("score") or "mean_logprob"), float(audit_percent),
                     str(section["verdict"]), str(section["text"]))


def rollback(store: Store, settings: Settings, task: str, *, actor: str, reason: str,
             to_mode: str = "record") -> RolloutState:
    """Send all of a task's traffic back to the reference LLM, saying why: to `record`, or to
    `shadow` (the live gate's choice: the candidate keeps being measured, off the response path)."""
    if to_mode not in ("record", "shadow"):
        raise InputError(f"a rollback goes to record or shadow, not '{to_mode}'")
    return _write(store, settings, task, to_mode, 0.0, kind="rollback", actor=actor, reason=reason)


def all_current(store: Store, settings: Settings) -> dict[str, RolloutState]:
    """Every task with a stored or declared mode, in one query (the gateway polls this)."""
    rows = store.rollouts.find()
    out = {task: RolloutState(task, t.mode, float(t.canary_percent), "config")
           for task, t in settings.tasks.items()}
    for r in rows:
        out[r["task"]] = _stored(r)
    return out


def _stored(r: dict[str, Any]) -> RolloutState:
    return RolloutState(r["task"], r["mode"], float(r["canary_percent"]), "store", _aware(r["updated_at"]),
                        r["updated_by"], r.get("min_confidence"), r.get("confidence_score"),
                        r.get("audit_percent"))


def events(store: Store, task: str | None = None, limit: int = 100) -> list[RolloutEvent]:
    """The newest rollout changes and rollbacks first."""
    return [RolloutEvent(**{**r, "at": _aware(r["at"])}) for r in store.rollouts.events(task, limit)]


def candidate_of(store: Store, settings: Settings, task: str) -> str | None:
    """The task's candidate model name: selected in the catalog, else declared in the config."""
    chosen = store.catalog.selected(task)
    declared = settings.tasks.get(task)
    return chosen or (declared.candidate if declared else None)


def _write(store: Store, settings: Settings, task: str, mode: str, percent: float, *, kind: str,
           actor: str, reason: str | None, selective: Selective | None = None) -> RolloutState:
    before = current(store, settings, task)
    now = datetime.now(UTC)
    t, score, audit = ((selective.min_confidence, selective.confidence_score, selective.audit_percent)
                       if selective else (None, None, None))
    if selective is not None:
        note = f"threshold {t:.4g} on {score}, audit {audit:g}% (report: {selective.text})"
        reason = f"{reason}; {note}" if reason else note
    store.rollouts.save(task, mode=mode, canary_percent=percent, at=now, actor=actor, kind=kind,
                        from_mode=before.mode, from_percent=before.canary_percent, reason=reason,
                        min_confidence=t, confidence_score=score, audit_percent=audit)
    return RolloutState(task, mode, percent, "store", now, actor, t, score, audit)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
