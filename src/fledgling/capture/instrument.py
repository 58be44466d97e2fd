"""`fledgling.instrument(client)`: record every chat completion an `openai` client makes.

For agents that cannot (or would rather not) point their base URL at the gateway: the client
keeps talking to its provider directly, and each `chat.completions.create` (streaming too) is
recorded through the same spool -> store path the gateway uses. The caller gets back exactly
the object the client returned: the same `ChatCompletion`, the same `Stream` instance (its
chunks are copied as they pass through), the same exceptions.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from fledgling.calls import default_task
from fledgling.capture.recording.exchange import Exchange, new_call_id, upstream_error_reason
from fledgling.capture.recording.recorder import Recorder

C = TypeVar("C")

_TRANSPORT_KWARGS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
_default: Recorder | None = None
_default_lock = threading.Lock()


def default_recorder() -> Recorder:
    """The process-wide recorder: the store and spool of fledgling.toml, drained at exit."""
    global _default
    with _default_lock:
        if _default is None:
            from fledgling.config import load_settings
            from fledgling.store import Store

            settings = load_settings()
            _default = Recorder.from_settings(Store(settings.db_url), settings.gateway).start()
            atexit.register(_default.close)
        return _default


def instrument(client: C, task: str | None = None, *, recorder: Recorder | None = None,
               session_id: str | None = None) -> C:
    """Record every chat completion made through `client` (`openai.OpenAI` or `AsyncOpenAI`).

    `task` names the task the calls belong to (else it is derived from the system prompt);
    `recorder` defaults to one writing to fledgling.toml's store. Returns the same client.
    """
    completions = client.chat.completions  # type: ignore[attr-defined]
    original = completions.create
    if getattr(original, "__fledgling_instrumented__", False):
        return client
    rec = recorder or default_recorder()
    provider = urlsplit(str(getattr(client, "base_url", ""))).hostname
    ctx = dict(task=task, session_id=session_id, provider=provider, recorder=rec)

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        ex, started = _begin(kwargs, ctx)
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            _fail(ex, exc, started, rec)
            raise
        if inspect.isawaitable(result):  # AsyncOpenAI
            return _finish_later(result, ex, started, rec)
        return _finish(result, ex, started, rec)

    create.__fledgling_instrumented__ = True  # type: ignore[attr-defined]
    completions.create = create
    return client


def _begin(kwargs: dict[str, Any], ctx: dict[str, Any]) -> tuple[Exchange, float]:
    request = {k: _jsonable(v) for k, v in kwargs.items()
               if k not in _TRANSPORT_KWARGS and type(v).__name__ not in ("NotGiven", "Omit")}
    headers = {k.lower(): v for k, v in (kwargs.get("extra_headers") or {}).items()
               if isinstance(v, str)}
    sent = request.get("messages")
    messages = sent if isinstance(sent, list) else []
    task = headers.get("x-fledgling-task") or ctx["task"] or default_task(messages)
    ex = Exchange(id=new_call_id(), created_at=datetime.now(UTC), request=request, task=task,
                  source="sdk", provider=ctx["provider"],
                  session_id=headers.get("x-fledgling-session") or ctx["session_id"],
                  trace_id=headers.get("x-fledgling-trace"),
                  metadata={"stream": request.get("stream") is True})
    return ex, time.perf_counter()


async def _finish_later(awaitable: Any, ex: Exchange, started: float, rec: Recorder) -> Any:
    try:
        result = await awaitable
    except Exception as exc:
        _fail(ex, exc, started, rec)
        raise
    return _finish(result, ex, started, rec)


def _finish(result: Any, ex: Exchange, started: float, rec: Recorder) -> Any:
    iterator = getattr(result, "_iterator", None)
    if iterator is None:  # a ChatCompletion
        ex.response = result.model_dump(mode="json") if hasattr(result, "model_dump") else result
        ex.latency_ms = (time.perf_counter() - started) * 1000
        rec.record(ex)
        return result
    ex.stream_chunks = []
    if inspect.isasyncgen(iterator) or hasattr(iterator, "__anext__"):
        result._iterator = _copy_async(iterator, ex, started, rec)
    else:
        result._iterator = _copy_sync(iterator, ex, started, rec)
    return result


def _copy_sync(iterator: Iterator[Any], ex: Exchange, started: float, rec: Recorder) -> Iterator[Any]:
    try:
        for chunk in iterator:
            _keep(chunk, ex, started)
            yield chunk
    except Exception as exc:
        ex.error = _reason(exc)
        raise
    finally:
        _close_stream(ex, started, rec)


async def _copy_async(iterator: AsyncIterator[Any], ex: Exchange, started: float,
                      rec: Recorder) -> AsyncIterator[Any]:
    try:
        async for chunk in iterator:
            _keep(chunk, ex, started)
            yield chunk
    except Exception as exc:
        ex.error = _reason(exc)
        raise
    finally:
        _close_stream(ex, started, rec)


def _keep(chunk: Any, ex: Exchange, started: float) -> None:
    assert ex.stream_chunks is not None
    if not ex.stream_chunks:
        ex.metadata["ttft_ms"] = round((time.perf_counter() - started) * 1000, 3)
    ex.stream_chunks.append(chunk.model_dump(mode="json") if hasattr(chunk, "model_dump") else chunk)


def _close_stream(ex: Exchange, started: float, rec: Recorder) -> None:
    ex.latency_ms = (time.perf_counter() - started) * 1000
    rec.record(ex)


def _fail(ex: Exchange, exc: BaseException, started: float, rec: Recorder) -> None:
    ex.error = _reason(exc)
    ex.status_code = getattr(exc, "status_code", None)
    ex.latency_ms = (time.perf_counter() - started) * 1000
    rec.record(ex)


def _reason(exc: BaseException) -> str:
    """Worded like the gateway's reasons, so both sources of error calls read the same."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    if status and isinstance(body, dict):
        return upstream_error_reason(status, body if "error" in body else {"error": body})
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"upstream {status}: {message}" if status else f"{type(exc).__name__}: {message}"


def _jsonable(value: Any) -> Any:
    """Request params as plain JSON (the SDK accepts pydantic models and iterables too)."""
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    return orjson.loads(orjson.dumps(value, default=_fallback))


def _fallback(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, set | tuple) or hasattr(value, "__iter__"):
        return list(value)
    raise TypeError(f"cannot record a parameter of type {type(value).__name__}")
