"""Langfuse -> `Call`s: exported files, and a live pull from a Langfuse host's public API.

A Langfuse GENERATION observation is one LLM call. It carries `input`, `output`, `model`
(`providedModelName` in API v2), `modelParameters`, `usageDetails` (legacy `usage`),
`costDetails`, `startTime`/`endTime`, `level`/`statusMessage` and `metadata`. Real exports are
untidy: `input`, `output` and `metadata` may be JSON *text*, token counts may be strings, and
messages come in the OpenAI integration's shape or the LangChain integration's; the readers in
`fledgling.capture.messages` take both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from fledgling.calls import Call, Feedback, Request, Usage, default_task, stable_id
from fledgling.capture import coerce, messages, pyrepr
from fledgling.capture.coerce import BadField
from fledgling.capture.records import Skipped, Tally, reading, records
from fledgling.errors import ConfigError, InputError, UpstreamError

if TYPE_CHECKING:
    from fledgling.store import Store

SOURCE = "langfuse"
_FLOAT_PARAMS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
_INT_PARAMS = {"max_tokens": "max_tokens", "maxTokens": "max_tokens",
               "max_completion_tokens": "max_completion_tokens", "seed": "seed", "n": "n"}
_PASS_PARAMS = ("stop", "response_format", "tool_choice", "parallel_tool_calls", "logit_bias",
                "reasoning_effort")

Progress = Callable[[int, int | None], None]


# -- files -----------------------------------------------------------------------------------

def calls_in_file(path: Path, task: str | None, tally: Tally) -> Iterator[Call]:
    """Calls in a Langfuse export: JSON (a trace, a list of traces, or `{"data": [...]}`) or
    JSONL of traces or observations. Observations that are not GENERATIONs are counted as
    ignored; a GENERATION whose shape is not understood is skipped and named in `tally.skipped`
    (an error instead with `tally.strict`)."""
    source = str(path)
    for where, value, suspect in records(path, tally):
        with reading(source, where):
            if suspect and coerce.unstorable(value):
                raise BadField(None, "holds a NUL character, which the store cannot keep")
            items = _items(value)
        for i, item in enumerate(items):
            here = where if len(items) == 1 else f"{where} record {i + 1}"
            with reading(source, here):
                pairs = _observations(item)
            for n, (obs, trace) in enumerate(pairs, 1):
                with reading(source, f"{here}, observation #{n}"):
                    if not _is_generation(obs):
                        tally.ignored += 1
                        continue
                tally.seen += 1
                obs_id = obs.get("id")
                label = f"{here}, observation {str(obs_id)[:80] if obs_id else f'#{n}'}"
                try:
                    with reading(source, label):
                        call = call_from_observation(obs, trace, task=task)
                except InputError as exc:
                    if tally.strict:
                        raise
                    tally.skipped.append(Skipped(source, label, exc.reason, exc.field,
                                                 _shape_at(obs, exc.field)))
                    continue
                yield call


def _shape_at(obs: dict[str, Any], field: str | None) -> str | None:
    """The shape of the top-level value a failing field sits in (`input`, `output`, ...)."""
    if not field:
        return None
    top = field.split(".")[0].split("[")[0]
    return messages.shape(obs[top]) if top in obs else None


def _items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        return value["data"]
    return [value]


def _observations(item: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(observation, its trace) pairs of one trace, or the single observation given."""
    if not isinstance(item, dict):
        raise BadField(None, f"must be a trace or an observation object, got {coerce.type_name(item)}")
    if "observations" in item:
        obs = coerce.array(item["observations"], "observations")
        trace = coerce.obj(item["trace"], "trace") if "trace" in item else item  # an export's wrapper
        return [(o, trace) for o in obs if not isinstance(o, str)]
    if "type" in item or "startTime" in item:
        return [(item, {})]
    raise BadField("observations", "is missing: expected a trace with `observations` or an "
                   "observation with `type`")


def _is_generation(obs: Any) -> bool:
    if not isinstance(obs, dict):
        raise BadField("observations", f"each observation must be an object, got {coerce.type_name(obs)}")
    kind = obs.get("type")
    return isinstance(kind, str) and kind.upper() == "GENERATION"


# -- one observation -------------------------------------------------------------------------

