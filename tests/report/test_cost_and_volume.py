"""Honest cost: a local model's cost is its machine's hourly price times its measured serving
time (an estimate, said so); an unpriced model shows "unpriced" and never a saving; the monthly
volume comes from the config or from traffic observed over at least an hour, and the report
says which."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fledgling.config import parse_settings
from fledgling.curate.pipeline import curate
from fledgling.demo import generate_calls
from fledgling.evals.runs import load_items, run_eval, task_contract
from fledgling.models import resolve_model
from fledgling.models.generation import Generation
from fledgling.report import build_report
from fledgling.report.markdown import render_markdown
from fledgling.report.parity import monthly_volume
from tests.models.scripted import Scripted

SERVING_MS = 1800.0
REF_MS = 900.0


def _settings(slm: dict, task: dict | None = None):
    return parse_settings({"models": {"slm": {"kind": "hf", "path": "/models/slm", **slm}},
                           "tasks": {"support-agent": {"candidate": "slm", **(task or {})}}})


def _report(store, tmp_path, settings):
    store.insert_calls(generate_calls(seed=2, n=200))
    curate(store, "support-agent", out_dir=tmp_path / "datasets")
    version, cv, items = load_items(store, "support-agent")
    contract = task_contract(store, "support-agent", cv, items)
    truth = {i.call.request.model_dump_json(): i.reference for i in items}
    run_eval(store, "support-agent", resolve_model("recorded", settings),
             Scripted(lambda r: Generation(truth[r.model_dump_json()], REF_MS, 300, 20)), items, contract,
             split="test", dataset_version=version, constrained=False)
    run_eval(store, "support-agent", resolve_model("slm", settings),
             Scripted(lambda r: Generation(truth[r.model_dump_json()], SERVING_MS, 300, 20)), items, contract,
             split="test", dataset_version=version, constrained=True)
    recorded_cost = sum(i.call.cost_usd for i in items if i.call.cost_usd is not None)
    return build_report(store, settings, "support-agent"), recorded_cost * 1000 / len(items)


def test_a_priced_local_model_costs_its_compute_as_an_estimate(sqlite_store, tmp_path):
    report, ref_per_1k = _report(sqlite_store, tmp_path, _settings({"usd_per_cpu_hour": 0.40},
                                                                   {"monthly_calls": 90_000}))
    cand = report["candidates"][0]
    assert cand["cost_per_1k_usd"] == pytest.approx(0.40 * SERVING_MS / 3_600_000 * 1000)
    assert cand["cost_basis"]["kind"] == "compute" and cand["cost_basis"]["estimate"] is True
    assert "estimate: $0.4 per CPU-hour" in cand["cost_note"]
    assert report["reference"]["cost_per_1k_usd"] == pytest.approx(ref_per_1k)
    assert report["monthly_volume"]["source"] == "config"
    assert cand["monthly_saving_usd"] == pytest.approx((ref_per_1k - cand["cost_per_1k_usd"]) / 1000 * 90_000)
    md = render_markdown(report)
    assert "~$" in md and "from [tasks.support-agent].monthly_calls" in md


def test_an_unpriced_local_model_shows_unpriced_and_no_saving(sqlite_store, tmp_path):
    report, _ = _report(sqlite_store, tmp_path, _settings({}, {"monthly_calls": 90_000}))
    cand = report["candidates"][0]
    assert cand["cost_per_1k_usd"] is None and cand["monthly_saving_usd"] is None
    assert cand["cost_basis"] == {"kind": "unpriced", "reason": "no usd_per_cpu_hour for 'slm' in fledgling.toml"}
    md = render_markdown(report)
    table = md.split("## Latency and cost", 1)[1]
    row = next(line for line in table.splitlines() if line.startswith(f"| {cand['label']} |"))
    assert "unpriced" in row and row.rstrip().endswith("| - |")


def test_a_burst_of_traffic_is_not_projected_to_a_month(sqlite_store):
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    calls = [c.model_copy(update={"created_at": now + timedelta(seconds=i)})
             for i, c in enumerate(generate_calls(seed=1, n=60))]
    sqlite_store.insert_calls(calls)
    n = sum(1 for c in calls if c.task == "support-agent")
    volume = monthly_volume(sqlite_store, "support-agent", None)
    assert volume["calls"] is None and volume["source"] is None
    assert f"the {n:,} observed calls span" in volume["note"] and "under the 1 h" in volume["note"]


def test_traffic_over_hours_is_projected_and_says_from_what(sqlite_store):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    calls = [c.model_copy(update={"created_at": start + timedelta(minutes=10 * i)})
             for i, c in enumerate(generate_calls(seed=1, n=60))]
    sqlite_store.insert_calls(calls)
    mine = sorted(c.created_at for c in calls if c.task == "support-agent")
    hours = (mine[-1] - mine[0]).total_seconds() / 3600
    volume = monthly_volume(sqlite_store, "support-agent", None)
    assert volume["source"] == "observed" and volume["window"]["calls"] == len(mine)
    assert volume["calls"] == pytest.approx(len(mine) / hours * 24 * 30)
    assert f"projected from {len(mine):,} calls observed over" in volume["note"]


def test_the_configured_volume_wins_over_the_observed(sqlite_store):
    sqlite_store.insert_calls(generate_calls(seed=1, n=20))
    assert monthly_volume(sqlite_store, "support-agent", 1234)["calls"] == 1234
