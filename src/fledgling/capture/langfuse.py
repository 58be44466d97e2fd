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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from fledgling.calls import Call, Feedback, Request, Usage, default_task, stable_id
from fledgling.capture import coerce, messages
from fledgling.capture.coerce import BadField
from fledgling.capture.records import Tally, reading, records
from fledgling.errors import ConfigError, UpstreamError

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
    """Calls in a Langfuse export: JSON (list of traces, or `{"data": [...]}`) or JSONL of
    traces or observations. Observations that are not GENERATIONs are counted as ignored."""
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
                obs_id = obs.get("id")
                label = f"{here}, observation {str(obs_id)[:80] if obs_id else f'#{n}'}"
                with reading(source, label):
                    call = call_from_observation(obs, trace, task=task)
                yield call


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
        return [(o, item) for o in obs if not isinstance(o, str)]
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
    metadata = coerce.obj(obs.get("metadata"), "metadata")
    trace_meta = coerce.obj(trace.get("metadata"), "trace.metadata")
    params = coerce.obj(obs.get("modelParameters"), "modelParameters")
    raw_input = coerce.maybe_json(obs.get("input"), "input")
    request = _request(raw_input, params, metadata)
    level = obs.get("level")
    error = None
    if isinstance(level, str) and level.upper() == "ERROR":
        error = coerce.text(obs.get("statusMessage"), "statusMessage") or "error (level ERROR)"
    model = coerce.text(obs.get("model") or obs.get("providedModelName"), "model")
    lf: dict[str, Any] = {"observation_id": str(obs_id)}
    for key, value in (("name", obs.get("name")), ("trace_name", trace.get("name")),
                       ("user_id", trace.get("userId") or obs.get("userId")),
                       ("environment", obs.get("environment")), ("tags", trace.get("tags")),
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
        usage=_usage(obs),
        latency_ms=max((end - start).total_seconds() * 1000, 0.0) if end else None,
        cost_usd=_cost(obs),
        status="error" if error else "ok",
        error=error,
        feedback=_feedback(trace.get("scores"), str(obs_id)),
        metadata={"langfuse": lf},
    )
    return coerce.check_storable(call)


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
        tools_raw = raw_input.get("tools") or raw_input.get("functions")
    invocation_params = metadata.get("invocation_params")
    invocation = invocation_params if isinstance(invocation_params, dict) else {}
    tools_raw = tools_raw or metadata.get("tools") or invocation.get("tools") or params.get("tools")
    body["messages"] = messages.messages(raw_input, "input")
    body["tools"] = messages.tools(tools_raw, "input.tools")
    if isinstance(body.get("tool_choice"), str) and body["tool_choice"] not in ("auto", "none", "required"):
        body.pop("tool_choice")
    if body.get("response_format") is not None and not isinstance(body["response_format"], dict):
        body.pop("response_format")
    return Request.model_validate(body)


def _lenient(convert: Callable[..., Any], value: Any, field: str) -> Any:
    """Model parameters are advisory: "Infinity" or "auto" for max_tokens means no value."""
    try:
        return convert(value, field)
    except BadField:
        return None


def _usage(obs: dict[str, Any]) -> Usage:
    details = coerce.obj(obs.get("usageDetails"), "usageDetails")
    if details:
        return Usage(input_tokens=_sum_prefixed(details, ("input", "prompt")),
                     output_tokens=_sum_prefixed(details, ("output", "completion")))
    legacy = coerce.obj(obs.get("usage"), "usage")
    inp = legacy.get("input", legacy.get("promptTokens", obs.get("promptTokens")))
    out = legacy.get("output", legacy.get("completionTokens", obs.get("completionTokens")))
    return Usage(input_tokens=coerce.integer(inp, "usage.input", default=0),
                 output_tokens=coerce.integer(out, "usage.output", default=0))


def _sum_prefixed(details: dict[str, Any], prefixes: tuple[str, ...]) -> int:
    """Langfuse splits tokens (`input`, `input_cached_tokens`, ...); the call's count is the sum."""
    total = 0
    for key, value in details.items():
        if key.startswith(prefixes) and not key.endswith("_details"):
            total += coerce.integer(value, f"usageDetails.{key}", default=0) or 0
    return min(total, coerce.INT32_MAX)


def _cost(obs: dict[str, Any]) -> float | None:
    details = coerce.obj(obs.get("costDetails"), "costDetails")
    if "total" in details:
        return coerce.number(details["total"], "costDetails.total")
    for key in ("totalCost", "calculatedTotalCost"):
        if obs.get(key) is not None:
            return coerce.number(obs[key], key)
    if details:
        return sum(coerce.number(v, f"costDetails.{k}") or 0.0 for k, v in details.items())
    return None


def _feedback(scores: Any, obs_id: str) -> Feedback | None:
    """The score on this observation, else the first trace-level score (ids alone are skipped)."""
    scores = [s for s in coerce.array(scores, "trace.scores") if isinstance(s, dict)]
    mine = [s for s in scores if s.get("observationId") == obs_id] or \
        [s for s in scores if not s.get("observationId")]
    if not mine:
        return None
    s = mine[0]
    value = s.get("value")
    label = s.get("stringValue")
    name = s.get("name")
    return Feedback.model_validate({  # `name` is one of the extra fields a Feedback keeps
        "score": coerce.number(value, "trace.scores.value") if not isinstance(value, bool) else float(value),
        "label": label if isinstance(label, str) else None,
        "comment": coerce.text(s.get("comment"), "trace.scores.comment"),
        "name": name if isinstance(name, str) else None})


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
    value = metadata.get("ls_provider") or metadata.get("provider")
    return value if isinstance(value, str) and value else None


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


def pull(store: Store, host: str, public_key: str, secret_key: str, *, since: datetime | None = None,
         task: str | None = None, progress: Progress | None = None, page_size: int = 100,
         timeout: float = 30.0) -> PullResult:
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
                with reading(f"{host}/api/public", where):
                    call = call_from_observation(obs, trace, task=task)
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

