"""A stand-in upstream that speaks the three APIs agents use: OpenAI chat completions, OpenAI
Responses and Anthropic Messages, each as JSON and as that API's own server-sent events.

A real loopback HTTP server (ASGI under uvicorn, `ServerThread`) with a scripted agent brain,
so a real client library can run a whole tool-using exchange against it:

- tools offered and no tool result since the last user message -> a call of the tool the user
  names (else the first), its arguments derived from the user's text and the tool's schema;
- a tool result after the last user message -> a final text answer that quotes every result;
- a JSON-schema output format (chat `response_format`, Responses `text.format`, Messages
  `output_config.format` / `output_format`) -> a JSON object valid for that schema;
- otherwise -> text that echoes the user.

Usage is on every answer, and on a chat-completions stream only when the client asked
(`stream_options.include_usage`), as the real APIs do. Every exchange is kept in `log` (path,
the request body, the canonical reply and the usage sent) so a test can compare what the
gateway stored with what the upstream really answered, without trusting the gateway's parser.

The Responses API keeps state on its server (`store`, `previous_response_id`, `item_reference`
input items); this stand-in keeps it too, so clients that rely on it work as against OpenAI.
Wire formats follow the SDKs' types (openai.types.responses, anthropic.types).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from fledgling.gateway.server import ServerThread

CREATED = 1700000000
SSE = b"text/event-stream"
JSON = b"application/json"


@dataclass
class Reply:
    """The brain's answer in one API-neutral shape."""

    text: str | None = None
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id stem, name, JSON args)


@dataclass
class Exchange:
    """One request the stand-in answered."""

    api: str  # "chat" | "responses" | "messages"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    reply: Reply
    usage: dict[str, int]  # input_tokens, output_tokens as sent
    stream: bool


# --- the scripted brain --------------------------------------------------------------------