def call_from_observation(obs: dict[str, Any], trace: dict[str, Any] | None = None, *,
                          task: str | None = None) -> Call:
    """One GENERATION observation (with its trace, when known) -> `Call`."""
    trace = trace or {}
    obs_id = obs.get("id")
    if not isinstance(obs_id, (str, int)) or isinstance(obs_id, bool) or obs_id == "":
        raise BadField("id", "is missing")
    start = coerce.timestamp(obs.get("startTime"), "startTime")
    end = coerce.timestamp(obs["endTime"], "endTime") if obs.get("endTime") else None
    metadata = _obj(obs.get("metadata"), "metadata")
    trace_meta = _obj(trace.get("metadata"), "trace.metadata")
    params = _obj(obs.get("modelParameters"), "modelParameters")
    raw_input = coerce.maybe_json(obs.get("input"), "input")
    request = _request(raw_input, params, metadata)
    level = obs.get("level")
    error = None
    if isinstance(level, str) and level.upper() == "ERROR":
        error = coerce.text(obs.get("statusMessage"), "statusMessage") or "error (level ERROR)"
    model = coerce.text(obs.get("model") or obs.get("providedModelName"), "model")
    usage, usage_parts = _usage(obs)
    lf: dict[str, Any] = {"observation_id": str(obs_id)}
    for key, value in (("name", obs.get("name")), ("trace_name", trace.get("name")),
                       ("user_id", trace.get("userId") or obs.get("userId")),
                       ("environment", obs.get("environment")), ("tags", trace.get("tags") or None),
                       ("parent_observation_id", obs.get("parentObservationId")),
                       ("usage_details", usage_parts or None),
                       ("model_parameters", params or None), ("metadata", metadata or None)):
        if value is not None:
            lf[key] = value
    call = Call(
        id=stable_id(SOURCE, obs_id),
        task=task or _meta_task(metadata) or _meta_task(trace_meta)
        or _name(trace.get("name")) or default_task(request.messages),
        trace_id=coerce.text(obs.get("traceId") or trace.get("id"), "traceId"),
        session_id=coerce.text(trace.get("sessionId") or obs.get("sessionId"), "sessionId"),
        source=SOURCE,
        created_at=start,
        provider=_provider(metadata),
        model=model,
        request=request,
        response=messages.response(obs.get("output"), "output"),
        usage=usage,
        latency_ms=max((end - start).total_seconds() * 1000, 0.0) if end else None,
        cost_usd=_cost(obs),
        status="error" if error else "ok",
        error=error,
        feedback=_feedback(trace.get("scores"), str(obs_id)),
        metadata={"langfuse": lf},
    )
    return coerce.check_storable(call)


def _obj(value: Any, field: str) -> dict[str, Any]:
    """An object field, which some exports hold as JSON text and some as a Python repr."""
    value = coerce.maybe_json(value, field)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        found = pyrepr.literal(value)
        if isinstance(found, dict):
            return found
    return coerce.obj(value, field)


