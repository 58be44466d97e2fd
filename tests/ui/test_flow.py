"""The user flow, by clicks: from the compare view to a failing call, then choose a candidate
model and move the task to a 10% canary, then roll back. Every step is checked in the store."""

from __future__ import annotations

import re

from fledgling.config import Settings
from fledgling.models import catalog
from fledgling.swap import rollout


def test_compare_to_failing_call_select_model_and_canary(server, watched, ui_data) -> None:
    page = watched.page
    store = ui_data.store

    page.goto(server.url + "/compare")
    page.click("#only-disagree")
    page.wait_for_url(re.compile(r"only=disagree"))
    rows = page.locator("#items tbody tr")
    assert rows.count() > 0
    assert rows.count() == page.locator("#items tbody tr.disagree").count()
    failing = rows.filter(has=page.locator("td:nth-child(4) .mark-bad")).first
    call_id = failing.locator("a.call-link").get_attribute("href").rsplit("/", 1)[-1]
    failing.locator("a.call-link").click()
    page.wait_for_url(re.compile(re.escape(call_id) + "$"))
    assert call_id in page.inner_text("h1")
    watched.shot("flow-call-from-compare")

    page.get_by_role("link", name="Models", exact=True).click()
    page.get_by_role("link", name="support-agent", exact=True).click()
    page.locator("#catalog tr", has_text="smollm2-135m-instruct").locator("a.select-model").click()
    assert "Make smollm2-135m-instruct" in page.inner_text(".confirm")
    watched.shot("models-confirm")
    assert catalog.selected_model(store, "support-agent") is None  # nothing changes before confirming
    page.click("#confirm")
    page.wait_for_url(re.compile(r"selected=smollm2"))
    assert page.inner_text("#current-candidate") == "smollm2-135m-instruct"
    assert catalog.selected_model(store, "support-agent").name == "smollm2-135m-instruct"

    page.get_by_role("link", name="Rollout", exact=True).click()
    row = page.locator("#rollouts tr", has_text="support-agent")
    row.locator("select[name=mode]").select_option("canary")
    row.locator("input[name=percent]").fill("10")
    row.get_by_role("button", name="Review").click()
    assert "to canary 10%" in page.inner_text(".confirm")
    watched.shot("rollout-confirm")
    assert rollout.current(store, Settings(), "support-agent").mode == "record"
    page.fill("input[name=reason]", "parity report passed")
    page.click("#confirm")
    page.wait_for_url(re.compile(r"changed=support-agent"))
    state = rollout.current(store, Settings(), "support-agent")
    assert (state.mode, state.canary_percent, state.updated_by) == ("canary", 10.0, "dashboard")
    assert "canary 10%" in page.locator("#rollouts tr", has_text="support-agent").inner_text()
    assert "parity report passed" in page.inner_text("#events")
    watched.shot("rollout-canary")

    page.goto(server.url + "/")
    assert "canary 10%" in page.locator("#tasks tr", has_text="support-agent").inner_text()

    page.goto(server.url + "/rollout")
    page.locator("#rollouts tr", has_text="support-agent").locator("a.rollback").click()
    page.click("#confirm")
    page.wait_for_url(re.compile(r"changed=support-agent"))
    assert rollout.current(store, Settings(), "support-agent").mode == "record"
    assert rollout.events(store, "support-agent")[0].kind == "rollback"
    assert watched.errors == []
    assert watched.dialogs == []


def test_canary_without_a_candidate_is_refused_with_a_clear_message(server, watched, ui_data) -> None:
    page = watched.page
    page.goto(server.url + "/rollout")
    row = page.locator("#rollouts tr", has_text="ticket-triage")
    row.locator("select[name=mode]").select_option("swapped")
    row.get_by_role("button", name="Review").click()
    page.click("#confirm")
    assert "has no candidate model" in page.inner_text("main")
    assert rollout.current(ui_data.store, Settings(), "ticket-triage").mode == "record"
