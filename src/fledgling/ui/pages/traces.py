"""Traces: the filtered, keyset-paginated list of calls, and one call in full."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fledgling.contracts import load_contract, validate_call
from fledgling.errors import ContractError, InputError
from fledgling.store import CallFilter, Store
from fledgling.ui import queries
from fledgling.ui.pages.deps import not_found, store
from fledgling.ui.render import page

router = APIRouter()

FILTERS = ("task", "model", "source", "status", "since", "until")


@router.get("/traces")
def traces(request: Request, s: Store = Depends(store), task: str = "", model: str = "",
           source: str = "", status: str = "", since: str = "", until: str = "",
           before: str = "", after: str = "") -> Response:
    chosen = {"task": task, "model": model, "source": source, "status": status,
              "since": since, "until": until}
    flt = CallFilter(task=task or None, model=model or None, source=source or None,
                     status=status or None, since=_when(since, "since"), until=_when(until, "until"))
    result = queries.trace_page(s, flt, before=before or None, after=after or None)
    options = {col: queries.distinct_values(s, col) for col in ("task", "model", "source")}
    options["status"] = ["ok", "error"]
    return page(request, "traces.html", title="Traces", result=result, chosen=chosen,
                options=options, query={k: v for k, v in chosen.items() if v})


@router.get("/traces/{call_id}")
def call_detail(request: Request, call_id: str, s: Store = Depends(store)) -> Response:
    call = s.get_call(call_id)
    if call is None:
        raise not_found(f"no call with id {call_id}")
    contract = violations = None
    contract_error = None
    try:
        contract = load_contract(s, call.task)
        if contract is not None and call.response is not None:
            violations = validate_call(call, contract)
    except ContractError as exc:
        contract_error = str(exc)
    return page(request, "call.html", title=f"Call {call.id}", call=call,
                messages=[_message(m) for m in call.request.messages],
                contract=contract, violations=violations, contract_error=contract_error)


def _message(raw: dict[str, Any]) -> dict[str, Any]:
    """A message as the template shows it: role, text parts, tool calls, the tool call id."""
    content = raw.get("content")
    if isinstance(content, list):
        text = "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    else:
        text = "" if content is None else str(content)
    tool_calls = []
    for tc in raw.get("tool_calls") or []:
        fn = tc.get("function") or {}
        tool_calls.append({"id": tc.get("id"), "name": fn.get("name", ""),
                           "arguments": fn.get("arguments", "")})
    return {"role": str(raw.get("role", "?")), "text": text, "tool_calls": tool_calls,
            "tool_call_id": raw.get("tool_call_id"), "name": raw.get("name")}


def _when(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} {value!r} is not a date; use ISO format, e.g. 2026-11-25T14:00") from None