def think(messages: list[dict[str, Any]], tools: list[dict[str, Any]],
          schema: dict[str, Any] | None, voice: str = "", required_only: bool = False) -> Reply:
    """`messages` in a neutral shape: {"role": "system"|"user"|"assistant"|"tool", "text": str}.
    `tools`: {"name", "parameters"}. `required_only`: a tool call leaves out the arguments its
    schema does not require (valid, but not what a strict schema asks for)."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    user_text = messages[last_user]["text"] if last_user >= 0 else ""
    results = [m["text"] for m in messages[last_user + 1:] if m["role"] == "tool"]
    if results:
        if schema is not None:
            return Reply(text=orjson.dumps(value_for(schema, user_text + " " + " ".join(results),
                                                     schema)).decode())
        return Reply(text=f"{voice}Here is what I found: {'; '.join(results)}")
    if tools:
        lowered = user_text.lower()
        tool = next((t for t in tools if t["name"].lower() in lowered
                     or t["name"].replace("_", " ").lower() in lowered), tools[0])
        params = tool.get("parameters") or {"type": "object"}
        args = value_for(params, user_text, params)
        if required_only:
            args = {k: v for k, v in args.items() if k in (params.get("required") or [])}
        stem = hashlib.sha1(f"{tool['name']}|{user_text}".encode()).hexdigest()[:16]
        return Reply(calls=[(stem, tool["name"], orjson.dumps(args).decode())])
    if schema is not None:
        return Reply(text=orjson.dumps(value_for(schema, user_text, schema)).decode())
    return Reply(text=f"{voice}You said: {user_text}")


_WORD = re.compile(r"[A-Za-z0-9_\-]+")
_INT = re.compile(r"(?<![\w.])-?\d+(?![\w.])")
_NUM = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def value_for(schema: dict[str, Any], text: str, root: dict[str, Any]) -> Any:
    """A value valid for `schema` (every property present, none extra), taken from `text`
    where the type allows: strings are the first identifier-like word (letters and digits),
    else the first capitalised word after the first, numbers the first number, enums the first member the text names."""
    if "$ref" in schema:
        ref = schema["$ref"]
        node: Any = root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return value_for(node, text, root)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return value_for(options[0], text, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        named = [v for v in schema["enum"] if isinstance(v, str) and v.lower() in text.lower()]
        return named[0] if named else schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: value_for(sub, text, root) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [value_for(schema.get("items") or {"type": "string"}, text, root)]
    if kind == "integer":
        found = _INT.search(text)
        return int(found.group()) if found else 1
    if kind == "number":
        found = _NUM.search(text)
        return float(found.group()) if found else 1.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    words = _WORD.findall(text)
    ids = [w for w in words if any(c.isdigit() for c in w) and any(c.isalpha() for c in w)]
    names = [w for w in words[1:] if w[0].isupper()]
    return ids[0] if ids else names[0] if names else (words[-1] if words else "")


def tokens(obj: Any) -> int:
    """A rough count (4 bytes a token), so usage and cost figures are non-trivial."""
    return max(1, len(orjson.dumps(obj)) // 4)


def pieces(text: str, size: int = 7) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _text_of(content: Any) -> str:
    """The text of a content value in any of the three APIs (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                if part.get("type") == "tool_result":
                    continue
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif "content" in part:
                    out.append(_text_of(part["content"]))
        return "".join(out)
    return orjson.dumps(content).decode()


# --- the server ----------------------------------------------------------------------------


class StandInAPIs:
    """ASGI app: `POST */chat/completions`, `POST */responses`, `POST */messages`,
    `GET */models`. `voice` prefixes its text answers, so a test can tell two instances apart
    (the reference LLM and a candidate); `required_only` (settable) makes its tool calls leave
    out optional arguments."""

    def __init__(self, *, voice: str = "", model: str = "stand-in-llm", required_only: bool = False):
        self.voice = voice
        self.required_only = required_only
        self.model = model
        self.url = ""  # set once served (RunningStandIn)
        self.log: list[Exchange] = []
        self._responses: dict[str, dict[str, Any]] = {}  # stored Responses, by id
        self._items: dict[str, dict[str, Any]] = {}  # stored output items, by id
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    def response_ids(self) -> set[str]:
        """The ids of the Responses it stored (what `previous_response_id` may name)."""
        with self._lock:
            return set(self._responses)

    def exchanges(self, api: str | None = None) -> list[Exchange]:
        with self._lock:
            return [e for e in self.log if api is None or e.api == api]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] == "GET" and path.endswith("/models"):
            await _send(send, 200, orjson.dumps({"object": "list", "data": [
                {"id": self.model, "object": "model", "created": CREATED, "owned_by": "stand-in"}]}))
            return
        route = {"chat/completions": self._chat, "responses": self._responses_api,
                 "messages": self._messages}
        handler = next((h for suffix, h in route.items() if path.rstrip("/").endswith("/" + suffix)), None)
        if scope["method"] != "POST" or handler is None:
            await _send(send, 404, orjson.dumps({"error": {
                "message": f"{scope['method']} {path} is not served by the stand-in",
                "type": "invalid_request_error", "param": None, "code": "not_found"}}))
            return
        try:
            request = orjson.loads(body)
            if not isinstance(request, dict):
                raise ValueError("the body is not a JSON object")
        except (orjson.JSONDecodeError, ValueError) as exc:
            await _send(send, 400, orjson.dumps({"error": {
                "message": f"stand-in cannot parse the body: {exc}", "type": "invalid_request_error",
                "param": None, "code": None}}))
            return
        await handler(path, headers, request, send)

    def _record(self, api: str, path: str, headers: dict[str, str], body: dict[str, Any],
                reply: Reply, usage: dict[str, int], stream: bool) -> None:
        with self._lock:
            self.log.append(Exchange(api, path, headers, body, reply, usage, stream))

    # --- OpenAI chat completions -------------------------------------------------------------

    async def _chat(self, path: str, headers: dict[str, str], req: dict[str, Any], send: Any) -> None:
        messages = [{"role": m.get("role", "user"), "text": _text_of(m.get("content"))}
                    for m in req.get("messages") or []]
        tools = [{"name": t["function"]["name"], "parameters": t["function"].get("parameters")}
                 for t in req.get("tools") or [] if t.get("type") == "function"]
        fmt = req.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        if fmt.get("type") == "json_schema" and schema is None:
            schema = {"type": "object"}
        reply = think(messages, tools, schema, self.voice, self.required_only)
        calls = [{"id": "call_" + stem, "type": "function", "function": {"name": name, "arguments": args}}
                 for stem, name, args in reply.calls]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None,
                                   "annotations": []}
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else "stop"
        usage = {"prompt_tokens": tokens(req.get("messages")) + tokens(req.get("tools") or []),
                 "completion_tokens": tokens(message)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        stream = bool(req.get("stream"))
        self._record("chat", path, headers, req, reply,
                     {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]},
                     stream)
        cid = "chatcmpl-" + hashlib.sha1(orjson.dumps(req)).hexdigest()[:24]
        model = req.get("model") or self.model
        if not stream:
            await _send(send, 200, orjson.dumps({
                "id": cid, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": {**usage, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
                "service_tier": "default", "system_fingerprint": None}))
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            if include_usage:
                obj["usage"] = None
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if reply.text is not None:
            events += [chunk({"content": p}) for p in pieces(reply.text)]
        for idx, tc in enumerate(calls):
            args = tc["function"]["arguments"]
            events.append(chunk({"tool_calls": [{"index": idx, "id": tc["id"], "type": "function",
                                                 "function": {"name": tc["function"]["name"],
                                                              "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": idx, "function": {"arguments": p}}]})
                       for p in pieces(args)]
        events.append(chunk({}, finish))
        if include_usage:
            events.append(b"data: " + orjson.dumps({
                "id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": None, "choices": [],
                "usage": usage}) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        await _stream(send, events)

    # --- OpenAI Responses --------------------------------------------------------------------

    def _response_input(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        """The whole conversation as Responses input items: the stored chain of
        `previous_response_id`, then this request's input, `item_reference`s resolved."""
        items: list[dict[str, Any]] = []
        prev = req.get("previous_response_id")
        if prev:
            if prev not in self._responses:
                raise LookupError(f"Previous response with id '{prev}' not found.")
            stored = self._responses[prev]
            items += stored["_input"] + stored["output"]
        raw = req.get("input")
        if isinstance(raw, str):
            raw = [{"role": "user", "content": raw}]
        for item in raw or []:
            if item.get("type") == "item_reference":
                if item["id"] not in self._items:
                    raise LookupError(f"Item with id '{item['id']}' not found.")
                items.append(self._items[item["id"]])
            else:
                items.append(item)
        return items

    async def _responses_api(self, path: str, headers: dict[str, str], req: dict[str, Any],
                             send: Any) -> None:
        try:
            items = self._response_input(req)
        except LookupError as exc:
            await _send(send, 400, orjson.dumps({"error": {
                "message": str(exc), "type": "invalid_request_error", "param": "previous_response_id",
                "code": "previous_response_not_found"}}))
            return
        messages: list[dict[str, Any]] = []
        if isinstance(req.get("instructions"), str):
            messages.append({"role": "system", "text": req["instructions"]})
        for item in items:
            kind = item.get("type", "message")
            if kind == "message":
                messages.append({"role": item.get("role", "user"), "text": _text_of(item.get("content"))})
            elif kind == "function_call_output":
                messages.append({"role": "tool", "text": _text_of(item.get("output"))})
            elif kind == "function_call":
                messages.append({"role": "assistant", "text": ""})
        tools = [{"name": t["name"], "parameters": t.get("parameters")}
                 for t in req.get("tools") or [] if t.get("type") == "function"]
        fmt = (req.get("text") or {}).get("format") or {}
        schema = (fmt.get("schema") or {"type": "object"}) if fmt.get("type") == "json_schema" else None
        reply = think(messages, tools, schema, self.voice, self.required_only)
        rid = "resp_" + hashlib.sha1(orjson.dumps([req, len(self._responses)])).hexdigest()[:32]
        output: list[dict[str, Any]] = []
        if reply.text is not None:
            output.append({"id": "msg_" + rid[5:], "type": "message", "status": "completed",
                           "role": "assistant", "content": [{
                               "type": "output_text", "text": reply.text, "annotations": [],
                               "logprobs": []}]})
        for stem, name, args in reply.calls:
            output.append({"id": "fc_" + stem, "type": "function_call", "status": "completed",
                           "arguments": args, "call_id": "call_" + stem, "name": name})
        usage = {"input_tokens": tokens(items) + tokens(req.get("tools") or []) +
                 tokens(req.get("instructions") or ""),
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": tokens(output), "output_tokens_details": {"reasoning_tokens": 0}}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        stream = bool(req.get("stream"))
        self._record("responses", path, headers, req, reply,
                     {"input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"]}, stream)
        text_config = req.get("text") or {"format": {"type": "text"}}
        text_config.setdefault("verbosity", "medium")
        response: dict[str, Any] = {
            "id": rid, "object": "response", "created_at": CREATED, "status": "completed",
            "background": False, "completed_at": CREATED + 1, "error": None, "incomplete_details": None,
            "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
            "max_tool_calls": None, "model": req.get("model") or self.model, "output": output,
            "parallel_tool_calls": req.get("parallel_tool_calls", True),
            "previous_response_id": req.get("previous_response_id"), "prompt_cache_key": None,
            "reasoning": {"effort": None, "summary": None}, "safety_identifier": None,
            "service_tier": "default", "store": req.get("store", True),
            "temperature": req.get("temperature", 1.0), "text": text_config,
            "tool_choice": req.get("tool_choice", "auto"),
            "tools": [{"strict": True, **t} if t.get("type") == "function" else t
                      for t in req.get("tools") or []],
            "top_logprobs": 0, "top_p": req.get("top_p", 1.0), "truncation": "disabled",
            "usage": usage, "user": None, "metadata": req.get("metadata") or {}}
        if response["store"]:
            with self._lock:
                self._responses[rid] = {**response, "_input": items}
                for item in output:
                    self._items[item["id"]] = item
        if not stream:
            await _send(send, 200, orjson.dumps(response))
            return
        await _stream(send, list(_responses_events(response)))

    # --- Anthropic Messages ------------------------------------------------------------------

    async def _messages(self, path: str, headers: dict[str, str], req: dict[str, Any], send: Any) -> None:
        if "x-api-key" not in headers and "authorization" not in headers:
            await _send(send, 401, orjson.dumps({"type": "error", "error": {
                "type": "authentication_error", "message": "x-api-key header is required"}}))
            return
        messages: list[dict[str, Any]] = []
        if req.get("system"):
            messages.append({"role": "system", "text": _text_of(req["system"])})
        for m in req.get("messages") or []:
            content = m.get("content")
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
            texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
            if texts or m.get("role") != "user":
                messages.append({"role": m.get("role", "user"), "text": "".join(texts)})
            for b in blocks:
                if b.get("type") == "tool_result":
                    messages.append({"role": "tool", "text": _text_of(b.get("content"))})
        tools = [{"name": t["name"], "parameters": t.get("input_schema")}
                 for t in req.get("tools") or [] if "input_schema" in t]
        fmt = (req.get("output_config") or {}).get("format") or req.get("output_format") or {}
        schema = (fmt.get("schema") or {"type": "object"}) if fmt.get("type") == "json_schema" else None
        reply = think(messages, tools, schema, self.voice, self.required_only)
        content_blocks: list[dict[str, Any]] = []
        if reply.text is not None:
            content_blocks.append({"type": "text", "text": reply.text})
        for stem, name, args in reply.calls:
            content_blocks.append({"type": "tool_use", "id": "toolu_" + stem, "name": name,
                                   "input": orjson.loads(args)})
        stop = "tool_use" if reply.calls else "end_turn"
        usage = {"input_tokens": tokens(req.get("messages")) + tokens(req.get("tools") or []) +
                 tokens(req.get("system") or ""),
                 "output_tokens": tokens(content_blocks),
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        stream = bool(req.get("stream"))
        self._record("messages", path, headers, req, reply,
                     {"input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"]}, stream)
        mid = "msg_" + hashlib.sha1(orjson.dumps(req)).hexdigest()[:24]
        model = req.get("model") or self.model
        if not stream:
            await _send(send, 200, orjson.dumps({
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": content_blocks, "stop_reason": stop, "stop_sequence": None,
                "usage": {**usage, "service_tier": "standard"}}))
            return
        await _stream(send, list(_messages_events(mid, model, content_blocks, stop, usage)))


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _responses_events(response: dict[str, Any]) -> Iterator[bytes]:
    """The Responses API's event sequence for a finished `response`."""
    seq = iter(range(10_000))

    def ev(kind: str, **data: Any) -> bytes:
        return _event(kind, {"type": kind, "sequence_number": next(seq), **data})

    start = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    yield ev("response.created", response=start)
    yield ev("response.in_progress", response=start)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            part = item["content"][0]
            yield ev("response.output_item.added", output_index=index,
                     item={**item, "status": "in_progress", "content": []})
            empty = {**part, "text": ""}
            yield ev("response.content_part.added", item_id=item["id"], output_index=index,
                     content_index=0, part=empty)
            for p in pieces(part["text"]):
                yield ev("response.output_text.delta", item_id=item["id"], output_index=index,
                         content_index=0, delta=p, logprobs=[])
            yield ev("response.output_text.done", item_id=item["id"], output_index=index,
                     content_index=0, text=part["text"], logprobs=[])
            yield ev("response.content_part.done", item_id=item["id"], output_index=index,
                     content_index=0, part=part)
        else:
            yield ev("response.output_item.added", output_index=index,
                     item={**item, "status": "in_progress", "arguments": ""})
            for p in pieces(item["arguments"]):
                yield ev("response.function_call_arguments.delta", item_id=item["id"],
                         output_index=index, delta=p)
            yield ev("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                     name=item["name"], arguments=item["arguments"])
        yield ev("response.output_item.done", output_index=index, item=item)
    yield ev("response.completed", response=response)


def _messages_events(mid: str, model: str, blocks: list[dict[str, Any]], stop: str,
                     usage: dict[str, int]) -> Iterator[bytes]:
    """The Messages API's event sequence: message_start, ping, each content block
    (start, deltas, stop), message_delta with the stop reason and output tokens, message_stop."""
    yield _event("message_start", {"type": "message_start", "message": {
        "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1, "service_tier": "standard"}}})
    yield _event("ping", {"type": "ping"})
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield _event("content_block_start", {"type": "content_block_start", "index": index,
                                                 "content_block": {"type": "text", "text": ""}})
            for p in pieces(block["text"]):
                yield _event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "text_delta", "text": p}})
        else:
            yield _event("content_block_start", {"type": "content_block_start", "index": index,
                                                 "content_block": {**block, "input": {}}})
            for p in pieces(orjson.dumps(block["input"]).decode()):
                yield _event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "input_json_delta",
                                                               "partial_json": p}})
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _event("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": usage["output_tokens"]}})
    yield _event("message_stop", {"type": "message_stop"})


async def _send(send: Any, status: int, body: bytes, ctype: bytes = JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Any, events: list[bytes]) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", SSE), (b"cache-control", b"no-cache")]})
    for e in events:
        await send({"type": "http.response.body", "body": e, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


class RunningStandIn:
    """`with RunningStandIn() as s: s.url ...`: a `StandInAPIs` served on a free loopback port.
    `s.url` is the root (clients add `/v1`, or Anthropic's SDK its own `/v1/messages`)."""

    def __init__(self, **kwargs: Any):
        self.app = StandInAPIs(**kwargs)
        self._server = ServerThread(self.app)
        self.url = ""

    def __enter__(self) -> StandInAPIs:
        self.url = self._server.start()
        self.app.url = self.url
        return self.app

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
