"""A small real HTTP server on loopback speaking OpenAI's files and fine-tuning endpoints.

Hosted fine-tuning cannot run here, so this stands in for it: `POST /v1/files` (multipart,
purpose `fine-tune`; every line must be a JSON object with `messages`), `POST
/v1/fine_tuning/jobs` (the training file must exist), `GET /v1/fine_tuning/jobs/{id}`, which
moves a job through validating_files -> queued -> running -> succeeded one poll at a time. A
base model named `fail-*` makes the job fail, as a real one can. Errors use OpenAI's shape.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STEPS = ("validating_files", "queued", "running", "succeeded")


class FineTuningState:
    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.ids = itertools.count(1)
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    state: FineTuningState

    def log_message(self, *args: Any) -> None:
        return None

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, param: str | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error",
                                      "param": param, "code": None}})

    def _authorised(self) -> bool:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._error(401, "You didn't provide an API key.")
            return False
        return True

    def do_POST(self) -> None:
        if not self._authorised():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.state.requests.append(("POST", self.path, self.headers.get("Content-Type")))
        if self.path == "/v1/files":
            self._upload(body)
        elif self.path == "/v1/fine_tuning/jobs":
            self._create_job(json.loads(body))
        else:
            self._error(404, f"Invalid URL (POST {self.path})")

    def do_GET(self) -> None:
        if not self._authorised():
            return
        self.state.requests.append(("GET", self.path, None))
        prefix = "/v1/fine_tuning/jobs/"
        if not self.path.startswith(prefix):
            self._error(404, f"Invalid URL (GET {self.path})")
            return
        with self.state.lock:
            job = self.state.jobs.get(self.path[len(prefix):])
            if job is None:
                self._error(404, "No such fine-tuning job")
                return
            self._advance(job)
            self._send(200, _public(job))

    def _upload(self, body: bytes) -> None:
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields = {part.get_param("name", header="content-disposition"): part for part in msg.iter_parts()}
        if "file" not in fields or "purpose" not in fields:
            self._error(400, "file and purpose are required")
            return
        purpose = fields["purpose"].get_content().strip()
        content = fields["file"].get_payload(decode=True)
        lines = [line for line in content.decode().splitlines() if line.strip()]
        for n, line in enumerate(lines, 1):
            rec = json.loads(line)
            if not isinstance(rec.get("messages"), list) or set(rec) - {"messages", "tools", "parallel_tool_calls"}:
                self._error(400, f"line {n}: a fine-tuning example has messages (and tools) only", "file")
                return
        file_id = f"file-{next(self.state.ids)}"
        obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": fields["file"].get_filename(), "purpose": purpose, "status": "processed",
               "lines": len(lines), "words": sum(len(line.split()) for line in lines)}
        self.state.files[file_id] = obj
        self._send(200, {k: v for k, v in obj.items() if k not in ("lines", "words")})

    def _create_job(self, body: dict[str, Any]) -> None:
        train = self.state.files.get(body.get("training_file", ""))
        if train is None:
            self._error(400, f"invalid training_file: {body.get('training_file')}", "training_file")
            return
        epochs = body.get("method", {}).get("supervised", {}).get("hyperparameters", {}).get("n_epochs", 3)
        job_id = f"ftjob-{next(self.state.ids)}"
        job = {"id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
               "fine_tuned_model": None, "finished_at": None, "model": body["model"],
               "hyperparameters": {"n_epochs": epochs, "batch_size": 1, "learning_rate_multiplier": 1.8},
               "organization_id": "org-local", "result_files": [], "seed": body.get("seed", 0),
               "status": STEPS[0], "trained_tokens": None, "training_file": body["training_file"],
               "validation_file": body.get("validation_file"), "method": body.get("method"),
               "_suffix": body.get("suffix"), "_polls": 0, "_words": train["words"] * epochs}
        self.state.jobs[job_id] = job
        self._send(200, _public(job))

    def _advance(self, job: dict[str, Any]) -> None:
        if job["status"] in ("succeeded", "failed"):
            return
        job["_polls"] += 1
        if job["model"].startswith("fail-") and job["_polls"] >= 2:
            job["status"] = "failed"
            job["error"] = {"code": "invalid_training_file", "message": "model not available for fine-tuning",
                            "param": None}
            return
        job["status"] = STEPS[min(job["_polls"], len(STEPS) - 1)]
        if job["status"] == "succeeded":
            suffix = job["_suffix"] or ""
            job["fine_tuned_model"] = f"ft:{job['model']}:org-local:{suffix}:{job['id']}"
            job["trained_tokens"] = job["_words"]
            job["finished_at"] = int(time.time())
            job["result_files"] = [f"file-result-{job['id']}"]


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_")}


class FineTuningServer:
    """Start with `with FineTuningServer() as server:`; `server.base_url` ends in /v1."""

    def __init__(self) -> None:
        self.state = FineTuningState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FineTuningServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
