"""`fledgling autopilot --task T`: the loop without a person at a terminal, moved only by evidence.

Each round (`Autopilot.tick()`):

1. **Watch the live stage.** While the task's candidate is in canary or swapped, the calls
   served since the last rollout change are fed through the live gate's own test
   (`swap.live_gate.TaskGate`: SPRT/CUSUM on disagreement, fallback, slowness). An alarm rolls
   the task back to shadow; so does noticing that the gateway's live gate already did. Either
   way the candidate is struck off: it is never promoted again.
2. **Answer approvals.** A promotion waiting for approval is carried out once approved, dropped
   when rejected, and blocks every other move while it waits.
3. **Retrain on new traffic.** When `[tasks.T.autopilot] min_new_calls` calls arrived since the
   last round, it re-curates, retrains, evaluates the reference and the new candidate, and
   writes the report. A SWAP verdict (or a selective SWAP at a coverage of at least
   `min_coverage`, when the report carries one) makes the new model the task's candidate;
   anything else is recorded and changes nothing.
4. **Promote one stage.** shadow -> canary at each of `canary_steps` -> swapped, only once the
   current stage has served `hold_requests` requests with the live gate holding.

Every decision is an `autopilot_events` row holding its evidence (the report's verdict and
gates, the gate statistics, the counts); the rollout page shows them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fledgling.config import AutopilotSettings, Settings
from fledgling.errors import InputError
from fledgling.jobs.steps import (
    CurateArgs,
    EvalArgs,
    JobContext,
    ReportArgs,
    TrainArgs,
    run_curate,
    run_eval_job,
    run_report,
    run_train,
)
from fledgling.models import catalog
from fledgling.report import build_report
from fledgling.store import CallFilter, Store
from fledgling.swap import rollout
from fledgling.swap.live_gate import TaskGate

ACTOR = "autopilot"


@dataclass(frozen=True)
class Stage:
    mode: str
    percent: float

    def label(self) -> str:
        return f"canary {self.percent:g}%" if self.mode == "canary" else self.mode


@dataclass
class RoundResult:
    """What a retrain round produced: the candidate's catalog name and its report."""

    model: str | None
    report: dict[str, Any] | None
    evidence: dict[str, Any]


Pipeline = Callable[[Store, Settings, str], RoundResult]


def ladder(policy: AutopilotSettings) -> list[Stage]:
    return [Stage("shadow", 0.0), *(Stage("canary", p) for p in policy.canary_steps), Stage("swapped", 100.0)]


def stage_index(stages: list[Stage], mode: str, percent: float) -> int:
    """Where the rollout stands on the ladder: -1 before shadow (record)."""
    if mode == "record":
        return -1
    if mode == "shadow":
        return 0
    if mode == "swapped":
        return len(stages) - 1
    below = [i for i, s in enumerate(stages) if s.mode == "canary" and s.percent <= percent]
    return below[-1] if below else 0