def _request(raw_input: Any, params: dict[str, Any], metadata: dict[str, Any]) -> Request:
    body: dict[str, Any] = {}
    for key in _FLOAT_PARAMS:
        if key in params:
            value = _lenient(coerce.number, params[key], f"modelParameters.{key}")
            if value is not None:
                body[key] = value
    for key, name in _INT_PARAMS.items():
        if key in params:
            value = _lenient(coerce.integer, params[key], f"modelParameters.{key}")
            if value is not None:
                body[name] = value
    for key in _PASS_PARAMS:
        if params.get(key) is not None:
            body[key] = coerce.maybe_json(params[key], f"modelParameters.{key}")
    tools_raw = None
    if isinstance(raw_input, dict):
        for key in ("tool_choice", "response_format"):
            if raw_input.get(key) is not None:
                body[key] = coerce.maybe_json(raw_input[key], f"input.{key}")
        tools_raw = raw_input.get("functions")
    invocation_params = metadata.get("invocation_params")
    invocation = invocation_params if isinstance(invocation_params, dict) else {}
    attrs_raw = metadata.get("attributes")
    attrs: dict[str, Any] = attrs_raw if isinstance(attrs_raw, dict) else {}
    conv = messages.conversation(raw_input, "input")
    body["messages"] = conv.messages
    system = attrs.get("gen_ai.system_instructions")
    if system is not None and not (conv.messages and conv.messages[0]["role"] in ("system", "developer")):
        text = messages.system_text(system, "metadata.attributes.gen_ai.system_instructions")
        if text:
            body["messages"] = [{"role": "system", "content": text}, *conv.messages]
    found = list(conv.tools) or messages.tools(tools_raw, "input.functions") or []
    for where, raw in (("metadata.tools", metadata.get("tools")),
                       ("metadata.invocation_params.tools", invocation.get("tools")),
                       ("modelParameters.tools", params.get("tools")),
                       ("metadata.attributes.gen_ai.tool.definitions", attrs.get("gen_ai.tool.definitions")),
                       ("metadata.attributes.model_request_parameters", attrs.get("model_request_parameters"))):
        if not found and raw is not None:
            found = messages.tools(raw, where) or []
    if not found:
        found = _indexed_tools(attrs)
    body["tools"] = found or None
    if isinstance(body.get("tool_choice"), str) and body["tool_choice"] not in ("auto", "none", "required"):
        body.pop("tool_choice")
    if body.get("response_format") is not None and not isinstance(body["response_format"], dict):
        body.pop("response_format")
    return Request.model_validate(body)


