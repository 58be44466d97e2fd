"""What every model backend returns, and the one interface they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fledgling.calls import Request, Response


@dataclass
class Generation:
    """One model answer with its cost in time and tokens.

    `response` is None when the call failed (`error` says why). `parse_failed` marks an answer
    whose text looked like a tool call or JSON but could not be parsed; it is kept as text.
    `text` is what a local model wrote, before parsing (None for remote and recorded answers).
    `token_logprobs`: a local model's log-probability of each token it chose (after the grammar's
    mask: a forced token has 0.0), for the gateway's confidence check.
    """

    response: Response | None
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    parse_failed: bool = False
    text: str | None = None
    token_logprobs: list[float] | None = None


class ModelBackend(Protocol):
    """A model behind `generate`: a batch of chat-completions requests in, one answer per request.

    Recorded, OpenAI-compatible and local models all answer this way; what only a local model
    offers (`variant`, `render`) is on `LocalBackend`, opened with `spec.open_local`."""

    name: str

    async def generate(self, requests: list[Request]) -> list[Generation]: ...

    async def aclose(self) -> None: ...
