"""The `openai` backend: a hosted fine-tuning job through the official `openai` client.

prepare: write the train/val files in OpenAI's fine-tuning format (curation's `openai`
format: the agent's original messages and tools, arguments as JSON strings) and the job body.
run: upload both files (`purpose="fine-tune"`), create the job, poll it until it ends, and
record the fine-tuned model id as a catalog entry of kind `openai`. The job id is saved the
moment the job exists, so `--resume` re-attaches to it instead of paying twice.

The endpoint and key are the client's own: `OPENAI_BASE_URL` (default api.openai.com) and
`OPENAI_API_KEY`; `--base` is the model to fine-tune (e.g. gpt-4o-mini-2024-07-18).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from fledgling.curate.formats import example_line
from fledgling.models import manifest
from fledgling.train.backend import Plan, Reporter, Result, TrainingError, TrainSpec
from fledgling.train.dataset import Dataset

TERMINAL = ("succeeded", "failed", "cancelled")
JOB_FILE = "openai_job.json"


class OpenAIBackend:
    name = "openai"

    def prepare(self, spec: TrainSpec, data: Dataset, run_dir: Path) -> Plan:
        out = run_dir / "openai"
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for split, limit in (("train", spec.max_examples), ("val", None)):
            examples = data.split(split, limit)
            if not examples:
                continue
            path = out / f"{split}.jsonl"
            with path.open("wb") as f:
                for ex in examples:
                    f.write(example_line(ex.messages, ex.tools, list(ex.call_ids), "openai"))
            files[split] = path
        body = job_body(spec)
        (out / "job_request.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        files["job_request"] = out / "job_request.json"
        return Plan(spec, data, run_dir, files=files,
                    details={"endpoint": os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
                             "job": body, "lines": {k: _lines(v) for k, v in files.items() if k != "job_request"}})

    def run(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result:
        client = _client()
        job_path = plan.run_dir / JOB_FILE
        if plan.resume and job_path.is_file():
            job_id = json.loads(job_path.read_text(encoding="utf-8"))["id"]
            reporter.update(state="training", message=f"re-attached to job {job_id}")
        else:
            reporter.update(state="loading", message="uploading the training file")
            uploaded = {split: _upload(client, plan.files[split]) for split in ("train", "val")
                        if split in plan.files}
            body = {**job_body(plan.spec), "training_file": uploaded["train"]}
            if "val" in uploaded:
                body["validation_file"] = uploaded["val"]
            job = _call(lambda: client.fine_tuning.jobs.create(**body), "creating the fine-tuning job")
            job_id = job.id
            job_path.write_text(json.dumps({"id": job.id, "files": uploaded}, indent=2) + "\n", encoding="utf-8")
            reporter.update(state="training", message=f"job {job.id} created")
        job = poll(client, job_id, reporter, plan.spec.poll_s)
        if job.status != "succeeded":
            reason = job.error.message if job.error else "no reason given"
            raise TrainingError(f"fine-tuning job {job.id} {job.status}: {reason}")
        metrics = {"job_id": job.id, "status": job.status, "trained_tokens": job.trained_tokens,
                   "fine_tuned_model": job.fine_tuned_model, "result_files": list(job.result_files or []),
                   "hyperparameters": job.hyperparameters.model_dump() if job.hyperparameters else {}}
        base_url = str(client.base_url).rstrip("/")
        info = manifest.build(
            task=plan.spec.task, backend="openai",
            base_model={"name": plan.spec.base, "files": [], "sha256": None, "provider": base_url},
            dataset=plan.data.describe(), hyperparameters=job_body(plan.spec), seed=plan.spec.seed,
            metrics=metrics, prompt_format="openai-chat (the agent's own prompt)",
            artifacts={k: str(v.relative_to(plan.run_dir)) for k, v in plan.files.items()})
        manifest.write(plan.run_dir, info)
        return Result(artifacts={**plan.files, "manifest": plan.run_dir / manifest.MANIFEST}, metrics=metrics,
                      model={"kind": "openai", "origin": "hosted", "base": plan.spec.base,
                             "base_url": base_url, "model_id": job.fine_tuned_model, "manifest": info})


def job_body(spec: TrainSpec) -> dict[str, Any]:
    """The `POST /fine_tuning/jobs` body, minus the file ids only known after upload."""
    body: dict[str, Any] = {
        "model": spec.base, "seed": spec.seed,
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": spec.epochs}}},
    }
    if spec.suffix:
        body["suffix"] = spec.suffix
    return body


def poll(client: Any, job_id: str, reporter: Reporter, every_s: float) -> Any:
    """Retrieve the job until it ends, reporting each status change."""
    last = None
    while True:
        job = _call(lambda: client.fine_tuning.jobs.retrieve(job_id), f"polling job {job_id}")
        if job.status != last:
            reporter.update(state="training" if job.status not in TERMINAL else "saving",
                            message=f"job {job_id}: {job.status}")
            last = job.status
        if job.status in TERMINAL:
            return job
        time.sleep(every_s)


def _client() -> Any:
    import openai

    if not os.environ.get("OPENAI_API_KEY"):
        raise TrainingError("the openai backend needs OPENAI_API_KEY in the environment (and "
                            "OPENAI_BASE_URL for an endpoint other than api.openai.com)")
    return openai.OpenAI(max_retries=2)


def _upload(client: Any, path: Path) -> str:
    with path.open("rb") as f:
        uploaded = _call(lambda: client.files.create(file=(path.name, f), purpose="fine-tune"),
                         f"uploading {path.name}")
    return uploaded.id


def _call(fn: Any, what: str) -> Any:
    import openai

    try:
        return fn()
    except openai.APIStatusError as exc:
        detail = exc.message
        raise TrainingError(f"{what} failed: HTTP {exc.status_code}: {detail}") from None
    except openai.APIConnectionError as exc:
        raise TrainingError(f"{what} failed: cannot reach {exc.request.url if exc.request else 'the API'}; "
                            "check OPENAI_BASE_URL and the network") from None


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())