def _indexed_tools(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenInference's `llm.tools.N.tool.json_schema`, as Langfuse keeps the span attributes."""
    found = []
    for key in sorted((k for k in attrs if k.startswith("llm.tools.") and k.endswith(".tool.json_schema")),
                      key=lambda k: int(k.split(".")[2]) if k.split(".")[2].isdigit() else 0):
        found.append(messages.tool(attrs[key], f"metadata.attributes.{key}"))
    return found


def _lenient(convert: Callable[..., Any], value: Any, field: str) -> Any:
    """Model parameters are advisory: "Infinity" or "auto" for max_tokens means no value."""
    try:
        return convert(value, field)
    except BadField:
        return None


def _usage(obs: dict[str, Any]) -> tuple[Usage, dict[str, int]]:
    """Input and output tokens as Langfuse counts them, and the parts kept apart.

    In `usageDetails` the keys `input`, `input_*` (`input_cached_tokens`, `input_cache_read`,
    ...) add up to the input tokens, `output`, `output_*` to the output; dotted keys
    (`prompt_details.cache_read`, `completion_details.reasoning`) are parts of those totals
    that OpenInference reports, never additions. Cache counts are returned apart."""
    details = _obj(obs.get("usageDetails"), "usageDetails")
    parts: dict[str, int] = {}
    if details:
        totals = {"input": 0, "output": 0}
        for key, value in details.items():
            count = coerce.integer(value, f"usageDetails.{key}", default=0) or 0
            side = "input" if key.startswith(("input", "prompt")) else \
                "output" if key.startswith(("output", "completion")) else None
            if "." in key or "_details" in key or side is None:
                if key != "total" and count:
                    parts[key] = count
                continue
            if key not in ("input", "output", "prompt", "completion", "prompt_tokens", "completion_tokens") \
                    and count:
                parts[key] = count
            totals[side] += count
        return Usage(input_tokens=min(totals["input"], coerce.INT32_MAX),
                     output_tokens=min(totals["output"], coerce.INT32_MAX)), parts
    legacy = _obj(obs.get("usage"), "usage")
    inp = legacy.get("input", legacy.get("promptTokens", obs.get("promptTokens")))
    out = legacy.get("output", legacy.get("completionTokens", obs.get("completionTokens")))
    if inp is None and out is None:
        return Usage(missing=True), parts  # no counts at all: unknown, not 0
    return Usage(input_tokens=coerce.integer(inp, "usage.input", default=0),
                 output_tokens=coerce.integer(out, "usage.output", default=0)), parts


def _cost(obs: dict[str, Any]) -> float | None:
    details = _obj(obs.get("costDetails"), "costDetails")
    if "total" in details:
        return coerce.number(details["total"], "costDetails.total")
    for key in ("totalCost", "calculatedTotalCost"):
        if obs.get(key) is not None:
            return coerce.number(obs[key], key)
    if details:
        return sum(coerce.number(v, f"costDetails.{k}") or 0.0 for k, v in details.items())
    return None


def _feedback(scores: Any, obs_id: str) -> Feedback | None:
    """The scores on this observation, else the trace-level ones (ids alone are skipped).

    The first becomes the feedback's score or label; all of them, each with its name, are kept
    in `scores`."""
    scores = [s for s in coerce.array(scores, "trace.scores") if isinstance(s, dict)]
    mine = [s for s in scores if s.get("observationId") == obs_id] or \
        [s for s in scores if not s.get("observationId")]
    if not mine:
        return None
    kept = [_score(s, f"trace.scores[{i}]") for i, s in enumerate(mine)]
    first = kept[0]
    return Feedback.model_validate({  # `name` and `scores` are extra fields a Feedback keeps
        "score": first["value"], "label": first.get("string_value"), "comment": first.get("comment"),
        "name": first.get("name"), "scores": kept})


def _score(s: dict[str, Any], field: str) -> dict[str, Any]:
    value = s.get("value")
    label = s.get("stringValue")
    out: dict[str, Any] = {
        "name": s.get("name") if isinstance(s.get("name"), str) else None,
        "value": float(value) if isinstance(value, bool) else coerce.number(value, f"{field}.value"),
        "string_value": label if isinstance(label, str) else None,
        "data_type": s.get("dataType") if isinstance(s.get("dataType"), str) else None,
        "comment": coerce.text(s.get("comment"), f"{field}.comment"),
        "source": s.get("source") if isinstance(s.get("source"), str) else None,
    }
    return {k: v for k, v in out.items() if v is not None or k == "value"}


def _meta_task(metadata: dict[str, Any]) -> str | None:
    fl = metadata.get("fledgling")
    for value in ((fl.get("task") if isinstance(fl, dict) else None), metadata.get("fledgling.task"),
                  metadata.get("task")):
        if isinstance(value, str) and value:
            return value
    return None


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _provider(metadata: dict[str, Any]) -> str | None:
    attrs_raw = metadata.get("attributes")
    attrs: dict[str, Any] = attrs_raw if isinstance(attrs_raw, dict) else {}
    for value in (metadata.get("ls_provider"), metadata.get("provider"), attrs.get("gen_ai.provider.name"),
                  attrs.get("gen_ai.system"), attrs.get("llm.provider"), attrs.get("llm.system"),
                  attrs.get("ai.model.provider")):
        if isinstance(value, str) and value:
            return value
    return None


# -- live pull -------------------------------------------------------------------------------

@dataclass
class PullResult:
    host: str
    api: str = "v2"
    pages: int = 0
    read: int = 0
    inserted: int = 0
    since: str | None = None
    cursor: str | None = None
    skipped: list[Skipped] = field(default_factory=list)
    """GENERATIONs not understood (unless `strict`), each naming page, observation and reason."""


def pull(store: Store, host: str, public_key: str, secret_key: str, *, since: datetime | None = None,
         task: str | None = None, progress: Progress | None = None, page_size: int = 100,
         timeout: float = 30.0, strict: bool = False) -> PullResult:
    """Import GENERATION observations from a Langfuse host, newer than the last pull.

    Uses `GET /api/public/v2/observations` (cursor pages) and falls back to the deprecated v1
    `GET /api/public/observations` (numbered pages) where v2 answers 404. Each page is stored in
    one transaction; the cursor (`langfuse:<host>`, the newest startTime seen) moves only when
    the whole pull succeeded, so an interrupted pull is simply repeated.
    """
    host = host.rstrip("/")
    key = f"{SOURCE}:{host}"
    if since is None and (stored := store.get_cursor(key)):
        since = datetime.fromisoformat(stored)
    result = PullResult(host=host, since=since.isoformat() if since else None)
    newest = since
    traces = _TraceCache()
    with httpx.Client(base_url=host, auth=(public_key, secret_key), timeout=timeout,
                      headers={"Accept": "application/json"}) as client:
        for page_no, observations in _pages(client, host, since, page_size, result):
            calls = []
            for obs in observations:
                if not isinstance(obs, dict):
                    raise UpstreamError(f"Langfuse at {host} sent a page {page_no} entry that is not "
                                        "an observation object")
                if not _is_generation(obs) and obs.get("type") is not None:
                    continue
                where = f"page {page_no}, observation {str(obs.get('id'))[:80]}"
                trace = traces.get(client, obs.get("traceId"))
                try:
                    with reading(f"{host}/api/public", where):
                        call = call_from_observation(obs, trace, task=task)
                except InputError as exc:
                    if strict:
                        raise
                    result.skipped.append(Skipped(f"{host}/api/public", where, exc.reason, exc.field,
                                                  _shape_at(obs, exc.field)))
                    continue
                calls.append(call)
                if newest is None or call.created_at > newest:
                    newest = call.created_at
            with store.transaction() as conn:
                result.inserted += store.insert_calls(calls, conn=conn)
            result.read += len(calls)
            if progress:
                progress(result.read, None)
    if newest is not None and newest != since:
        store.set_cursor(key, newest.isoformat())
    result.cursor = newest.isoformat() if newest else None
    return result


def _pages(client: httpx.Client, host: str, since: datetime | None, page_size: int,
           result: PullResult) -> Iterator[tuple[int, list[Any]]]:
    base = {"type": "GENERATION", "limit": page_size}
    if since is not None:
        base["fromStartTime"] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
    params = {**base, "fields": "core,basic,time,io,metadata,model,usage"}
    body = _get(client, host, "/api/public/v2/observations", params, allow_404=True)
    if body is not None:
        result.api = "v2"
        page_no = 1
        while True:
            result.pages += 1
            yield page_no, _data(body, host, page_no)
            cursor = (body.get("meta") or {}).get("cursor") if isinstance(body.get("meta"), dict) else None
            if not cursor:
                return
            page_no += 1
            body = _get(client, host, "/api/public/v2/observations", {**params, "cursor": cursor})
    result.api = "v1"
    page_no = 1
    while True:
        body = _get(client, host, "/api/public/observations", {**base, "page": page_no})
        assert body is not None
        result.pages += 1
        data = _data(body, host, page_no)
        yield page_no, data
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        total_pages = meta.get("totalPages")
        if not data or not isinstance(total_pages, int) or page_no >= total_pages:
            return
        page_no += 1


def _data(body: Any, host: str, page_no: int) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise UpstreamError(f"Langfuse at {host} sent page {page_no} without a `data` list; is "
                            "this a Langfuse host?")
    return body["data"]


def _get(client: httpx.Client, host: str, path: str, params: dict[str, Any], *,
         allow_404: bool = False) -> Any:
    try:
        resp = client.get(path, params=params)
    except httpx.TimeoutException:
        raise UpstreamError(f"Langfuse at {host} did not answer in time ({path}); try again, "
                            "or check the host is up") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"cannot reach Langfuse at {host} ({type(exc).__name__}: {exc}); "
                            "check --langfuse-url and your network") from None
    if resp.status_code in (401, 403):
        raise ConfigError(f"Langfuse at {host} rejected the API keys ({resp.status_code}); set "
                          "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to the project's public "
                          "and secret key (Settings > API Keys)")
    if resp.status_code == 404 and allow_404:
        return None
    if resp.status_code >= 400:
        raise UpstreamError(f"Langfuse at {host} answered {resp.status_code} to GET {path}: "
                            f"{resp.text[:200]}")
    try:
        return resp.json()
    except ValueError:
        raise UpstreamError(f"Langfuse at {host} sent a body that is not JSON for GET {path}") from None


class _TraceCache:
    """Trace name, session and scores for observations pulled without them (bounded)."""

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self.known: dict[str, dict[str, Any]] = {}

    def get(self, client: httpx.Client, trace_id: Any) -> dict[str, Any]:
        if not isinstance(trace_id, str) or not trace_id:
            return {}
        if trace_id not in self.known:
            if len(self.known) >= self.limit:
                self.known.pop(next(iter(self.known)))
            host = str(client.base_url).rstrip("/")
            body = _get(client, host, f"/api/public/traces/{trace_id}", {}, allow_404=True)
            trace = body if isinstance(body, dict) else {}
            self.known[trace_id] = {k: trace.get(k) for k in ("id", "name", "sessionId", "userId",
                                                               "tags", "metadata", "scores")}
        return self.known[trace_id]

