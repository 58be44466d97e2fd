"""The autopilot on planted traffic, fixed seeds: a good candidate goes shadow -> canary 10% ->
canary 50% -> swapped, one stage per held gate; a tiny model trained for real is judged NO and
never promoted; a canary whose planted traffic falls back is rolled back; approvals gate every
promotion when asked; and every decision's event carries its evidence."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fledgling.config import parse_settings
from fledgling.jobs.autopilot import Autopilot, Recipe, answer, make_pipeline, stage_index, swap_verdict
from fledgling.jobs.steps import CurateArgs, TrainArgs
from fledgling.models import catalog
from fledgling.store import CallFilter, Store
from fledgling.swap import rollout

from .conftest import TASK

HOLD = 20
PLANTED = itertools.count()


def settings_for(**autopilot):
    """The demo's test split is small (about 20 items): the parity margin is set to what it can
    settle, so a candidate that matches the reference on every item passes and a wrong one fails."""
    return parse_settings({"tasks": {TASK: {
        "gates": {"args_exact_match": {"non_inferior": 0.25}},
        "autopilot": {"min_new_calls": 100, "hold_requests": HOLD, "canary_steps": [10, 50], **autopilot}}}})


def recorded_trainer(name: str):
    """A 'trained' candidate that answers exactly as the reference did (the recorded outputs):
    the model that should pass every gate."""
    def train(store: Store, settings, task: str, dataset_version: int) -> str:
        catalog.add_model(store, name, kind="recorded", origin="external", task=task,
                          manifest={"dataset_version": dataset_version})
        return name
    return train


def plant(store: Store, n: int, *, mode: str, agree: bool = True, fallback: bool = False,
          canary: bool = True) -> None:
    """n calls served at the task's current stage, as the gateway records them."""
    template = next(iter(store.iter_calls(CallFilter(task=TASK))))
    state = rollout.current(store, settings_for(), TASK)
    start = max(state.updated_at or datetime.now(UTC), datetime.now(UTC)) + timedelta(milliseconds=5)
    calls = []
    for i in range(n):
        route = {"mode": mode, "candidate_model": "c", "fallback": "contract" if fallback else None}
        if mode == "canary":
            route["canary"] = canary
        calls.append(template.model_copy(update={
            "id": f"planted-{next(PLANTED)}", "created_at": start + timedelta(milliseconds=i),
            "metadata": {"route": route, "shadow": {"agree": agree}}}))
    store.insert_calls(calls)


def stage(store: Store) -> tuple[str, float]:
    st = rollout.current(store, settings_for(), TASK)
    return st.mode, st.canary_percent


def test_a_good_candidate_is_promoted_stage_by_stage_on_held_gates(filled: Store, tmp_path: Path) -> None:
    cfg = settings_for()
    recipe = Recipe(curate=CurateArgs(out_dir=str(tmp_path / "ds")))
    pilot = Autopilot(filled, cfg, TASK, pipeline=make_pipeline(recipe, recorded_trainer("good-v1")))
    first = pilot.tick()
    assert [e["decision"] for e in first] == ["retrain", "candidate"]
    retrain = first[0]["evidence"]
    assert retrain["new_calls"] == filled.count_calls(CallFilter(task=TASK))
    assert retrain["report"]["verdict"] == "SWAP" and retrain["report"]["primary"] == "good-v1"
    assert {e["model"] for e in retrain["evals"]} == {"recorded", "good-v1"}
    assert stage(filled) == ("shadow", 0.0)
    assert catalog.selected_model(filled, TASK).name == "good-v1"

    assert pilot.tick() == []  # shadow has served nothing yet
    plant(filled, HOLD - 1, mode="shadow")
    assert pilot.tick() == [] and stage(filled) == ("shadow", 0.0)  # one request short
    plant(filled, 1, mode="shadow")
    [promo] = pilot.tick()
    assert promo["decision"] == "promote" and stage(filled) == ("canary", 10.0)
    live = promo["evidence"]["live"]
    assert live["requests"] == HOLD and live["gate"]["disagreement"]["n"] == HOLD
    assert live["gate"]["disagreement"]["bad"] == 0
    assert promo["evidence"]["report"]["verdict"] == "SWAP"

    plant(filled, HOLD, mode="canary")
    [promo] = pilot.tick()
    assert stage(filled) == ("canary", 50.0)
    fallback = promo["evidence"]["live"]["gate"]["fallback"]
    assert (fallback["n"], fallback["bad"], fallback["score"]) == (HOLD, 0, 0.0)
    plant(filled, HOLD, mode="canary")
    pilot.tick()
    assert stage(filled) == ("swapped", 100.0)
    plant(filled, HOLD, mode="swapped")
    assert pilot.tick() == [] and stage(filled) == ("swapped", 100.0)  # the last stage

    events = filled.autopilots.events(TASK)
    assert [e["decision"] for e in reversed(events)] == ["retrain", "candidate", "promote", "promote", "promote"]
    assert all(e["evidence"] for e in events)
    changes = [e for e in rollout.events(filled, TASK) if e.actor == "autopilot"]
    assert [(e.to_mode, e.to_percent) for e in reversed(changes)] == [
        ("shadow", 0.0), ("canary", 10.0), ("canary", 50.0), ("swapped", 100.0)]


