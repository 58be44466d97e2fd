"""The low-confidence fallback: the score, its calibration on a curated val split, and the
gateway falling back to the LLM under the threshold (and only when the task asks it to)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fledgling.cli import app
from fledgling.curate.pipeline import curate
from fledgling.demo import generate_calls
from fledgling.demo.standin import StandInUpstream, request_key
from fledgling.errors import ConfigError
from fledgling.gateway.server import ServerThread, build_app
from fledgling.swap.confidence import calibrate, local_confidence, remote_confidence
from tests.swap.conftest import Programmable, bucket, swap_settings


def test_calibration_keeps_the_most_answers_the_target_allows():
    scored = [(-0.1, True), (-0.2, True), (-0.3, False), (-0.4, True), (-0.5, False)]
    at_75 = calibrate(scored, 0.75)
    assert (at_75.threshold, at_75.accuracy, at_75.coverage) == (-0.4, 0.75, 0.8)
    at_100 = calibrate(scored, 1.0)
    assert (at_100.threshold, at_100.coverage) == (-0.2, 0.4)
    assert calibrate([(-1.0, False), (-2.0, True)], 0.9).threshold is None
    # equal scores are kept or dropped together: -0.2 keeps a wrong answer with a right one
    assert calibrate([(-0.1, True), (-0.2, True), (-0.2, False)], 0.9).threshold == -0.1


def test_scores_count_free_choices_only():
    assert local_confidence([0.0, -0.5, 0.0, -1.5, 0.0]) == -1.0  # forced tokens are 0.0 after the mask
    assert local_confidence([0.0, 0.0]) == 0.0 and local_confidence(None) is None
    assert remote_confidence({"content": [{"logprob": -0.2}, {"logprob": -0.4}]}) == pytest.approx(-0.3)
    assert remote_confidence(None) is None and remote_confidence({"content": None}) is None


def test_low_confidence_answers_fall_back_to_the_llm(make_swap):
    cand = Programmable("slm", lambda r: "unsure" if bucket(r) < 50 else "good")
    sw = make_swap(candidate=cand, fallback_on=["error", "timeout", "contract", "low_confidence"],
                   min_confidence=-1.0, gate={"enabled": False})
    sw.set_mode("swapped")
    served = {i: sw.ask(i)[1]["x-fledgling-served-by"] for i in range(12)}
    calls = {c.request.messages[-1]["content"]: c for c in sw.calls()}
    assert all(r.get("logprobs") is True for r in cand.requests)  # the gateway asked for them
    unsure = [i for i in served if bucket({"messages": [{"content": f"A{i:04d}"}]}) < 50]
    assert unsure and len(unsure) < 12
    for i, by in served.items():
        call = calls[f"Where is my order A{i:04d}?"]
        if i in unsure:
            assert (by, call.metadata["route"]["fallback"]) == ("llm", "low_confidence")
            assert call.metadata["candidate"]["confidence"] == -2.5
        else:
            assert (by, call.metadata["route"]["fallback"]) == ("candidate", None)
            assert call.metadata["candidate"]["confidence"] == -0.05
    assert sw.figures()["fallbacks"] == {"low_confidence": len(unsure)}


def test_low_confidence_without_a_threshold_is_refused(store, tmp_path):
    settings = swap_settings("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", tmp_path,
                             fallback_on=["error", "low_confidence"])
    with pytest.raises(ConfigError, match="rollout calibrate"):
        build_app(settings, store, keys=frozenset())


def test_calibrate_command_finds_the_threshold_on_the_val_split(store, tmp_path):
    calls = list(generate_calls(seed=3, n=240))
    store.insert_calls(calls)
    curate(store, "support-agent", out_dir=tmp_path / "datasets")
    truth = {request_key(c.request.model_dump(mode="json", exclude_none=True)): c.metadata["ground_truth"]
             for c in calls}

    other = next(c.metadata["ground_truth"] for c in calls if c.metadata["ground_truth"].get("tool_calls")
                 and c.metadata["ground_truth"]["tool_calls"][0]["function"]["name"] == "cancel_order")

    def answer(request):  # right and sure for 70% of the requests; a valid but wrong call, unsure
        wrong = int(request_key(request)[:4], 16) % 10 >= 7
        message = dict(other if wrong else truth[request_key(request)])
        message["logprobs"] = {"content": [{"logprob": -3.0 if wrong else -0.1}]}
        return message

    server = ServerThread(StandInUpstream(answer, model="slm"))
    url = server.start()
    try:
        config = tmp_path / "fledgling.toml"
        config.write_text(
            f'[store]\nurl = "{store.engine.url.render_as_string(hide_password=False)}"\n\n'
            f'[models.slm]\nkind = "openai"\nbase_url = "{url}/v1"\nmodel = "slm"\n\n'
            '[tasks.support-agent]\ncandidate = "slm"\n')
        r = CliRunner().invoke(app, ["--config", str(config), "rollout", "calibrate", "--task", "support-agent",
                                     "--target-accuracy", "0.95"], env={"COLUMNS": "200"})
    finally:
        server.stop()
    assert r.exit_code == 0, r.output
    assert "[tasks.support-agent.swap]\n  min_confidence = -0.1000" in r.output
    row = next(line for line in r.output.splitlines() if "-0.1000" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    scored, _, _, overall, _, kept, coverage = cells
    assert int(scored) > 10 and float(overall.rstrip("%")) < 90 and kept == "100.0%"
    assert 50 < float(coverage.rstrip("%")) < 90
