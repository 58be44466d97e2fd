"""The admin API: change a task's rollout at run time, see the live swap figures.

    GET  /admin/rollout                   every task's mode, canary share and candidate
    POST /admin/rollout/{task}            {"mode": "canary", "percent": 10, "reason": "..."}
                                          (+ "selective": {"min_confidence", "confidence_score",
                                          "audit_percent", "verdict", "text"}: swap at a threshold)
    POST /admin/rollout/{task}/rollback   {"reason": "...", "to": "shadow" | "record"}
    GET  /admin/swap                      live figures, gate statistics, circuit states, and
                                          whether recording is ok or degraded (and why)

Every admin route needs its own key, `FLEDGLING_ADMIN_KEY` (comma-separated for several), sent as
`Authorization: Bearer <key>`. Gateway keys never open it: an agent that may call the LLM must not
be able to move live traffic. Without an admin key the admin API refuses everything, on loopback
too. A change is written through `fledgling.swap.rollout` (stored, with an event saying who and why)
and applied at once.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson

from fledgling.errors import ConfigError, FledglingError
from fledgling.swap import rollout
from fledgling.swap.modes import SwapRouter
from fledgling.transport.asgi import Problem, Receive, Send, read_body, send_json

PREFIX = "/admin/"
ADMIN_KEY_ENV = "FLEDGLING_ADMIN_KEY"


def admin_keys(gateway_keys: frozenset[str], raw: str | None = None) -> frozenset[str]:
    """The keys of `FLEDGLING_ADMIN_KEY` (or `raw`); one that is also a gateway key is refused."""
    raw = os.environ.get(ADMIN_KEY_ENV, "") if raw is None else raw
    own = frozenset(k.strip() for k in raw.split(",") if k.strip())
    if own & gateway_keys:
        raise ConfigError(f"{ADMIN_KEY_ENV} is also one of FLEDGLING_GATEWAY_KEYS: give the admin API "
                          "a key of its own (e.g. `openssl rand -hex 24`), so agents cannot move live traffic")
    return own


class Admin:
    def __init__(self, swap: SwapRouter, keys: frozenset[str]):
        self.swap = swap
        self.keys = tuple(k.encode() for k in keys)
        # `--workers N`: this worker's figures -> the whole gateway's (GatewayApp.swap_view)
        self.aggregate: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None

    def authenticate(self, headers: dict[str, str]) -> None:
        if not self.keys:
            raise Problem(403, "admin_disabled", f"the admin API is off: start the gateway with "
                          f"{ADMIN_KEY_ENV} set (gateway keys do not open it), then send it as "
                          "'Authorization: Bearer <key>'")
        auth = headers.get("authorization") or ""
        given = (auth[7:] if auth[:7].lower() == "bearer " else headers.get("api-key", "")).strip().encode()
        if not any(hmac.compare_digest(given, k) for k in self.keys):
            raise Problem(401, "invalid_admin_key", "missing or wrong admin key: send "
                          "FLEDGLING_ADMIN_KEY as 'Authorization: Bearer <key>'")

    async def handle(self, path: str, method: str, receive: Receive, send: Send,
                     headers: dict[str, str]) -> None:
        self.authenticate(headers)
        parts = [unquote(p) for p in path[len(PREFIX):].strip("/").split("/") if p]
        if parts == ["rollout"] and method == "GET":
            await self.swap.live.refresh()
            await send_json(send, 200, {"tasks": [_state(t) for t in self.swap.live.tasks()]})
        elif parts == ["swap"] and method == "GET":
            mine = self.figures()
            await send_json(send, 200, mine if self.aggregate is None else await self.aggregate(mine))
        elif len(parts) in (2, 3) and parts[0] == "rollout" and method == "POST":
            body = await _json_body(receive, headers)
            task = parts[1]
            store, settings = self.swap.store, self.swap.settings
            if len(parts) == 3 and parts[2] == "rollback":
                change = functools.partial(
                    rollout.rollback, store, settings, task, actor="admin-api",
                    reason=str(body.get("reason") or "rolled back through the admin API"),
                    to_mode=str(body.get("to") or "shadow"))
            elif len(parts) == 2:
                percent = body.get("percent", 0)
                if not isinstance(percent, int | float):
                    raise Problem(400, "invalid_percent", "'percent' must be a number from 0 to 100")
                change = functools.partial(rollout.set_mode, store, settings, task, str(body.get("mode") or ""),
                                           float(percent), actor="admin-api", reason=body.get("reason"),
                                           selective=_selective(body.get("selective")))
            else:
                raise Problem(404, "not_found",
                              f"POST {path}: use /admin/rollout/TASK or /admin/rollout/TASK/rollback")
            try:
                state = await asyncio.to_thread(change)
            except FledglingError as exc:
                raise Problem(400, "invalid_rollout", str(exc)) from None
            await self.swap.live.refresh()
            problem = await self.swap.ready(task)
            await send_json(send, 200, {"task": state.task, "mode": state.mode,
                                        "canary_percent": state.canary_percent, "updated_by": state.updated_by,
                                        "candidate_error": problem})
        else:
            raise Problem(404, "not_found", f"{method} {path} is not an admin route; see GET "
                          "/admin/rollout, POST /admin/rollout/TASK, GET /admin/swap")

    def figures(self) -> dict[str, Any]:
        swap = self.swap
        tasks = swap.figures.snapshot()
        for name, fig in tasks.items():
            fig["gate"] = swap.gates.snapshot(name)
            state = swap.live.tasks()
            fig["mode"] = next((t.mode for t in state if t.task == name), "record")
        status, reasons = swap.recorder.health()
        return {"tasks": tasks, "circuits": swap.breakers.states(), "candidates": swap.candidates.names(),
                "recording": {"status": status, "reasons": reasons, **swap.recorder.stats()}}


def _state(t: Any) -> dict[str, Any]:
    return {"task": t.task, "mode": t.mode, "canary_percent": t.canary_percent, "candidate": t.candidate}


async def _json_body(receive: Receive, headers: dict[str, str]) -> dict[str, Any]:
    raw = await read_body(receive, 64 * 1024, headers.get("content-length"))
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid_json", f"admin request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(400, "invalid_json", "admin request body must be a JSON object")
    return body


def _selective(raw: Any) -> rollout.Selective | None:
    """A threshold to swap at, as `rollout.from_report` gives it (None: no threshold)."""
    if raw is None:
        return None
    try:
        return rollout.Selective(float(raw["min_confidence"]), str(raw.get("confidence_score") or "mean_logprob"),
                                 float(raw.get("audit_percent") or 0.0), str(raw.get("verdict") or ""),
                                 str(raw.get("text") or ""))
    except (TypeError, KeyError, ValueError):
        raise Problem(400, "invalid_selective", "'selective' needs a numeric min_confidence (and optionally "
                      "confidence_score, audit_percent)") from None