def test_a_canary_that_falls_back_is_rolled_back_and_never_promoted_again(filled: Store, tmp_path: Path) -> None:
    cfg = settings_for()
    recipe = Recipe(curate=CurateArgs(out_dir=str(tmp_path / "ds")))
    pilot = Autopilot(filled, cfg, TASK, pipeline=make_pipeline(recipe, recorded_trainer("good-v1")))
    pilot.tick()
    plant(filled, HOLD, mode="shadow")
    pilot.tick()
    assert stage(filled) == ("canary", 10.0)
    plant(filled, 12, mode="canary", fallback=True)  # the candidate now fails every call
    [rolled] = pilot.tick()
    assert rolled["decision"] == "rollback" and stage(filled) == ("shadow", 0.0)
    gate = rolled["evidence"]["gate"]["fallback"]
    assert gate["bad"] == gate["n"] and gate["score"] >= gate["threshold"]
    assert "live gate" in rolled["summary"] and "fell back" in rolled["summary"]
    assert rollout.events(filled, TASK)[0].kind == "rollback"
    plant(filled, HOLD, mode="shadow")
    assert pilot.tick() == [] and stage(filled) == ("shadow", 0.0)  # struck off: no promotion


def test_a_rollback_by_the_gateway_strikes_the_candidate(filled: Store, tmp_path: Path) -> None:
    cfg = settings_for()
    pilot = Autopilot(filled, cfg, TASK, pipeline=make_pipeline(
        Recipe(curate=CurateArgs(out_dir=str(tmp_path / "ds"))), recorded_trainer("good-v1")))
    pilot.tick()
    plant(filled, HOLD, mode="shadow")
    pilot.tick()
    rollout.rollback(filled, cfg, TASK, actor="live-gate", reason="live gate: disagreed", to_mode="shadow")
    plant(filled, HOLD, mode="shadow")
    [seen] = pilot.tick()
    assert seen["decision"] == "rolled_back" and seen["evidence"]["rollout_event"]["actor"] == "live-gate"
    assert pilot.tick() == [] and stage(filled) == ("shadow", 0.0)


def test_with_approval_required_a_promotion_waits_until_approved(filled: Store, tmp_path: Path) -> None:
    cfg = settings_for(require_approval=True)
    pilot = Autopilot(filled, cfg, TASK, pipeline=make_pipeline(
        Recipe(curate=CurateArgs(out_dir=str(tmp_path / "ds"))), recorded_trainer("good-v1")))
    pilot.tick()
    plant(filled, HOLD, mode="shadow")
    [pending] = pilot.tick()
    assert pending["status"] == "pending" and stage(filled) == ("shadow", 0.0)
    assert pilot.tick() == [] and stage(filled) == ("shadow", 0.0)  # still waiting
    answered = answer(filled, TASK, approve=True, actor="test")
    assert answered["status"] == "approved" and answered["decided_by"] == "test"
    [done] = pilot.tick()
    assert done["status"] == "done" and done["evidence"]["approved_event"] == pending["id"]
    assert stage(filled) == ("canary", 10.0)
    plant(filled, HOLD, mode="canary")
    [pending] = pilot.tick()
    answer(filled, TASK, approve=False, actor="test")
    assert pilot.tick() == [] and stage(filled) == ("canary", 10.0)  # rejected: not proposed again
    from fledgling.errors import InputError

    with pytest.raises(InputError, match="no promotion waiting"):
        answer(filled, TASK, approve=True, actor="test")


@pytest.mark.slow
def test_a_tiny_model_trained_for_real_is_judged_and_never_promoted(filled: Store, tmp_path: Path,
                                                                    tiny_base: Path) -> None:
    cfg = settings_for()
    recipe = Recipe(curate=CurateArgs(out_dir=str(tmp_path / "ds")),
                    train=TrainArgs(base=str(tiny_base), epochs=1, max_examples=16, batch_size=8, grad_accum=1,
                                    max_length=256, seed=0, precision="fp32"), eval_limit=12)
    pilot = Autopilot(filled, cfg, TASK, pipeline=make_pipeline(recipe))
    events = pilot.tick()
    assert [e["decision"] for e in events] == ["retrain", "hold"]
    report = events[0]["evidence"]["report"]
    assert report["verdict"] != "SWAP"
    assert "not promoted" in events[1]["summary"] and report["verdict"] in events[1]["summary"]
    assert stage(filled) == ("record", 0.0)
    assert catalog.selected_model(filled, TASK) is None
    plant(filled, HOLD, mode="record")
    assert pilot.tick() == [] and stage(filled) == ("record", 0.0)


def test_stage_ladder_and_selective_verdicts() -> None:
    from fledgling.jobs.autopilot import ladder

    stages = ladder(settings_for().tasks[TASK].autopilot)
    assert [s.label() for s in stages] == ["shadow", "canary 10%", "canary 50%", "swapped"]
    assert [stage_index(stages, m, p) for m, p in (("record", 0), ("shadow", 0), ("canary", 10),
                                                   ("canary", 30), ("canary", 5), ("swapped", 100))] == \
        [-1, 0, 1, 1, 0, 3]
    assert swap_verdict({"verdict": "SWAP", "primary": "m"}, 0.8)[0]
    assert not swap_verdict({"verdict": "NOT YET"}, 0.8)[0]
    assert swap_verdict({"verdict": "NO", "selective": {"verdict": "SWAP", "coverage": 0.85}}, 0.8)[0]
    ok, why = swap_verdict({"verdict": "NO", "selective": {"verdict": "SWAP", "coverage": 0.5}}, 0.8)
    assert not ok and "below the minimum" in why
    # the report's own shape (report/selective.py): the coverage of the test point
    assert swap_verdict({"verdict": "NOT YET", "selective": {"verdict": "SWAP", "test": {"coverage": 0.9}}}, 0.8)[0]
    assert not swap_verdict({"verdict": "NOT YET", "selective": {"verdict": "SWAP", "test": {"coverage": 0.7}}},
                            0.8)[0]
