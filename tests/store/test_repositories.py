"""The store's repositories on SQLite and PostgreSQL: what each one promises beyond what the
domain modules' tests (curate, evals, train, rollout, ui) already show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fledgling.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _dataset(store: Store, version: int, *, conn=None, items=(("train", 1, "c1"),)) -> None:
    store.datasets.save(task="t", version=version, contract_version=None, format="chat", seed=7,
                        params={"seed": 7}, report={"kept": version}, path=f"/d/v{version}",
                        counts={"train": 1}, items=items, conn=conn)


def test_datasets_get_is_the_newest_or_the_named_version_with_its_report(store: Store) -> None:
    assert store.datasets.get("t") is None and store.datasets.latest_version("t") == 0
    for v in (1, 2, 3):
        _dataset(store, v)
    assert store.datasets.get("t")["version"] == 3
    assert store.datasets.get("t", 2)["report"] == {"kept": 2}
    assert store.datasets.get("t", 9) is None
    assert [d["version"] for d in store.datasets.find("t")] == [3, 2, 1]
    assert "report" not in store.datasets.find()[0]


def test_datasets_save_in_batches_keeps_line_order(store: Store) -> None:
    items = [("train", n, f"c{n}") for n in range(1, 12)] + [("test", 1, "t1")]
    store.datasets.save(task="t", version=1, contract_version="abc", format="chat", seed=7, params={},
                        report={}, path="/d", counts={"train": 11, "test": 1}, items=iter(items),
                        batch_size=4)
    assert store.datasets.call_ids("t", 1, "train") == [f"c{n}" for n in range(1, 12)]
    assert store.datasets.call_ids("t", 1, "test") == ["t1"]
    row = store.datasets.get("t", 1)
    assert (row["n_train"], row["n_val"], row["n_test"], row["contract_version"]) == (11, 0, 1, "abc")


def test_writes_given_a_transaction_stand_or_fall_with_it(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as conn:
        _dataset(store, 1, conn=conn)
        assert store.catalog.add({"name": "m", "kind": "gguf", "origin": "external", "manifest": {},
                                  "created_at": T0}, conn=conn)
        raise RuntimeError("abort")
    assert store.datasets.get("t") is None and store.catalog.get("m") is None


def test_eval_runs_round_trip_in_order_with_positions(store: Store) -> None:
    for i, at in enumerate((T0, T0 + timedelta(minutes=1))):
        run = {"id": f"run{i}", "task": "t", "split": "test" if i else "val", "dataset_version": 1,
               "contract_version": None, "model": "m", "model_kind": "recorded", "constrained": False,
               "lenient": False, "created_at": at, "label_sources": {"recorded": 2},
               "summary": {"n": 2}}
        items = [{"call_id": f"c{n}", "label_source": "recorded",
                  "prediction": {"content": "x"} if n == 2 else None,
                  "error": None, "parse_failed": False, "latency_ms": 1.5, "input_tokens": 3,
                  "output_tokens": 4, "scores": {"success": 1.0, "schema_valid": None}} for n in (2, 1)]
        store.eval_runs.save(run, items)
    assert [r["id"] for r in store.eval_runs.find("t")] == ["run1", "run0"]
    assert [r["id"] for r in store.eval_runs.find("t", "val")] == ["run0"]
    assert store.eval_runs.find("t")[0]["n_items"] == 2
    got = store.eval_runs.items("run1")
    assert [(r["position"], r["call_id"]) for r in got] == [(0, "c2"), (1, "c1")]
    assert got[0]["prediction"] == {"content": "x"} and got[1]["prediction"] is None
    assert got[0]["scores"] == {"success": 1.0, "schema_valid": None}
    assert store.eval_runs.items("missing") == []


def test_train_runs_restart_keeps_created_at_and_resets_progress(store: Store) -> None:
    runs = store.train_runs
    runs.start("r1", task="t", backend="lora", base="b", run_dir=Path("/runs/r1"), spec={"a": 1})
    first = runs.get("r1")
    runs.update("r1", step=5, loss=0.5, state="training")
    assert (runs.get("r1").step, runs.get("r1").loss, runs.get("r1").active) == (5, 0.5, True)
    runs.start("r1", task="t", backend="lora", base="b", run_dir=Path("/runs/r1"), spec={"a": 2})
    again = runs.get("r1")
    assert again.created_at == first.created_at and again.updated_at >= first.updated_at
    assert (again.step, again.loss, again.spec, again.state) == (0, None, {"a": 2}, "loading")
    assert runs.get("nope") is None


def test_train_runs_find_newest_first_by_task_with_a_limit(store: Store) -> None:
    for i, task in enumerate(("a", "b", "a", "a")):
        store.train_runs.start(f"r{i}", task=task, backend="dry-run", base="b", run_dir=Path("/r"),
                               spec={}, state="planned")
    assert [r.id for r in store.train_runs.find("a")] == ["r3", "r2", "r0"]
    assert [r.id for r in store.train_runs.find(limit=2)] == ["r3", "r2"]
    assert not store.train_runs.find("a")[0].active


def test_catalog_add_refuses_a_taken_name_and_find_filters_by_task(store: Store) -> None:
    def row(name: str, task: str | None, minute: int) -> dict:
        return {"name": name, "kind": "gguf", "origin": "external", "task": task, "path": "/m.gguf",
                "manifest": {"n": minute}, "created_at": T0 + timedelta(minutes=minute)}

    assert store.catalog.add(row("any", None, 0))
    assert store.catalog.add(row("mine", "t", 1))
    assert store.catalog.add(row("theirs", "u", 2))
    assert not store.catalog.add(row("mine", "u", 3))
    assert store.catalog.get("mine")["task"] == "t"
    assert [m["name"] for m in store.catalog.find("t")] == ["any", "mine"]
    assert [m["name"] for m in store.catalog.find()] == ["any", "mine", "theirs"]
    assert store.catalog.get("missing") is None


def test_catalog_selection_replaces_the_previous_one(store: Store) -> None:
    assert store.catalog.selected("t") is None
    store.catalog.select("t", "a")
    store.catalog.select("t", "b")
    store.catalog.select("u", "a")
    assert (store.catalog.selected("t"), store.catalog.selected("u")) == ("b", "a")


def test_rollouts_save_replaces_the_mode_and_appends_events(store: Store) -> None:
    assert store.rollouts.get("t") is None and store.rollouts.find() == []
    store.rollouts.save("t", mode="canary", canary_percent=5.0, at=T0, actor="cli", kind="change",
                        from_mode="record", from_percent=0.0, reason=None)
    store.rollouts.save("t", mode="record", canary_percent=0.0, at=T0 + timedelta(seconds=1),
                        actor="live-gate", kind="rollback", from_mode="canary", from_percent=5.0,
                        reason="too many fallbacks")
    store.rollouts.save("u", mode="shadow", canary_percent=0.0, at=T0, actor="ui", kind="change",
                        from_mode=None, from_percent=None, reason=None)
    now = store.rollouts.get("t")
    assert (now["mode"], now["canary_percent"], now["updated_by"]) == ("record", 0.0, "live-gate")
    assert sorted(r["task"] for r in store.rollouts.find()) == ["t", "u"]
    events = store.rollouts.events("t")
    assert [(e["kind"], e["from_mode"], e["to_mode"]) for e in events] == [
        ("rollback", "canary", "record"), ("change", "record", "canary")]
    assert events[0]["reason"] == "too many fallbacks"
    assert len(store.rollouts.events(limit=2)) == 2 and len(store.rollouts.events()) == 3
