"""The `Call` record: one LLM call the agent made, in the OpenAI chat-completions shape.

Everything Fledgling captures (gateway, Langfuse, OpenTelemetry, JSONL, the client wrapper)
becomes a `Call`; everything downstream (contracts, curation, evals) reads `Call`s.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

Status = Literal["ok", "error"]


class Request(BaseModel):
    """The chat-completions request body, minus transport details. Unknown params are kept."""

    model_config = ConfigDict(extra="allow")

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


class ToolCall(BaseModel):
    """One function call in an assistant message. `arguments` stays the raw JSON text, as sent."""

    id: str | None = None
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> Any:
        """The arguments as JSON, or raises `ValueError` when the model emitted invalid JSON."""
        return orjson.loads(self.arguments or "{}")

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


class Response(BaseModel):
    """The assistant's answer: text content and/or tool calls, and why generation stopped."""

    model_config = ConfigDict(extra="allow")

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None

    @field_validator("tool_calls", mode="before")
    @classmethod
    def _accept_openai_shape(cls, value: Any) -> Any:
        if value is None:
            return []
        return [tool_call_from_openai(v) if isinstance(v, dict) and "function" in v else v
                for v in value]

    def message(self) -> dict[str, Any]:
        """The OpenAI assistant message this response is."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_openai() for tc in self.tool_calls]
        return msg

    @classmethod
    def from_message(cls, message: dict[str, Any], finish_reason: str | None = None) -> Response:
        return cls(content=message.get("content"), tool_calls=message.get("tool_calls") or [],
                   finish_reason=finish_reason)


class Usage(BaseModel):
    """Token counts as the source reported them. `missing`: the source reported none, so the
    counts are unknown (stored as NULL, never as 0) and so is the cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    missing: bool = Field(default=False, exclude=True)  # dumped as null counts, see below

    @model_validator(mode="before")
    @classmethod
    def _null_is_unknown(cls, value: Any) -> Any:
        """A dump with null counts (`{"input_tokens": null, ...}`) reads back as unknown usage."""
        if isinstance(value, dict) and "missing" not in value and any(
                k in value and value[k] is None for k in ("input_tokens", "output_tokens")):
            return {"missing": True}
        return value

    @model_serializer(mode="wrap")
    def _unknown_is_null(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Unknown usage dumps as null counts, never as 0 (JSON views, exports, the spool)."""
        out: dict[str, Any] = handler(self)
        if self.missing:
            out.update({"input_tokens": None, "output_tokens": None})
        return out


class Feedback(BaseModel):
    """What a human or a downstream check said about the answer."""

    model_config = ConfigDict(extra="allow")

    score: float | None = None
    label: str | None = None
    comment: str | None = None
    corrected: Response | None = None

    @property
    def negative(self) -> bool:
        if self.label and self.label.lower() in {"bad", "negative", "wrong", "incorrect", "thumbs_down"}:
            return True
        return self.score is not None and self.score <= 0


class Call(BaseModel):
    """One captured LLM call."""

    id: str
    task: str = "default"
    trace_id: str | None = None
    session_id: str | None = None
    source: str
    created_at: datetime
    provider: str | None = None
    model: str | None = None
    request: Request
    response: Response | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float | None = None
    cost_usd: float | None = None
    status: Status = "ok"
    error: str | None = None
    feedback: Feedback | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def tool_names(self) -> list[str]:
        return [tc.name for tc in self.response.tool_calls] if self.response else []


def tool_call_from_openai(raw: dict[str, Any]) -> ToolCall:
    """Accept `{"id", "type": "function", "function": {"name", "arguments"}}`; arguments may be a dict."""
    fn = raw.get("function") or {}
    args = fn.get("arguments", "{}")
    if not isinstance(args, str):
        args = orjson.dumps(args).decode()
    return ToolCall(id=raw.get("id"), name=fn.get("name", ""), arguments=args)


def stable_id(*parts: object) -> str:
    """A deterministic call id from the parts that identify a call at its source.

    Re-importing the same record yields the same id, which is what makes imports idempotent.
    """
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"call_{h[:32]}"


def cost_usd(usage: Usage, usd_per_mtok_in: float | None, usd_per_mtok_out: float | None) -> float | None:
    """Cost of one call at a per-million-token list price, or None when the price or the usage is
    unknown."""
    if usage.missing or (usd_per_mtok_in is None and usd_per_mtok_out is None):
        return None
    return (usage.input_tokens * (usd_per_mtok_in or 0.0)
            + usage.output_tokens * (usd_per_mtok_out or 0.0)) / 1_000_000


def default_task(messages: list[dict[str, Any]]) -> str:
    """The stable task name for a call nobody labelled: derived from its system prompt.

    Calls of one agent share a system prompt, so they land in one task; with no system prompt
    the call goes to `default`.
    """
    for msg in messages:
        if msg.get("role") in ("system", "developer"):
            content = msg.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            if content:
                return "task-" + hashlib.sha256(str(content).strip().encode()).hexdigest()[:10]
    return "default"
