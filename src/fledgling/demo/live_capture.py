"""Replaying recorded calls through a real gateway, against a stand-in that gives the recorded
answers: the demo's way of exercising live capture end to end, with no hosted LLM.

Each call is sent as its agent sent it (same request, task, session and trace headers), with its
own id as `X-Fledgling-Call-Id` and its metadata as `X-Fledgling-Metadata` (JSON in ASCII, `\\u`
escapes for the rest, as a header should be), so what the gateway records is the same call: a
replay of calls already in the store adds nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fledgling.calls import Call
from fledgling.config import Settings, parse_settings
from fledgling.demo.standin import RecordedAnswers, StandInUpstream
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import Store


@dataclass
class ReplayResult:
    sent: int = 0
    answered: int = 0        # HTTP 200 from the gateway
    identical: int = 0       # the answer equals the recorded one
    failed: int = 0          # the recorded call failed and the gateway reported the failure
    recorded: int = 0        # calls the gateway recorded (spooled and written to the store)


def replay_through_gateway(calls: Sequence[Call], store: Store, *, spool_dir: str | Path,
                           concurrency: int = 64, price: tuple[float, float] | None = None,
                           latency_scale: float = 0.0,
                           progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Start a stand-in upstream and a gateway on loopback, send `calls` through, drain, stop.

    `price` (USD per million input / output tokens) is the stand-in's list price, so the
    gateway records costs as it would for the hosted model it stands in for. `latency_scale`:
    the stand-in takes each call's recorded latency times this before answering (1: as recorded,
    0: at once), so the gateway records what the hosted model's latency was. The stand-in mostly
    waits, so many calls are in flight at once (`concurrency`)."""
    with ServerThread(StandInUpstream(RecordedAnswers(calls), latency_scale=latency_scale)) as upstream:
        model: dict[str, Any] = {"kind": "openai", "base_url": upstream + "/v1"}
        if price is not None:
            model |= {"usd_per_mtok_in": price[0], "usd_per_mtok_out": price[1]}
        settings: Settings = parse_settings({
            "gateway": {"spool_dir": str(spool_dir), "spool_fsync_ms": 5, "upstream": "recorded-llm"},
            "models": {"recorded-llm": model}})
        app = build_app(settings, store, keys=frozenset())
        with ServerThread(app) as gateway:
            result = asyncio.run(_send_all(gateway + "/v1/chat/completions", calls, concurrency,
                                           progress))
        result.recorded = app.recorder.writer.stored
    return result


async def _send_all(url: str, calls: Sequence[Call], concurrency: int,
                    progress: Callable[[int], None] | None) -> ReplayResult:
    import aiohttp

    result = ReplayResult()
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(call: Call) -> None:
            body = call.request.model_dump(mode="json", exclude_none=True)
            body.setdefault("model", call.model or "recorded")
            headers = {"content-type": "application/json", "x-fledgling-task": call.task,
                       "x-fledgling-call-id": call.id, "x-request-id": call.id,
                       "x-fledgling-metadata": json.dumps(call.metadata, separators=(",", ":"))}
            if call.session_id:
                headers["x-fledgling-session"] = call.session_id
            if call.trace_id:
                headers["x-fledgling-trace"] = call.trace_id
            async with gate, session.post(url, data=orjson.dumps(body), headers=headers) as resp:
                answer = await resp.json(loads=orjson.loads, content_type=None)
            result.sent += 1
            if resp.status == 200:
                result.answered += 1
                message = answer["choices"][0]["message"]
                expected = call.response.message() if call.response else {}
                if (message.get("content") == expected.get("content")
                        and (message.get("tool_calls") or None) == expected.get("tool_calls")):
                    result.identical += 1
            elif call.response is None:
                result.failed += 1
            if progress is not None:
                progress(result.sent)

        await asyncio.gather(*(one(c) for c in calls))
    return result
