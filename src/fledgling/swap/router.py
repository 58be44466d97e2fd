"""Which task a request belongs to, and where it goes.

Task: the `X-Fledgling-Task` header, else the first `[tasks.X.match]` rule that matches (by
model name, request path, or a phrase of the system prompt), else a stable name derived from
the system prompt (`fledgling.calls.default_task`).

Route: the task's upstream (the LLM) and its rollout mode, read from the live rollout state:
`record` (the LLM answers, the call is recorded) or `shadow`/`canary`/`swapped`, which bring
in the task's candidate (see modes.py).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fledgling.calls import default_task
from fledgling.config import Settings, TaskMatch
from fledgling.errors import ConfigError
from fledgling.transport.upstream import Upstream
from fledgling.urls import check_http_url, mask_url

if TYPE_CHECKING:
    from fledgling.swap.live_rollout import LiveRollout

TASK_HEADER = "x-fledgling-task"


@dataclass(frozen=True)
class Route:
    """What the pipeline does with one request: `record` = forward to `upstream`, record; the
    other modes involve the task's `candidate` too (see modes.py)."""

    task: str
    upstream: Upstream
    mode: Literal["record", "shadow", "canary", "swapped"] = "record"
    candidate: str | None = None
    canary_percent: float = 0.0
    changed_at: float | None = None  # when the rollout state was stored (restarts the live gate)


class Router:
    def __init__(self, settings: Settings, default_upstream: str | None = None):
        self._rules: list[tuple[str, TaskMatch]] = [
            (name, t.match) for name, t in settings.tasks.items()
            if t.match.model or t.match.path or t.match.system_prompt_contains]
        self._upstreams: dict[str, Upstream] = {}
        self.live: LiveRollout | None = None
        choice = default_upstream or settings.gateway.upstream
        self.default = _upstream_named(settings, choice) if choice else None
        for name, task in settings.tasks.items():
            if task.upstream:
                self._upstreams[name] = _upstream_named(settings, task.upstream)
        if self.default is None and not self._upstreams:
            raise ConfigError("the gateway has nowhere to forward: set [gateway] upstream (a model "
                              "name or base URL), a [tasks.X] upstream, or pass --upstream URL")

    def resolve_task(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> str:
        named = headers.get(TASK_HEADER)
        if named:
            return named.strip()
        model = body.get("model")
        messages = body.get("messages")
        messages = messages if isinstance(messages, list) else []
        for name, rule in self._rules:
            if rule.model and not (isinstance(model, str) and fnmatch.fnmatchcase(model, rule.model)):
                continue
            if rule.path and not (path.startswith(rule.path) or fnmatch.fnmatchcase(path, rule.path)):
                continue
            if rule.system_prompt_contains and rule.system_prompt_contains not in _system_prompt(messages):
                continue
            return name
        return default_task([m for m in messages if isinstance(m, dict)])

    def route(self, task: str) -> Route | None:
        """Where this task's calls go; None when nothing is configured for it. The mode comes
        from the live rollout state (a task without a candidate stays in record)."""
        upstream = self._upstreams.get(task, self.default)
        if upstream is None:
            return None
        state = self.live.get(task) if self.live is not None else None
        if state is None or state.mode == "record" or state.candidate is None:
            return Route(task=task, upstream=upstream)
        return Route(task=task, upstream=upstream, mode=state.mode,  # type: ignore[arg-type]
                     candidate=state.candidate, canary_percent=state.canary_percent,
                     changed_at=state.changed_at)

    def upstreams(self) -> list[Upstream]:
        seen = {u.name: u for u in ([self.default] if self.default else []) + list(self._upstreams.values())}
        return list(seen.values())


def _upstream_named(settings: Settings, choice: str) -> Upstream:
    if choice in settings.models:
        m = settings.models[choice]
        if m.kind not in ("openai", "anthropic"):
            raise ConfigError(f"model '{choice}' is kind '{m.kind}'; the gateway forwards only to "
                              "kind 'openai' (any OpenAI-compatible base_url) or 'anthropic' models")
        return Upstream.from_model(choice, m, settings.gateway)
    if choice.startswith(("http://", "https://")):
        try:
            check_http_url(choice)
        except ValueError as exc:
            raise ConfigError(f"--upstream: {exc}") from None
        gw = settings.gateway
        return Upstream(name=choice, base_url=choice.rstrip("/"), timeout_s=gw.upstream_idle_timeout_s,
                        connect_timeout_s=gw.upstream_connect_timeout_s,
                        total_timeout_s=gw.upstream_total_timeout_s)
    known = ", ".join(sorted(settings.models)) or "none defined"
    raise ConfigError(f"upstream '{mask_url(choice)}' is neither a model in [models] (known: {known}) nor "
                      "an http(s) base URL")


def _system_prompt(messages: list[Any]) -> str:
    parts: list[str] = []
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("system", "developer"):
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(str(content or ""))
    return "\n".join(parts)
