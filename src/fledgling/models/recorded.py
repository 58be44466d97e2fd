"""The reference answers already in the traces, served as if a model gave them.

Scoring the hosted LLM this way costs nothing: its answer, latency and tokens are what the call
recorded. A request is matched to its call by the request's content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import orjson

from fledgling.calls import Call, Request
from fledgling.models.generation import Generation


def request_key(request: Request) -> str:
    body = orjson.dumps(request.model_dump(mode="json", exclude_none=True), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


class RecordedBackend:
    def __init__(self, calls: Iterable[Call], name: str = "recorded"):
        self.name = name
        self._calls = {request_key(c.request): c for c in calls}

    async def generate(self, requests: list[Request]) -> list[Generation]:
        out = []
        for req in requests:
            call = self._calls.get(request_key(req))
            if call is None:
                out.append(Generation(None, 0.0, error="no recorded answer for this request"))
            elif call.response is None:
                out.append(Generation(None, call.latency_ms or 0.0, call.usage.input_tokens,
                                      call.usage.output_tokens, error=call.error or "recorded call failed"))
            else:
                out.append(Generation(call.response, call.latency_ms or 0.0, call.usage.input_tokens,
                                      call.usage.output_tokens))
        return out

    async def aclose(self) -> None:
        return None
