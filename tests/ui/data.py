"""The dashboard's test data: demo traffic with contracts, datasets, eval runs, a training run,
and calls carrying script payloads, built through the library's own functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fledgling.calls import Call, Request, Response, ToolCall, Usage
from fledgling.config import ModelSettings
from fledgling.contracts import infer_contract, save_contract
from fledgling.curate import curate
from fledgling.demo import TASKS, generate_calls
from fledgling.evals.runs import load_items, run_eval, task_contract
from fledgling.models.generation import Generation
from fledgling.models.recorded import RecordedBackend, request_key
from fledgling.models.spec import ModelSpec
from fledgling.store import CallFilter, Store
from fledgling.train import runs

XSS = "<script>window.__xss_message=1;alert('xss')</script><img src=x onerror=\"window.__xss_img=1\">"
XSS_TASK = "<script>window.__xss_task=1</script>"
XSS_ARG = "</script><script>window.__xss_arg=1</script>"


class SloppyCandidate:
    """A stand-in candidate model: the right answer, except a wrong tool on every third item."""

    name = "sloppy-candidate"

    def __init__(self, calls: list[Call]):
        self._calls = {request_key(c.request): c for c in calls}
        self._n = 0

    async def generate(self, requests: list[Request]) -> list[Generation]:
        out = []
        for req in requests:
            self._n += 1
            truth = self._calls[request_key(req)].metadata["ground_truth"]
            answer = Response.from_message(truth)
            if self._n % 3 == 0:
                answer = Response(tool_calls=[ToolCall(id="x", name="escalate_to_human",
                                                       arguments='{"reason": "unsure"}')])
            out.append(Generation(answer, 120.0, 300, 20))
        return out

    async def aclose(self) -> None:
        return None


def xss_calls() -> list[Call]:
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    request = Request(messages=[{"role": "system", "content": "You are a <b>helpful</b> agent."},
                                {"role": "user", "content": XSS}],
                      tools=[{"type": "function", "function": {
                          "name": "lookup_order", "description": XSS,
                          "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}])
    answer = Response(content=XSS, tool_calls=[ToolCall(id="t1", name="lookup_order",
                                                        arguments=json.dumps({"order_id": XSS_ARG}))])
    return [Call(id=f"call_xss_{i}", task=task, source="openai-jsonl", created_at=at + timedelta(seconds=i),
                 model=XSS if i == 1 else "gpt-4o", request=request, response=answer,
                 usage=Usage(input_tokens=10, output_tokens=5), latency_ms=100.0, cost_usd=0.001,
                 metadata={"note": XSS}) for i, task in enumerate((XSS_TASK, "support-agent"))]


def build(store: Store, workdir: Path, n: int = 600) -> dict[str, object]:
    """Fill `store` like the demo would, plus eval runs and training runs."""
    calls = list(generate_calls(seed=0, n=n))
    store.insert_calls(calls)
    for task in TASKS:
        save_contract(store, infer_contract(store.iter_calls(CallFilter(task=task)), task))
        curate(store, task, seed=0, out_dir=workdir / "datasets")
    store.insert_calls(xss_calls())

    task = "support-agent"
    version, contract_version, items = load_items(store, task, "test")
    contract = task_contract(store, task, contract_version, items)
    task_calls = [c for c in calls if c.task == task]
    reference = run_eval(store, task, ModelSpec("recorded", ModelSettings(kind="recorded")),
                         RecordedBackend(task_calls), items, contract, split="test",
                         dataset_version=version, constrained=False)
    candidate = run_eval(store, task, ModelSpec("sloppy-candidate", ModelSettings(kind="openai", base_url="http://127.0.0.1:9/v1")),
                         SloppyCandidate(task_calls), items, contract, split="test",
                         dataset_version=version, constrained=False)

    done_dir = workdir / "runs" / "done"
    ckpt = done_dir / "checkpoints" / "checkpoint-40"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"log_history": [
        *({"step": s, "loss": 2.5 / (1 + s / 8)} for s in range(2, 42, 2)),
        {"step": 20, "eval_loss": 0.9}, {"step": 40, "eval_loss": 0.6}]}))
    (done_dir / "manifest.json").write_text(json.dumps({"task": task, "base_model": "smollm2-135m-instruct",
                                                        "note": XSS}))
    runs.start(store, run_id="support-agent-lora-done", task=task, backend="lora",
               base="smollm2-135m-instruct", run_dir=done_dir, spec={"epochs": 2})
    runs.update(store, "support-agent-lora-done", state="completed", step=40, total_steps=40, loss=0.31,
                metrics={"best_eval_loss": 0.6})
    live_dir = workdir / "runs" / "live"
    live_dir.mkdir(parents=True)
    runs.start(store, run_id="ticket-triage-lora-live", task="ticket-triage", backend="lora",
               base="smollm2-135m-instruct", run_dir=live_dir, spec={"epochs": 3})
    runs.update(store, "ticket-triage-lora-live", state="training", step=12, total_steps=60, epoch=0.6,
                loss=1.2, eta_s=340.0)
    return {"reference": reference.id, "candidate": candidate.id}
