"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp server, TGI, ...).

Requests go out concurrently up to a limit; a timeout, connection error, 429 or 5xx is retried
with exponential backoff; what still fails becomes that item's `error`, never an exception.
Tools, tool_choice and response_format pass through untouched.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from fledgling.calls import Request, Response
from fledgling.models.generation import Generation

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAICompatibleBackend:
    def __init__(self, name: str, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 60.0, concurrency: int = 8, retries: int = 3,
                 backoff_s: float = 0.5, transport: httpx.AsyncBaseTransport | None = None):
        self.name = name
        self.model = model
        self.retries = retries
        self.backoff_s = backoff_s
        self._limit = asyncio.Semaphore(concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", headers=headers,
                                         timeout=timeout_s, transport=transport)

    async def generate(self, requests: list[Request]) -> list[Generation]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def aclose(self) -> None:
        await self._client.aclose()

    def _body(self, request: Request) -> dict[str, Any]:
        body = request.model_dump(mode="json", exclude_none=True)
        if self.model:
            body["model"] = self.model
        body.pop("stream", None)
        return body

    async def _one(self, request: Request) -> Generation:
        body = self._body(request)
        async with self._limit:
            started = time.perf_counter()
            error = "not attempted"
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                try:
                    resp = await self._client.post("chat/completions", json=body)
                except httpx.TimeoutException:
                    error = "timeout"
                    continue
                except httpx.TransportError as exc:
                    error = f"connection: {exc.__class__.__name__}"
                    continue
                if resp.status_code in RETRY_STATUS:
                    error = f"HTTP {resp.status_code}"
                    continue
                ms = (time.perf_counter() - started) * 1000
                if resp.status_code >= 400:
                    return Generation(None, ms, error=f"HTTP {resp.status_code}: {resp.text[:200]}")
                return _parse(resp, ms)
            return Generation(None, (time.perf_counter() - started) * 1000,
                              error=f"{error} after {self.retries + 1} attempts")


def _parse(resp: httpx.Response, ms: float) -> Generation:
    try:
        data = resp.json()
        choice = data["choices"][0]
        response = Response.from_message(choice["message"], choice.get("finish_reason"))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return Generation(None, ms, error=f"malformed response body ({exc.__class__.__name__})")
    usage = data.get("usage") or {}
    return Generation(response, ms, input_tokens=int(usage.get("prompt_tokens") or 0),
                      output_tokens=int(usage.get("completion_tokens") or 0))
