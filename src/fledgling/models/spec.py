"""Which model to run: a `[models.NAME]` entry of fledgling.toml, or a spec string on the CLI.

Spec strings: `openai:BASE_URL#MODEL`, `hf:PATH` (a transformers checkpoint; `hf:PATH+ADAPTER`
adds a PEFT adapter), `gguf:PATH` (a .gguf file) or `gguf:smollm2` (the bundled default SLM),
and `recorded` (the reference answers already in the traces).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fledgling.calls import Call
from fledgling.config import ModelSettings, Settings
from fledgling.errors import ConfigError
from fledgling.models.generation import Backend
from fledgling.models.smollm2 import NAMES as SMOLLM2_NAMES
from fledgling.models.smollm2 import smollm2_gguf

SPEC_HELP = ("a model name from [models] in fledgling.toml, or openai:BASE_URL#MODEL, hf:PATH[+ADAPTER], "
             "gguf:PATH, gguf:smollm2, recorded")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    settings: ModelSettings

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def is_local(self) -> bool:
        return self.kind in ("hf", "gguf")


def resolve_model(text: str, settings: Settings | None = None) -> ModelSpec:
    """A model name from the config, else a spec string; a bad one is a one-line ConfigError."""
    if settings is not None and text in settings.models:
        return ModelSpec(text, settings.models[text])
    kind, _, rest = text.partition(":")
    try:
        if text == "recorded":
            return ModelSpec("recorded", ModelSettings(kind="recorded"))
        if kind == "openai" and rest:
            base_url, _, model = rest.partition("#")
            return ModelSpec(text, ModelSettings(kind="openai", base_url=base_url, model=model or None))
        if kind == "hf" and rest:
            path, _, adapter = rest.partition("+")
            return ModelSpec(text, ModelSettings(kind="hf", path=path, adapter=adapter or None))
        if kind == "gguf" and rest:
            return ModelSpec(text, ModelSettings(kind="gguf", path=rest))
    except ValueError as exc:
        raise ConfigError(f"model spec {text!r}: {exc}") from None
    known = ", ".join(sorted(settings.models)) if settings and settings.models else "none in fledgling.toml"
    raise ConfigError(f"unknown model {text!r} (models: {known}); use {SPEC_HELP}")


def _gguf_location(ms: ModelSettings) -> tuple[Path, str]:
    where = ms.path or ms.base or ""
    if where.lower() in SMOLLM2_NAMES:
        file = smollm2_gguf()
    else:
        file = Path(where)
        if not file.is_file():
            raise ConfigError(f"GGUF file {file} does not exist; give the path to a .gguf file "
                              "or gguf:smollm2 for the bundled default")
    return file.parent, file.name


def open_backend(spec: ModelSpec, *, constrained: bool = False, recorded_calls: Iterable[Call] = (),
                 batch_size: int = 16, max_new_tokens: int = 256, concurrency: int = 8) -> Backend:
    """The backend for a spec. `recorded_calls` are the calls a `recorded` backend can answer."""
    ms = spec.settings
    if ms.kind == "recorded":
        from fledgling.models.recorded import RecordedBackend

        return RecordedBackend(recorded_calls, name=spec.name)
    if ms.kind == "openai":
        from fledgling.models.openai_compatible import OpenAICompatibleBackend

        return OpenAICompatibleBackend(spec.name, ms.base_url or "", model=ms.model, api_key=ms.api_key(),
                                       timeout_s=ms.timeout_s, concurrency=concurrency)
    from fledgling.models.local import LocalBackend

    if ms.kind == "gguf" or (ms.base or "").lower() in SMOLLM2_NAMES and not ms.path:
        directory, file = _gguf_location(ms)
        return LocalBackend(spec.name, directory, gguf_file=file, adapter=ms.adapter,
                            constrained=constrained, batch_size=batch_size, max_new_tokens=max_new_tokens)
    path = ms.path or ms.base or ""
    if not Path(path).is_dir():
        raise ConfigError(f"model '{spec.name}': {path} is not a checkpoint directory; give a "
                          "transformers model directory (hf) or a .gguf file (gguf)")
    return LocalBackend(spec.name, path, adapter=ms.adapter, constrained=constrained,
                        batch_size=batch_size, max_new_tokens=max_new_tokens)
