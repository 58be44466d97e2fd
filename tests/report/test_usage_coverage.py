"""The report says how many calls lack usage (their source reported none: tokens and cost
unknown, stored as NULL), among the task's stored calls and among the evaluated ones, in its JSON,
Markdown and HTML."""

from __future__ import annotations

from fledgling.calls import Usage
from fledgling.config import parse_settings
from fledgling.curate.pipeline import curate
from fledgling.demo import generate_calls
from fledgling.evals.runs import load_items, run_eval, task_contract
from fledgling.models import resolve_model
from fledgling.models.generation import Generation
from fledgling.report import build_report
from fledgling.report.html import render_html
from fledgling.report.markdown import render_markdown
from tests.models.scripted import Scripted

TASK = "support-agent"


def _report(store, tmp_path, unknown_every: int | None):
    calls = list(generate_calls(seed=3, n=160))
    unknown = set()
    for i, call in enumerate(calls):
        if call.task == TASK and unknown_every and i % unknown_every == 0:
            call.usage, call.cost_usd = Usage(missing=True), None
            unknown.add(call.id)
    store.insert_calls(calls)
    stored = sum(1 for c in calls if c.task == TASK)
    curate(store, TASK, out_dir=tmp_path / "datasets")
    version, cv, items = load_items(store, TASK)
    contract = task_contract(store, TASK, cv, items)
    truth = {i.call.request.model_dump_json(): i.reference for i in items}
    settings = parse_settings({"models": {"slm": {"kind": "hf", "path": "/models/slm"}},
                               "tasks": {TASK: {"candidate": "slm", "monthly_calls": 1000}}})
    for name in ("recorded", "slm"):
        run_eval(store, TASK, resolve_model(name, settings),
                 Scripted(lambda r: Generation(truth[r.model_dump_json()], 500.0, 300, 20)), items, contract,
                 split="test", dataset_version=version, constrained=False)
    evaluated = {i.call.id for i in items}
    return build_report(store, settings, TASK), stored, len(unknown), len(evaluated), len(evaluated & unknown)


def test_the_report_counts_calls_without_usage(sqlite_store, tmp_path):
    report, stored, unknown, evaluated, unknown_evaluated = _report(sqlite_store, tmp_path, unknown_every=4)
    assert unknown > 0 and unknown_evaluated > 0  # the set-up exercises both counts
    usage = report["usage"]
    assert (usage["calls"], usage["without_usage"]) == (stored, unknown)
    assert (usage["evaluated"], usage["evaluated_without_usage"]) == (evaluated, unknown_evaluated)
    said = f"{unknown:,} of {stored:,} stored calls of the task have no usage reported"
    md, html = render_markdown(report), render_html(report)
    assert f"- Usage: {said}" in md and f"{unknown_evaluated:,} of the {evaluated:,} evaluated calls" in md
    assert said in html and "reads low" in md and "reads low" in html


def test_a_task_with_usage_everywhere_says_so(sqlite_store, tmp_path):
    report, stored, *_ = _report(sqlite_store, tmp_path, unknown_every=None)
    assert report["usage"]["without_usage"] == 0 and report["usage"]["evaluated_without_usage"] == 0
    assert f"- Usage: all {stored:,} stored calls of the task have usage reported" in render_markdown(report)
