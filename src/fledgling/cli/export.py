"""`fledgling export otel|langfuse-scores`: send what Fledgling recorded back to an
observability backend (any OTLP/HTTP collector, Langfuse)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import typer

from fledgling.cli import options
from fledgling.cli.session import console, store
from fledgling.errors import ConfigError, InputError
from fledgling.store import CallFilter

app = typer.Typer(no_args_is_help=True, help="Send recorded calls and eval results back out: calls as "
                  "OpenTelemetry GenAI spans, eval results as Langfuse scores.")


@app.command("otel")
def otel(
    endpoint: str = typer.Option(..., "--endpoint", help="The OTLP/HTTP traces URL, e.g. "
                                 "http://localhost:4318/v1/traces or Langfuse's /api/public/otel/v1/traces."),
    task: str | None = options.task("Only calls of this task.", required=False),
    source: str | None = options.source(),
    since: str | None = options.since(),
    content: bool = typer.Option(False, "--content", help="Include messages, answers and tools "
                                 "(the conventions make content opt-in; without it: models, tokens, "
                                 "finish reasons, timings)."),
    redact: bool = typer.Option(False, "--redact", help="With --content: replace secrets and "
                                "personal data with placeholders first, as curation does."),
    header: list[str] = typer.Option([], "--header", help="An HTTP header for the collector, "
                                     "NAME=VALUE (e.g. Authorization=Basic ...); repeatable."),
) -> None:
    """Each stored call as one OTLP span in the current GenAI conventions."""
    from fledgling.capture.export import send_otel

    if redact and not content:
        raise InputError("--redact applies to content; add --content (or leave --redact out)")
    flt = CallFilter(task=task, source=source, since=_time(since, "--since"))
    scrub = _redactor() if redact else None
    result = send_otel(store().iter_calls(flt), endpoint, content=content, redact=scrub,
                       headers=_headers(header))
    console.print(f"sent {result.calls} calls as spans to {result.endpoint} in {result.requests} request(s)"
                  + (" with content" + (", redacted" if redact else "") if content else " without content"))


@app.command("langfuse-scores")
def langfuse_scores(
    run: str = typer.Argument(..., help="The eval run id (see `fledgling eval list`)."),
    langfuse_url: str = typer.Option(..., "--langfuse-url", help="The Langfuse host, e.g. "
                                     "https://cloud.langfuse.com. Keys come from LANGFUSE_PUBLIC_KEY "
                                     "and LANGFUSE_SECRET_KEY."),
) -> None:
    """An eval run's per-item metrics as Langfuse scores on the traces the calls came from."""
    from fledgling.capture.export import send_langfuse_scores

    public, secret = os.environ.get("LANGFUSE_PUBLIC_KEY"), os.environ.get("LANGFUSE_SECRET_KEY")
    missing = [n for n, v in (("LANGFUSE_PUBLIC_KEY", public), ("LANGFUSE_SECRET_KEY", secret)) if not v]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set; export the project's API keys "
                          "(Langfuse > Settings > API Keys)")
    st = store()
    items = st.eval_runs.items(run)
    if not items:
        raise InputError(f"eval run {run!r} has no items (or does not exist); see `fledgling eval list`")
    result = send_langfuse_scores(items, st.get_call, langfuse_url, public or "", secret or "", run_id=run)
    console.print(f"sent {result.sent} scores to {result.host}; {len(result.skipped)} item(s) skipped")
    for reason in result.skipped:
        console.print(f"  skipped {reason}", markup=False, highlight=False)


def _redactor() -> Any:
    from fledgling.curate.redact import redact_messages

    return lambda msgs: redact_messages(msgs)[0]


def _headers(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--header {pair[:40]!r} is not NAME=VALUE")
        out[name.strip()] = value
    return out


def _time(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{flag} {value!r} is not a time; use ISO, e.g. 2026-11-25T14:00") from None
