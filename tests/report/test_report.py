"""The report: same facts in HTML, Markdown and JSON; the HTML opens in headless Chromium cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fledgling.calls import Response, ToolCall
from fledgling.config import parse_settings
from fledgling.curate.pipeline import curate
from fledgling.demo import generate_calls
from fledgling.evals.runs import load_items, run_eval, task_contract
from fledgling.models import resolve_model
from fledgling.models.generation import Generation
from fledgling.report import build_report, write_report
from tests.models.scripted import Scripted

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def report(sqlite_store, tmp_path):
    s = sqlite_store
    s.insert_calls(generate_calls(seed=2, n=300))
    curate(s, "support-agent", out_dir=tmp_path / "datasets")
    version, cv, items = load_items(s, "support-agent")
    contract = task_contract(s, "support-agent", cv, items)
    truth = {i.call.request.model_dump_json(): i.reference for i in items}
    wrong = {i.call.request.model_dump_json() for i in items[::4]}

    def cand(req):
        key = req.model_dump_json()
        resp = Response(tool_calls=[ToolCall(name="escalate", arguments="{}")]) if key in wrong else truth[key]
        return Generation(resp, 120.0 + len(key) % 50, 300, 20)

    run_eval(s, "support-agent", resolve_model("recorded"),
             Scripted(lambda r: Generation(truth[r.model_dump_json()], 800.0, 300, 20)), items, contract,
             split="test", dataset_version=version, constrained=False)
    run_eval(s, "support-agent", resolve_model("gguf:smollm2"), Scripted(cand), items, contract,
             split="test", dataset_version=version, constrained=True)
    settings = parse_settings({"tasks": {"support-agent": {"gates": {
        "tool_name_accuracy": {"non_inferior": 0.02}, "latency_p95_ms": {"max": 400}}}}})
    return build_report(s, settings, "support-agent")


def test_report_facts(report):
    assert report["verdict"] == "NO"  # a quarter of the calls go to the wrong tool
    cand = report["candidates"][0]
    assert cand["label"] == "gguf:smollm2 (constrained)"
    assert [g["outcome"] for g in cand["gates"]] == ["fail", "pass"]
    assert report["reference"]["label_sources"] == {"ground_truth": report["reference"]["n"]}
    assert report["worst_failures"] and all("instead of" in f["differs"] for f in report["worst_failures"])
    assert any("escalate" not in tool for tool in report["per_tool"])
    # on the items that need a tool call, every fourth went to the wrong tool
    needs_call = report["tool_call_items"]
    ref_row, cand_row = needs_call["recorded"], needs_call["gguf:smollm2 (constrained)"]
    assert ref_row["n"] == cand_row["n"] > 0 and ref_row["tool_name_match"]["mean"] == 1.0
    misses = cand_row["n"] * (1 - cand_row["tool_name_match"]["mean"])
    assert round(misses) >= 1 and cand_row["tool_name_match"]["mean"] < 0.9
    low, high = cand_row["args_exact_match"]["low"], cand_row["args_exact_match"]["high"]
    assert low < cand_row["args_exact_match"]["mean"] < high


def test_renderings_agree(report, tmp_path):
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["verdict"] == report["verdict"]
    md = paths["md"].read_text()
    assert f"**Verdict: {report['verdict']}**" in md
    assert "## Items that need a tool call" in md
    html = paths["html"].read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert not list((tmp_path / "out").glob("*.tmp"))


@pytest.mark.browser
def test_html_opens_in_headless_chromium_without_errors(report, tmp_path):
    from playwright.sync_api import sync_playwright

    path = write_report(report, tmp_path / "out")["html"]
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        assert page.locator("#verdict").inner_text() == report["verdict"]
        assert page.locator("svg").count() >= 2
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "parity-report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert all(u.startswith("file://") for u in requests)
