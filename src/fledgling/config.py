"""Settings from `fledgling.toml`: the one file every command and the gateway read.

Lookup order for the file: `--config PATH`, then `$FLEDGLING_CONFIG`, then `./fledgling.toml`;
with none of them, the embedded defaults apply. `$FLEDGLING_DB_URL` overrides the store URL.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fledgling.errors import ConfigError
from fledgling.urls import check_http_url, mask_url

DEFAULT_DB_URL = "sqlite:///.fledgling/fledgling.db"
DEFAULT_CONFIG_NAME = "fledgling.toml"

Mode = Literal["record", "shadow", "canary", "swapped"]
ModelKind = Literal["openai", "anthropic", "hf", "gguf", "recorded"]
Engine = Literal["auto", "llama.cpp", "transformers"]
GgufType = Literal["q8_0", "q4_0", "f16", "source"]
FallbackReason = Literal["error", "timeout", "contract", "low_confidence"]
DEFAULT_FALLBACK_ON: tuple[FallbackReason, ...] = ("error", "timeout", "contract")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Strict):
    url: str = DEFAULT_DB_URL


class ModelSettings(_Strict):
    """How to reach a model, and what it costs."""

    kind: ModelKind
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    model: str | None = Field(default=None, description="model name sent upstream (openai kind)")
    base: str | None = None
    path: str | None = None
    adapter: str | None = None
    # `engine` in fledgling.toml; the attribute has its own name so that `.engine` stays the
    # store's database engine alone (tests/store/test_layering.py).
    local_engine: Engine = Field(default="auto", alias="engine", description=(
        "local models: llama.cpp (fast on CPU; GGUF weights, an adapter is converted), transformers, "
        "or auto (llama.cpp when it is installed and the weights are or derive from a GGUF)"))
    gguf_type: GgufType = Field(default="q8_0", description=(
        "llama.cpp engine: the type the weights are served in; q8_0 (a copy of the weights in eight "
        "bits with the adapter merged in: near-lossless from the bundled Q4_1 and faster on prompts), "
        "q4_0, f16, or source (the file's own types, an adapter applied at run time)"))
    usd_per_mtok_in: float | None = Field(default=None, ge=0)
    usd_per_mtok_out: float | None = Field(default=None, ge=0)
    usd_per_cpu_hour: float | None = Field(default=None, ge=0, description=(
        "local models on a CPU: what an hour of the machine serving it costs; a call then costs this "
        "times its measured serving time (an estimate; unset: the model is unpriced)"))
    usd_per_gpu_hour: float | None = Field(default=None, ge=0, description=(
        "local models on a GPU: the same, per hour of the GPU machine"))
    timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_only(cls, url: str | None) -> str | None:
        """file://, ftp://, javascript: are never a model endpoint."""
        return None if url is None else check_http_url(url)

    @model_validator(mode="after")
    def _kind_needs(self) -> ModelSettings:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("kind 'openai' needs base_url (e.g. \"https://api.openai.com/v1\")")
        if self.kind == "anthropic" and not self.base_url:
            raise ValueError("kind 'anthropic' needs base_url (e.g. \"https://api.anthropic.com/v1\")")
        if self.kind == "gguf" and not (self.path or self.base):
            raise ValueError("kind 'gguf' needs path to a .gguf file (or base)")
        if self.kind == "hf" and not (self.path or self.base):
            raise ValueError("kind 'hf' needs base (a checkpoint directory or a known base name)")
        return self

    def api_key(self) -> str | None:
        """The secret, read from the environment at use time, never stored."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class TaskMatch(_Strict):
    """How a call is recognised as belonging to a task (first rule that matches wins)."""

    header: str | None = None
    model: str | None = None
    path: str | None = None
    system_prompt_contains: str | None = None


class Gate(_Strict):
    min: float | None = None
    max: float | None = None
    non_inferior: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_rule(self) -> Gate:
        if self.min is None and self.max is None and self.non_inferior is None:
            raise ValueError("a gate needs min, max or non_inferior")
        return self


class SprtRates(_Strict):
    """A live-gate metric: the share of bad outcomes it tolerates, and the share it must catch."""

    acceptable: float = Field(gt=0, lt=1)
    unacceptable: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> SprtRates:
        if self.unacceptable <= self.acceptable:
            raise ValueError("unacceptable must be above acceptable")
        return self


class LiveGate(_Strict):
    """`[tasks.X.swap.gate]`: when the live gate rolls a canary/swap back to shadow by itself."""

    enabled: bool = True
    disagreement: SprtRates = Field(default_factory=lambda: SprtRates(acceptable=0.05, unacceptable=0.25))
    fallback: SprtRates = Field(default_factory=lambda: SprtRates(acceptable=0.05, unacceptable=0.25))
    slow: SprtRates = Field(default_factory=lambda: SprtRates(acceptable=0.05, unacceptable=0.25))
    latency_ms: float | None = Field(default=None, gt=0, description="a candidate answer slower than this is 'slow'")
    alpha: float = Field(default=0.01, gt=0, lt=0.5)
    beta: float = Field(default=0.05, gt=0, lt=0.5)


class SwapSettings(_Strict):
    """`[tasks.X.swap]`: how the gateway serves the candidate and falls back to the LLM."""

    budget_ms: float = Field(default=5000, gt=0, description="candidate's time per request, then the LLM answers")
    retries: int = Field(default=1, ge=0, le=5)
    seed: int = 0
    max_tokens: int = Field(default=256, ge=1)
    guided: Literal["vllm", "llama.cpp"] | None = None
    batch_size: int = Field(default=8, ge=1)
    batch_wait_ms: float = Field(default=5.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    min_confidence: float | None = Field(
        default=None, le=0, description="mean log-probability under which the LLM answers instead "
        "(with fallback_on 'low_confidence'; see `fledgling rollout calibrate`)")
    gate: LiveGate = Field(default_factory=LiveGate)


class AutopilotSettings(_Strict):
    """`[tasks.X.autopilot]`: when `fledgling autopilot` retrains, and how it moves the rollout."""

    min_new_calls: int = Field(default=500, ge=1, description="new calls since the last round that start a retrain")
    hold_requests: int = Field(default=200, ge=1,
                               description="requests the live gate must hold at a stage before the next one")
    canary_steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0],
                                      description="canary shares (percent), in order, between shadow and swapped")
    min_coverage: float = Field(default=0.8, gt=0, le=1,
                                description="a selective SWAP counts only at this coverage or above")
    require_approval: bool = Field(default=False, description="every promotion waits for a person's approval")

    @model_validator(mode="after")
    def _increasing(self) -> AutopilotSettings:
        steps = self.canary_steps
        if any(not 0 < p < 100 for p in steps) or steps != sorted(set(steps)):
            raise ValueError("canary_steps must be increasing shares between 0 and 100")
        return self


class TaskSettings(_Strict):
    match: TaskMatch = Field(default_factory=TaskMatch)
    upstream: str | None = Field(default=None, description="model name in [models] the gateway forwards to")
    reference: str | None = None
    candidate: str | None = None
    mode: Mode = "record"
    canary_percent: float = Field(default=0.0, ge=0, le=100)
    fallback_on: list[FallbackReason] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_ON))
    gates: dict[str, Gate] = Field(default_factory=dict)
    monthly_calls: float | None = Field(default=None, ge=0, description=(
        "calls a month, for the report's saving; unset: from the traffic observed, when it spans an hour or more"))
    swap: SwapSettings = Field(default_factory=SwapSettings)
    autopilot: AutopilotSettings = Field(default_factory=AutopilotSettings)


class GatewaySettings(_Strict):
    """`[gateway]`: where the recording proxy listens, where it forwards, how it spools."""

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    upstream: str | None = Field(
        default=None, description="model name in [models] (or a base URL) for calls no task claims")
    spool_dir: str = ".fledgling/spool"
    spool_fsync_ms: float = Field(default=10.0, ge=0, le=10_000,
                                  description="group-commit window: the most a crash can lose")
    spool_fsync_records: int = Field(default=512, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    writer_batch: int = Field(default=500, ge=1)
    upstream_connect_timeout_s: float = Field(
        default=10.0, gt=0, description="to open a connection to an upstream (a free pool slot included)")
    upstream_idle_timeout_s: float = Field(
        default=60.0, gt=0, description="the longest an upstream may stay silent, before its answer "
        "or between two reads of it; a model's own timeout_s replaces it for that model")
    upstream_total_timeout_s: float = Field(
        default=600.0, gt=0, description="one whole upstream request, a streamed answer included")
    health_pending_bound_s: float = Field(
        default=30.0, gt=0, description="/health says degraded while a call has waited longer than "
        "this for the store")
    access_log: bool = Field(
        default=False, description="log one line per request served (method, path, status, ms); "
        "requests the gateway refuses are logged either way")
    health_fault_window_s: float = Field(
        default=30.0, ge=0, description="how long /health stays degraded after a passing fault (a "
        "thread restarted, a record quarantined, the spool directory recreated)")


class Settings(_Strict):
    store: StoreSettings = Field(default_factory=StoreSettings)
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    tasks: dict[str, TaskSettings] = Field(default_factory=dict)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    source_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _references_exist(self) -> Settings:
        for name, task in self.tasks.items():
            for role in ("upstream", "reference", "candidate"):
                ref = getattr(task, role)
                if ref is not None and ref not in self.models:
                    known = ", ".join(sorted(self.models)) or "none defined"
                    raise ValueError(f"tasks.{name}.{role} = '{ref}' is not a model in [models] "
                                     f"(known: {known})")
        upstream = self.gateway.upstream
        if upstream is not None and upstream not in self.models:
            try:
                check_http_url(upstream)
            except ValueError:
                known = ", ".join(sorted(self.models)) or "none defined"
                raise ValueError(f"gateway.upstream = '{mask_url(upstream)}' is neither a model in "
                                 f"[models] (known: {known}) nor an http(s) base URL such as "
                                 "https://api.openai.com/v1") from None
        return self

    @property
    def db_url(self) -> str:
        return os.environ.get("FLEDGLING_DB_URL") or self.store.url


def find_config_path(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing file to --config")
        return path
    env = os.environ.get("FLEDGLING_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"FLEDGLING_CONFIG={env} does not exist; unset it or point it at a file")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate the config; a problem becomes one `ConfigError` line naming key and fix."""
    found = find_config_path(path)
    if found is None:
        return Settings()
    try:
        raw = tomllib.loads(found.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found}: not valid TOML ({exc}); fix the syntax at that line") from None
    return parse_settings(raw, source=found)


def parse_settings(raw: dict[str, Any], source: Path | str = DEFAULT_CONFIG_NAME) -> Settings:
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None
    settings.source_path = Path(source)
    return settings


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = difflib.get_close_matches(loc[-1], allowed, n=1)
        fix = (f"did you mean '{hint[0]}'?" if hint
               else f"allowed keys: {', '.join(allowed)}" if allowed else "remove it")
        return f"unknown key '{key}'; {fix}"
    if err["type"] == "missing":
        return f"'{key}' is required; add it"
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{key}': {msg}" if loc else msg


def _allowed_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] | None = Settings
    i = 0
    while model is not None and i < len(loc):
        field = model.model_fields.get(loc[i])
        if field is None:
            return []
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        if inner and isinstance(inner[-1], type) and issubclass(inner[-1], BaseModel):  # dict[str, Model]
            model, i = inner[-1], i + 2
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model, i = ann, i + 1
        else:
            return []
    return sorted(model.model_fields) if model else []
