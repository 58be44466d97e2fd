"""Swapped at a threshold: covered requests go to the candidate, the rest to the LLM
(`low_confidence`), an audit share of the covered ones also to the LLM in shadow, watched by
the live gate; and `rollout set --from-report` stores the threshold the report shows."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from typer.testing import CliRunner

from fledgling.cli import app
from fledgling.errors import InputError
from fledgling.swap import rollout
from fledgling.swap.selective import audited
from tests.swap.conftest import TASK, Programmable, bucket, tool_message, wait_for

# None of these tests is about timeouts: a budget a loaded CI machine cannot miss (the default
# 400 ms once turned a low_confidence fallback into a timeout one under the full suite's load)
BUDGET_MS = 10_000
THRESHOLD = {"min_confidence": -1.0, "confidence_score": "mean_logprob", "verdict": "SWAP", "text": "test"}


def in_audit(call_id: str, percent: float) -> bool:
    """The audit share as docs/swap.md states it: sha256("audit:" + call id), first 8 bytes, mod 10,000."""
    return int.from_bytes(hashlib.sha256(f"audit:{call_id}".encode()).digest()[:8], "big") % 10_000 < percent * 100


def swap_at(sw, audit_percent: float) -> None:
    r = sw.admin.post(f"/admin/rollout/{TASK}", json={
        "mode": "swapped", "reason": "test", "selective": {**THRESHOLD, "audit_percent": audit_percent}})
    assert r.status_code == 200, r.text


def test_covered_requests_are_served_the_rest_fall_back_and_a_share_is_audited(make_swap):
    cand = Programmable("slm", lambda r: "unsure" if bucket(r) < 30 else "good")
    # no "low_confidence" in fallback_on: implied
    sw = make_swap(candidate=cand, gate={"enabled": False}, budget_ms=BUDGET_MS)
    swap_at(sw, 40)
    served = {i: sw.ask(i)[1]["x-fledgling-served-by"] for i in range(40)}
    wait_for(lambda: sw.app.swap.idle())
    calls = {c.request.messages[-1]["content"]: c for c in sw.calls()}
    unsure = {i for i in range(40) if bucket({"messages": [{"content": f"A{i:04d}"}]}) < 30}
    assert 0 < len(unsure) < 40
    audits = 0
    for i, by in served.items():
        call = calls[f"Where is my order A{i:04d}?"]
        if i in unsure:
            assert (by, call.metadata["route"]["fallback"]) == ("llm", "low_confidence")
            assert "audit" not in call.metadata
        else:
            assert (by, call.metadata["route"]["fallback"]) == ("candidate", None)
            assert ("audit" in call.metadata) == in_audit(call.id, 40)
            if "audit" in call.metadata:
                audits += 1
                assert call.metadata["audit"]["agree"] is True
    assert audits > 0
    # the LLM saw the fallbacks and the audits, nothing else
    assert sum(sw.llm.seen.values()) == len(unsure) + audits
    fig = sw.figures()
    assert fig["fallbacks"] == {"low_confidence": len(unsure)}
    assert (fig["audited"], fig["audit_agreed"], fig["audit_agreement"]) == (audits, audits, 1.0)
    assert fig["saved_basis"].startswith("audited")  # the saving is priced on the audited LLM answers


class ConfidentlyWrong(Programmable):
    """Sure of itself (-0.05 a token) and wrong: a valid call with another order id."""

    def _answer(self, request):
        request.pop("_kind")
        answer = tool_message("lookup_order", {"order_id": "A0000"})
        answer["logprobs"] = {"content": [{"token": "t", "logprob": -0.05, "bytes": None, "top_logprobs": []}] * 4}
        return answer


def test_the_live_gate_rolls_back_on_the_audited_disagreement(make_swap):
    sw = make_swap(candidate=ConfidentlyWrong("slm"), budget_ms=BUDGET_MS)
    swap_at(sw, 100)
    for i in range(1, 30):
        sw.ask(i)
        if rollout.current(sw.store, sw.settings, TASK).mode == "shadow":
            break
    wait_for(lambda: rollout.current(sw.store, sw.settings, TASK).mode == "shadow")
    last = rollout.events(sw.store, TASK, limit=1)[0]
    assert last.kind == "rollback" and "disagreed with the LLM" in (last.reason or "")
    assert sw.figures()["audit_agreed"] == 0


def test_the_audit_share_is_near_its_percent():
    ids = [f"call_{uuid.UUID(int=k).hex}" for k in range(20_000)]
    share = sum(audited(i, 5) for i in ids) / len(ids)
    assert 0.045 < share < 0.055
    assert not any(audited(i, 0) for i in ids[:100]) and all(audited(i, 100) for i in ids[:100])
    assert all(audited(i, 5) == in_audit(i, 5) for i in ids[:2000])


def test_from_report_writes_the_threshold_the_report_shows(store, tmp_path):
    report = {"task": TASK, "verdict": "SWAP", "selective": {
        "verdict": "SWAP", "threshold": -0.4321, "score": "min_logprob",
        "text": "SWAP at 62% coverage (confidence >= -0.4321): non-inferior at delta=0.05 on the covered items"}}
    out = tmp_path / "reports"
    out.mkdir()
    (out / "report.json").write_text(json.dumps(report))
    config = tmp_path / "fledgling.toml"
    config.write_text(f'[store]\nurl = "{store.engine.url.render_as_string(hide_password=False)}"\n\n'
                      '[models.slm]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n\n'
                      f'[tasks.{TASK}]\ncandidate = "slm"\n')
    r = CliRunner().invoke(app, ["--config", str(config), "rollout", "set", TASK, "--mode", "swapped",
                                 "--from-report", str(out), "--audit-percent", "7"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    st = rollout.current(store, rollout_settings(config), TASK)
    assert (st.mode, st.min_confidence, st.confidence_score, st.audit_percent) == ("swapped", -0.4321,
                                                                                  "min_logprob", 7.0)
    assert "min_logprob >= -0.4321" in r.output
    assert "-0.4321" in (rollout.events(store, TASK, limit=1)[0].reason or "")
    # a rollback clears the threshold
    rollout.rollback(store, rollout_settings(config), TASK, actor="test", reason="test")
    assert rollout.current(store, rollout_settings(config), TASK).min_confidence is None


def rollout_settings(config):
    from fledgling.config import load_settings

    return load_settings(config)


@pytest.mark.parametrize("report, message", [
    ({"task": "other"}, "not 'support-agent'"),
    ({"task": TASK}, "no selective verdict"),
    ({"task": TASK, "selective": {"threshold": None, "text": "NO threshold reaches parity"}}, "chose no threshold"),
])
def test_a_report_without_a_threshold_is_refused(report, message):
    with pytest.raises(InputError, match=message):
        rollout.from_report(report, TASK, 5.0)


def test_low_confidence_fallbacks_do_not_trip_the_live_gate(make_swap):
    """Sending the unsure half to the LLM is the routing the threshold asks for, not a failure."""
    sw = make_swap(candidate=Programmable("slm", lambda r: "unsure" if bucket(r) < 50 else "good"),
                   budget_ms=BUDGET_MS)
    swap_at(sw, 0)
    for i in range(30):
        sw.ask(i)
    wait_for(lambda: sw.app.swap.idle())
    assert sw.figures()["fallbacks"]["low_confidence"] >= 8
    assert rollout.current(sw.store, sw.settings, TASK).mode == "swapped"
    assert sw.figures()["rollbacks"] == 0


def test_cost_saved_prices_each_served_request_at_what_the_llm_charges():
    """The LLM bills its full prompt, several times the candidate's lean one: a served request is
    worth the LLM's mean cost per request, from the audits first, else from its other answers."""
    from fledgling.swap.figures import TaskFigures

    fig = TaskFigures()
    fig.served_by.update({"candidate": 10, "llm": 3})
    fig.candidate_tokens_usd = 0.0009  # the candidate's own 10 answers at the LLM's price
    assert fig.as_dict()["saved_usd"] == 0.0009
    assert "floor" in fig.as_dict()["saved_basis"]
    fig.cost_usd, fig.llm_priced = 0.006, 3  # three fallbacks, 0.002 each
    assert fig.as_dict()["saved_usd"] == pytest.approx(0.02)
    fig.audit_cost_usd, fig.audit_priced = 0.0075, 3  # three audits of covered requests, 0.0025 each
    assert fig.as_dict()["saved_usd"] == pytest.approx(0.025)
    assert fig.as_dict()["saved_basis"].startswith("audited")
