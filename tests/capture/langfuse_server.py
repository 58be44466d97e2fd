"""A small real HTTP server on loopback that speaks the Langfuse public API.

Langfuse is a hosted service that cannot run here, so the tests talk to this instead: Basic
auth, `GET /api/public/v2/observations` (cursor pages), the deprecated v1
`GET /api/public/observations` (numbered pages with `meta.totalPages`),
`GET /api/public/traces/{id}`, and for writes `POST /api/public/scores` (one score; a score
sent again with the same id replaces it) and `POST /api/public/ingestion` (a batch of events,
answered 207 with per-event successes and errors; `score-create` events become scores).
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson


class LangfuseServer:
    def __init__(self, *, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test",
                 v2: bool = True, delay: float = 0.0):
        self.public_key, self.secret_key = public_key, secret_key
        self.v2, self.delay = v2, delay
        self.observations: list[dict[str, Any]] = []
        self.traces: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.scores: dict[str, dict[str, Any]] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> LangfuseServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlparse(self.path)
                query = parse_qs(url.query)
                server.requests.append((url.path, query))
                if server.delay:
                    time.sleep(server.delay)
                expected = "Basic " + base64.b64encode(
                    f"{server.public_key}:{server.secret_key}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"message": "Invalid credentials. Confirm that you've "
                                                       "configured the correct host."})
                if url.path == "/api/public/v2/observations" and server.v2:
                    return self._send(200, server.v2_page(query))
                if url.path == "/api/public/observations":
                    return self._send(200, server.v1_page(query))
                if url.path.startswith("/api/public/traces/"):
                    trace = server.traces.get(url.path.rsplit("/", 1)[1])
                    return self._send(200, trace) if trace else self._send(404, {"message": "not found"})
                return self._send(404, {"message": "not found", "error": "LangfuseNotFoundError"})

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                server.requests.append((url.path, {}))
                expected = "Basic " + base64.b64encode(
                    f"{server.public_key}:{server.secret_key}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"message": "Invalid credentials."})
                try:
                    body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                except orjson.JSONDecodeError:
                    return self._send(400, {"message": "Invalid JSON"})
                if url.path == "/api/public/scores":
                    problem = server.score_problem(body)
                    if problem:
                        return self._send(400, {"message": problem})
                    return self._send(200, {"id": server.add_score(body)})
                if url.path == "/api/public/ingestion":
                    return self._send(207, server.ingest(body))
                return self._send(404, {"message": "not found", "error": "LangfuseNotFoundError"})

            def _send(self, status: int, body: Any) -> None:
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _matching(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        rows = [o for o in self.observations if o["type"] == query.get("type", [o["type"]])[0]]
        if "fromStartTime" in query:
            since = datetime.fromisoformat(query["fromStartTime"][0])
            rows = [o for o in rows if datetime.fromisoformat(o["startTime"]) >= since]
        return sorted(rows, key=lambda o: o["startTime"], reverse=True)  # newest first, as Langfuse

    def v2_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        rows = self._matching(query)
        limit = int(query.get("limit", ["50"])[0])
        start = int(base64.b64decode(query["cursor"][0])) if "cursor" in query else 0
        page = [self._v2_fields(o) for o in rows[start:start + limit]]
        meta = {"cursor": base64.b64encode(str(start + limit).encode()).decode()} if start + limit < len(rows) else {}
        return {"data": page, "meta": meta}

    @staticmethod
    def _v2_fields(o: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in o.items() if k != "model"}
        out["providedModelName"] = o.get("model")
        return out

    def v1_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        rows = self._matching(query)
        limit = int(query.get("limit", ["50"])[0])
        page = int(query.get("page", ["1"])[0])
        total_pages = max(1, -(-len(rows) // limit))
        return {"data": rows[(page - 1) * limit: page * limit],
                "meta": {"page": page, "limit": limit, "totalItems": len(rows), "totalPages": total_pages}}

    @staticmethod
    def score_problem(body: Any) -> str | None:
        """What Langfuse's score schema would refuse: no trace, no name, a value of the wrong type."""
        if not isinstance(body, dict):
            return "body must be an object"
        if not isinstance(body.get("traceId"), str) or not isinstance(body.get("name"), str):
            return "traceId and name are required"
        kind = body.get("dataType", "NUMERIC")
        value = body.get("value")
        if kind == "NUMERIC" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return "a NUMERIC score needs a number value"
        if kind == "CATEGORICAL" and not isinstance(value, str):
            return "a CATEGORICAL score needs a string value"
        return None

    def add_score(self, body: dict[str, Any]) -> str:
        score_id = body.get("id") or f"score-{len(self.scores) + 1}"
        self.scores[score_id] = {**body, "id": score_id}
        return score_id

    def ingest(self, body: Any) -> dict[str, Any]:
        successes, errors = [], []
        for event in body.get("batch", []) if isinstance(body, dict) else []:
            problem = None if event.get("type") == "score-create" else f"unsupported event type {event.get('type')}"
            problem = problem or self.score_problem(event.get("body"))
            if problem:
                errors.append({"id": event.get("id"), "status": 400, "message": problem})
            else:
                self.add_score(event["body"])
                successes.append({"id": event.get("id"), "status": 201})
        return {"successes": successes, "errors": errors}
