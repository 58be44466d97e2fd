"""The report's selective part on real eval runs (val and test of a curated demo task): the
threshold comes from val, the verdict from test, and the risk-coverage curve and reliability
diagram render in headless Chromium."""

from __future__ import annotations

import hashlib
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
SURE, UNSURE = [-0.02, 0.0, -0.05, 0.0], [-0.9, 0.0, -1.4, -0.3]
TASK = "support-agent"


def unsure(key: str) -> bool:
    """A fixed share of the requests, by content: the candidate is unsure there, and wrong."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 3 == 0


wrong = unsure


@pytest.fixture
def report(sqlite_store, tmp_path):
    s = sqlite_store
    s.insert_calls(generate_calls(seed=3, n=900))
    curate(s, TASK, out_dir=tmp_path / "datasets")
    sure_on_test = 0
    for split in ("val", "test"):
        version, cv, items = load_items(s, TASK, split)
        if split == "test":
            sure_on_test = sum(1 for i in items if not unsure(i.call.request.model_dump_json()))
        contract = task_contract(s, TASK, cv, items)
        truth = {i.call.request.model_dump_json(): i.reference for i in items}

        def cand(req, truth=truth):
            key = req.model_dump_json()
            resp = Response(tool_calls=[ToolCall(name="escalate", arguments="{}")]) if wrong(key) else truth[key]
            spread = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 7 * -0.01  # distinct sure scores
            return Generation(resp, 150.0, 300, 20,
                              token_logprobs=UNSURE if unsure(key) else [SURE[0] + spread, *SURE[1:]])

        run_eval(s, TASK, resolve_model("recorded"),
                 Scripted(lambda r, truth=truth: Generation(truth[r.model_dump_json()], 900.0, 300, 20)),
                 items, contract, split=split, dataset_version=version, constrained=False)
        run_eval(s, TASK, resolve_model("gguf:smollm2"), Scripted(cand), items, contract,
                 split=split, dataset_version=version, constrained=True)
    settings = parse_settings({"tasks": {TASK: {"gates": {
        "success": {"non_inferior": 0.15}, "schema_valid": {"min": 0.9}, "coverage": {"min": 0.5}}}}})
    return build_report(s, settings, TASK) | {"sure_on_test": sure_on_test}


def test_the_selective_verdict_is_the_reports_verdict(report):
    sel = report["selective"]
    test_items = report["reference"]["n"]
    assert sel["test"] is not None, sel["text"]
    covered = sel["test"]["covered"]
    assert sel["score"] in ("mean_logprob", "min_logprob")
    # the threshold (from val) covers exactly the sure answers on test, all of them right
    assert covered == report["sure_on_test"] and sel["test"]["candidate"]["mean"] == 1.0
    assert covered / test_items >= 0.5
    assert sel["verdict"] == report["verdict"] == "SWAP", sel["text"]
    assert sel["text"].startswith(f"SWAP at {covered / test_items:.0%} coverage (confidence >= ")
    # all items: the unsure, wrong share makes the classic verdict something else than SWAP
    assert report["candidates"][0]["verdict"] != "SWAP"
    assert sel["calibration"]["ece"] is not None
    assert len(sel["curve"]) > 3 and any(p["threshold"] == sel["threshold"] for p in sel["curve"])


def test_markdown_says_it_too(report, tmp_path):
    md = write_report(report, tmp_path / "out")["md"].read_text()
    assert "## Selective parity" in md and report["selective"]["text"] in md


@pytest.mark.browser
def test_the_curves_render_in_headless_chromium(report, tmp_path):
    from playwright.sync_api import sync_playwright

    path = write_report(report, tmp_path / "out")["html"]
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        assert page.locator("#selective-verdict").inner_text() == "SWAP"
        curve = page.locator("svg#risk-coverage")
        assert curve.locator("polyline").count() == 2 and curve.bounding_box()["width"] > 300
        assert page.locator("svg#reliability rect").count() >= 2
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("svg#risk-coverage").screenshot(path=str(ARTIFACTS / "risk-coverage.png"))
        browser.close()
    assert errors == []
