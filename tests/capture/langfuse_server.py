"""A small real HTTP server on loopback that speaks the Langfuse public API's read endpoints.

Langfuse is a hosted service that cannot run here, so the tests pull from this instead: Basic
auth, `GET /api/public/v2/observations` (cursor pages), the deprecated v1
`GET /api/public/observations` (numbered pages with `meta.totalPages`), and
`GET /api/public/traces/{id}`.
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
