"""Every page loads in a real browser on the demo data, shows what it is for, and logs no error."""

from __future__ import annotations

import re

import pytest

from fledgling.store import CallFilter

PAGES = [
    ("overview", "/", ["support-agent", "ticket-triage", "record", "NO · sloppy-candidate"]),
    ("traces", "/traces", ["matching calls", "support-agent"]),
    ("traces-filtered", "/traces?task=support-agent&status=error", ["matching calls", "error"]),
    ("contracts", "/contracts", ["lookup_order", "arguments present"]),
    ("contracts-structured", "/contracts?task=ticket-triage", ["Output fields", "category"]),
    ("datasets", "/datasets", ["Curation report", "examples out", "Planted errors"]),
    ("compare", "/compare", ["recorded", "sloppy-candidate", "items disagree"]),
    ("reports", "/reports", ["Parity reports", "Verdict for", "sloppy-candidate"]),
    ("training", "/training", ["Running now", "ticket-triage-lora-live", "support-agent-lora-done"]),
    ("training-run", "/training/support-agent-lora-done", ["Manifest", "best_eval_loss"]),
    ("models", "/models", ["smollm2-135m-instruct", "Select for"]),
    ("rollout", "/rollout", ["support-agent", "History"]),
]


@pytest.mark.parametrize(("name", "path", "expected"), PAGES, ids=[p[0] for p in PAGES])
def test_page_loads_clean(server, watched, name, path, expected) -> None:
    response = watched.page.goto(server.url + path)
    assert response.status == 200
    body = watched.page.inner_text("main")
    for text in expected:
        assert text in body, f"{path} should show {text!r}"
    watched.page.wait_for_load_state("networkidle")
    watched.shot(name)
    assert watched.errors == []
    assert watched.dialogs == []


def test_call_detail_shows_messages_tools_and_validation(server, watched, ui_data) -> None:
    page = watched.page
    page.goto(server.url + "/traces?task=support-agent")
    page.locator("#calls tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/traces/call_"))
    for heading in ("Contract", "Answer", "Conversation", "Tools offered", "Metadata"):
        assert page.get_by_role("heading", name=heading).is_visible()
    assert page.locator(".msg.role-system").count() == 1
    assert page.locator(".msg.role-user").count() >= 1
    assert "against contract" in page.inner_text("#validation") or "Breaks contract" in page.inner_text("#validation")
    watched.shot("call")
    assert watched.errors == []


def test_invalid_answer_shows_its_violations(server, watched, ui_data) -> None:
    from fledgling.contracts import load_contract, validate_call

    contract = load_contract(ui_data.store, "support-agent")
    bad = next(c for c in ui_data.store.iter_calls(CallFilter(task="support-agent", status="ok"))
               if c.response and validate_call(c, contract))
    watched.page.goto(f"{server.url}/traces/{bad.id}")
    text = watched.page.inner_text("#validation")
    assert "Breaks contract" in text
    assert validate_call(bad, contract)[0].code in text
    watched.shot("call-invalid")


def test_traces_filters_and_pages(server, watched, ui_data) -> None:
    page = watched.page
    page.goto(server.url + "/traces")
    first_page = page.locator("#calls tbody tr td:first-child").all_inner_texts()
    page.get_by_role("link", name="older →").click()
    second_page = page.locator("#calls tbody tr td:first-child").all_inner_texts()
    assert len(second_page) == 50 and not set(first_page) & set(second_page)
    assert max(second_page) <= min(first_page)
    page.get_by_role("link", name="← newer").click()
    assert page.locator("#calls tbody tr td:first-child").all_inner_texts() == first_page

    page.select_option("select[name=status]", "error")  # the filter applies on change (progressive JS)
    page.wait_for_url(re.compile(r"status=error"))
    statuses = page.locator("#calls tbody tr td:nth-child(5)").all_inner_texts()
    errors = ui_data.store.count_calls(CallFilter(status="error"))
    assert statuses == ["error"] * errors
    assert f"{errors:,} matching calls" in page.inner_text("main")
    assert watched.errors == []