def report_evidence(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of a report a decision rests on: verdict, primary, each candidate's gates, and
    the selective verdict when the report has one."""
    out: dict[str, Any] = {"verdict": report.get("verdict"), "primary": report.get("primary"),
                           "generated_at": report.get("generated_at"), "split": report.get("split")}
    out["candidates"] = [{"label": c.get("label"), "verdict": c.get("verdict"),
                          "gates": [{k: g.get(k) for k in ("metric", "outcome", "reason")}
                                    for g in c.get("gates", [])]}
                         for c in report.get("candidates", [])]
    selective = report.get("selective")
    if isinstance(selective, dict):
        out["selective"] = {k: selective.get(k) for k in ("verdict", "text", "metric", "threshold",
                                                          "min_coverage", "test")}
        out["selective"]["coverage"] = selective_coverage(selective)
    return out


def selective_coverage(selective: dict[str, Any]) -> float | None:
    """The test coverage at the selective verdict's threshold (`report.selective`)."""
    coverage = selective.get("coverage")
    if coverage is None and isinstance(selective.get("test"), dict):
        coverage = selective["test"].get("coverage")
    return float(coverage) if isinstance(coverage, (int, float)) else None


def swap_verdict(report: dict[str, Any], min_coverage: float) -> tuple[bool, str]:
    """Whether the report says SWAP, plainly or selectively at enough coverage, and why."""
    if report.get("verdict") == "SWAP":
        return True, f"the report's verdict is SWAP for {report.get('primary')}"
    selective = report.get("selective")
    if isinstance(selective, dict) and selective.get("verdict") == "SWAP":
        coverage = selective_coverage(selective)
        if coverage is not None and coverage >= min_coverage:
            return True, (f"the report's selective verdict is SWAP at coverage {coverage:.0%} "
                          f"(minimum {min_coverage:.0%})")
        return False, (f"the selective verdict is SWAP at coverage {coverage}, below the minimum "
                       f"{min_coverage:.0%}")
    return False, f"the report's verdict is {report.get('verdict')}, not SWAP"


Trainer = Callable[[Store, Settings, str, int], "str | None"]


@dataclass
class Recipe:
    """How a retrain round runs its steps (the job kinds' arguments)."""

    curate: CurateArgs = field(default_factory=CurateArgs)
    train: TrainArgs = field(default_factory=TrainArgs)
    eval_limit: int | None = None


def train_step(recipe: Recipe) -> Trainer:
    """The ordinary trainer: the `train` job's step on the round's dataset version."""
    def run(store: Store, settings: Settings, task: str, dataset_version: int) -> str | None:
        args = recipe.train.model_copy(update={"dataset_version": dataset_version})
        return run_train(JobContext(store, settings, task, args, _quiet))["model"]
    return run


def make_pipeline(recipe: Recipe | None = None, trainer: Trainer | None = None) -> Pipeline:
    """curate -> train -> eval (reference and candidate, test split) -> report."""
    recipe = recipe or Recipe()
    trainer = trainer or train_step(recipe)

    def run(store: Store, settings: Settings, task: str) -> RoundResult:
        def ctx(args: Any) -> JobContext:
            return JobContext(store, settings, task, args, _quiet)

        curated = run_curate(ctx(recipe.curate))
        model = trainer(store, settings, task, curated["dataset_version"])
        evidence: dict[str, Any] = {"curate": curated, "model": model}
        if model is None:
            return RoundResult(None, None, evidence)
        declared = settings.tasks.get(task)
        reference = (declared.reference if declared else None) or "recorded"
        evidence["evals"] = [run_eval_job(ctx(EvalArgs(model=name, limit=recipe.eval_limit)))
                             for name in (reference, model)]
        written = run_report(ctx(ReportArgs()))
        evidence["report_files"] = written["paths"]
        return RoundResult(model, build_report(store, settings, task, "test"), evidence)

    return run


def _quiet(fraction: float | None, message: str | None) -> None:
    return None


class Autopilot:
    def __init__(self, store: Store, settings: Settings, task: str, *, require_approval: bool | None = None,
                 pipeline: Pipeline | None = None):
        self.store, self.settings, self.task = store, settings, task
        declared = settings.tasks.get(task)
        self.policy = declared.autopilot if declared else AutopilotSettings()
        self.gate_settings = declared.swap.gate if declared else None
        self.stages = ladder(self.policy)
        self.pipeline = pipeline or make_pipeline()
        row = store.autopilots.get(task)
        if require_approval is None:
            require_approval = row["require_approval"] if row else self.policy.require_approval
        self.require_approval = require_approval
        self.state: dict[str, Any] = dict(row["state"]) if row else {}
        self.enabled = row["enabled"] if row else True

    # -- the loop -----------------------------------------------------------------------------

    def watch(self, *, interval_s: float = 5.0, rounds: int | None = None,
              on_round: Callable[[int], None] | None = None) -> int:
        """Tick until switched off (the dashboard's toggle, `fledgling autopilot off`) or for
        `rounds` rounds. Whoever starts it turns the switch on first (`switch`)."""
        n = 0
        while rounds is None or n < rounds:
            row = self.store.autopilots.get(self.task)
            if row is not None and not row["enabled"]:
                break
            self.tick()
            n += 1
            if on_round:
                on_round(n)
            if rounds is None or n < rounds:
                time.sleep(interval_s)
        return n

    def tick(self) -> list[dict[str, Any]]:
        """One round; returns the events it recorded."""
        events: list[dict[str, Any]] = []
        now = self.store.count_calls(CallFilter(task=self.task))
        self.state.setdefault("calls_seen", 0)
        self.state.setdefault("struck", [])
        state = rollout.current(self.store, self.settings, self.task)
        candidate = self.state.get("candidate")
        if candidate and candidate not in self.state["struck"]:
            rolled = self._noticed_rollback(candidate)
            if rolled is None and state.mode in ("canary", "swapped"):
                rolled = self._watch_live(state, candidate)
            if rolled:
                events.append(rolled)
                self._save()
                return events
        pending = self.store.autopilots.events(self.task, status="pending", limit=1)
        approved = self.store.autopilots.events(self.task, status="approved", limit=1)
        if approved:
            events.append(self._carry_out(approved[0]))
            self._save()
            return events
        if pending:
            self._save()
            return events
        if now - self.state["calls_seen"] >= self.policy.min_new_calls:
            events.extend(self._retrain(now))
            state = rollout.current(self.store, self.settings, self.task)
        candidate = self.state.get("candidate")
        if candidate and candidate not in self.state["struck"]:
            promoted = self._maybe_promote(state, candidate)
            if promoted:
                events.append(promoted)
        self._save()
        return events

    # -- steps --------------------------------------------------------------------------------

    def _retrain(self, calls_now: int) -> list[dict[str, Any]]:
        new = calls_now - self.state["calls_seen"]
        self.state["calls_seen"] = calls_now
        result = self.pipeline(self.store, self.settings, self.task)
        evidence = {"new_calls": new, "calls": calls_now, **result.evidence}
        if result.report is not None:
            evidence["report"] = report_evidence(result.report)
        out = [self._event("retrain", "done", f"{new} new calls: re-curated, retrained "
                           f"({result.model or 'no model'}), evaluated and reported", evidence)]
        if result.model is None or result.report is None:
            out.append(self._event("hold", "done", "the round produced no candidate to judge", evidence))
            return out
        ok, why = swap_verdict(result.report, self.policy.min_coverage)
        primary = result.report.get("primary")
        if ok and primary not in (None, result.model):
            ok, why = False, f"the report's primary candidate is {primary}, not the new {result.model}"
        if not ok:
            out.append(self._event("hold", "done", f"{result.model} not promoted: {why}", evidence))
            return out
        catalog.select_model(self.store, self.task, result.model)
        self.state["candidate"] = result.model
        self.state["report"] = evidence["report"]
        current = rollout.current(self.store, self.settings, self.task)
        if current.mode != "shadow":
            rollout.set_mode(self.store, self.settings, self.task, "shadow", 0.0, actor=ACTOR,
                             reason=f"new candidate {result.model}: {why}; it starts in shadow")
        self._mark_change()
        out.append(self._event("candidate", "done", f"{result.model} is the candidate: {why}; "
                               "it starts in shadow", evidence))
        return out

    def _stage_calls(self, state: rollout.RolloutState) -> list[Any]:
        since = state.updated_at
        calls = self.store.iter_calls(CallFilter(task=self.task, since=since))
        return [c for c in calls if (c.metadata.get("route") or {}).get("mode") == state.mode]

    def _gate(self, state: rollout.RolloutState) -> tuple[TaskGate | None, int, str | None]:
        """The live gate over the calls served at this stage: the gate, the request count, and
        the alarm's reason (None while it holds)."""
        calls = self._stage_calls(state)
        if self.gate_settings is None or not self.gate_settings.enabled:
            return None, len(calls), None
        gate = TaskGate(self.gate_settings, (state.mode, None))
        alarm = None
        for call in calls:
            route = call.metadata.get("route") or {}
            shadow = call.metadata.get("shadow") or {}
            to_candidate = state.mode == "swapped" or bool(route.get("canary"))
            if isinstance(shadow.get("agree"), bool):
                alarm = alarm or gate.observe("disagreement", not shadow["agree"])
            if to_candidate or "failure" in shadow:
                failed = bool(route.get("fallback")) if to_candidate else bool(shadow.get("failure"))
                alarm = alarm or gate.observe("fallback", failed)
        return gate, len(calls), alarm

    def _gate_evidence(self, state: rollout.RolloutState) -> tuple[dict[str, Any], str | None]:
        gate, n, alarm = self._gate(state)
        streams = {} if gate is None else {
            name: {"n": c.n, "bad": c.bad, "score": round(c.score, 3), "threshold": round(c.threshold, 3)}
            for name, c in gate.streams.items()}
        return {"stage": Stage(state.mode, state.canary_percent).label(), "requests": n,
                "since": state.updated_at.isoformat() if state.updated_at else None,
                "hold_requests": self.policy.hold_requests, "gate": streams}, alarm

    def _noticed_rollback(self, candidate: str) -> dict[str, Any] | None:
        """A rollback by someone else (the gateway's live gate, a person) since the autopilot's
        last change strikes the candidate too."""
        last = self.state.get("last_change_id", 0)
        ev = next((e for e in rollout.events(self.store, self.task, limit=50)
                   if e.kind == "rollback" and e.actor != ACTOR and e.id > last), None)
        if ev is None:
            return None
        self.state["struck"].append(candidate)
        self._drop_pending()
        return self._event("rolled_back", "done", f"{ev.actor} rolled {candidate} back: {ev.reason}",
                           {"rollout_event": {"id": ev.id, "at": ev.at.isoformat(), "actor": ev.actor,
                                              "reason": ev.reason}, "candidate": candidate})

    def _watch_live(self, state: rollout.RolloutState, candidate: str) -> dict[str, Any] | None:
        evidence, alarm = self._gate_evidence(state)
        if alarm is None:
            return None
        rollout.rollback(self.store, self.settings, self.task, actor=ACTOR, reason=alarm, to_mode="shadow")
        self._mark_change()
        self.state["struck"].append(candidate)
        self._drop_pending()
        return self._event("rollback", "done", f"{candidate} rolled back to shadow: {alarm}",
                           {**evidence, "candidate": candidate})

    def _maybe_promote(self, state: rollout.RolloutState, candidate: str) -> dict[str, Any] | None:
        index = stage_index(self.stages, state.mode, state.canary_percent)
        if index >= len(self.stages) - 1:
            return None
        target = self.stages[index + 1]
        evidence: dict[str, Any] = {"candidate": candidate, "report": self.state.get("report"),
                                    "from": Stage(state.mode, state.canary_percent).label(),
                                    "to": target.label(), "to_mode": target.mode, "to_percent": target.percent}
        if index >= 0:
            live, alarm = self._gate_evidence(state)
            evidence["live"] = live
            if alarm is not None or live["requests"] < self.policy.hold_requests:
                return None
            why = (f"the live gate held for {live['requests']} requests at {live['stage']} "
                   f"(needed {self.policy.hold_requests})")
        else:
            why = "the report says SWAP; shadow changes no answer"
        summary = f"promote {candidate}: {evidence['from']} -> {target.label()}; {why}"
        if self._rejected(candidate, evidence["from"]):
            return None
        if self.require_approval:
            return self._event("promote", "pending", summary + " (waiting for approval)", evidence)
        self._apply(target, summary)
        return self._event("promote", "done", summary, evidence)

    def _rejected(self, candidate: str, stage: str) -> bool:
        """A person already said no to promoting this candidate from this stage."""
        return any(ev["decision"] == "promote" and ev["evidence"].get("candidate") == candidate
                   and ev["evidence"].get("from") == stage
                   for ev in self.store.autopilots.events(self.task, status="rejected", limit=20))

    def _carry_out(self, event: dict[str, Any]) -> dict[str, Any]:
        """Carry out an approved promotion, if the rollout is still where it was proposed."""
        ev = event["evidence"]
        state = rollout.current(self.store, self.settings, self.task)
        self.store.autopilots.set_status(event["id"], "done")
        if Stage(state.mode, state.canary_percent).label() != ev.get("from"):
            return self._event("hold", "done", f"approved promotion #{event['id']} no longer applies: the "
                               f"rollout moved to {Stage(state.mode, state.canary_percent).label()}",
                               {"approved_event": event["id"]})
        target = Stage(ev["to_mode"], float(ev["to_percent"]))
        summary = f"promote {ev['candidate']}: {ev['from']} -> {target.label()} (approved by {event['decided_by']})"
        self._apply(target, summary)
        return self._event("promote", "done", summary, {**ev, "approved_event": event["id"],
                                                        "approved_by": event["decided_by"]})

    def _apply(self, target: Stage, reason: str) -> None:
        rollout.set_mode(self.store, self.settings, self.task, target.mode, target.percent, actor=ACTOR,
                         reason=reason[:500])
        self._mark_change()

    def _mark_change(self) -> None:
        """Remember the newest rollout event: rollbacks after it are news."""
        newest = rollout.events(self.store, self.task, limit=1)
        self.state["last_change_id"] = newest[0].id if newest else 0

    def _drop_pending(self) -> None:
        for ev in self.store.autopilots.events(self.task, status="pending"):
            self.store.autopilots.set_status(ev["id"], "stale")

    # -- store --------------------------------------------------------------------------------

    def _event(self, decision: str, status: str, summary: str, evidence: dict[str, Any]) -> dict[str, Any]:
        event_id = self.store.autopilots.add_event(self.task, decision=decision, status=status,
                                                   summary=summary, evidence=evidence)
        return {"id": event_id, "decision": decision, "status": status, "summary": summary,
                "evidence": evidence}

    def _save(self) -> None:
        """Keep what the autopilot remembers; the switch stays as its owner left it."""
        self.store.autopilots.remember(self.task, self.state, enabled=self.enabled,
                                       require_approval=self.require_approval, actor=ACTOR)


def switch(store: Store, task: str, *, enabled: bool, require_approval: bool | None = None,
           actor: str) -> dict[str, Any]:
    """Turn the task's autopilot on or off (a running `watch` stops at its next round)."""
    row = store.autopilots.get(task)
    approval = require_approval if require_approval is not None else bool(row and row["require_approval"])
    store.autopilots.save(task, enabled=enabled, require_approval=approval, actor=actor,
                          state=dict(row["state"]) if row else {})
    found = store.autopilots.get(task)
    assert found is not None
    return found


def answer(store: Store, task: str, *, approve: bool, actor: str, event_id: int | None = None) -> dict[str, Any]:
    """Approve (or reject) the task's pending promotion; the autopilot carries it out next round."""
    pending = store.autopilots.events(task, status="pending", limit=1)
    if event_id is None:
        if not pending:
            raise InputError(f"task '{task}' has no promotion waiting for approval")
        event_id = int(pending[0]["id"])
    event = store.autopilots.event(event_id)
    if event is None or event["task"] != task:
        raise InputError(f"no autopilot decision #{event_id} for task '{task}'")
    if not store.autopilots.answer(event_id, status="approved" if approve else "rejected", actor=actor):
        raise InputError(f"decision #{event_id} is not waiting for approval (it is {event['status']})")
    answered = store.autopilots.event(event_id)
    assert answered is not None
    return answered


def decisions(store: Store, task: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    return store.autopilots.events(task, limit=limit)
