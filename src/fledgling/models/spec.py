"""Which model to run: a `[models.NAME]` entry of fledgling.toml, or a spec string on the CLI.

Spec strings: `openai:BASE_URL#MODEL`, `hf:PATH` (a transformers checkpoint; `hf:PATH+ADAPTER`
adds a PEFT adapter), `gguf:PATH` (a .gguf file) or `gguf:smollm2` (the bundled default SLM),
and `recorded` (the reference answers already in the traces).

A local model trained by Fledgling carries a `manifest.json` (next to its adapter or
checkpoint) naming the prompt format it was trained on; it is asked in that format unless the
caller says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fledgling.calls import Call
from fledgling.config import ModelSettings, Settings
from fledgling.errors import ConfigError
from fledgling.models.generation import ModelBackend
from fledgling.models.smollm2 import NAMES as SMOLLM2_NAMES
from fledgling.models.smollm2 import smollm2_gguf

if TYPE_CHECKING:
    from fledgling.models.llamacpp import LlamaCppBackend
    from fledgling.models.local import LocalBackend

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


def trained_manifest(ms: ModelSettings) -> dict[str, Any] | None:
    """The Fledgling manifest of a trained local model (beside its adapter or checkpoint), if any."""
    from fledgling.models import manifest

    for where in (ms.adapter, ms.path):
        if not where:
            continue
        for directory in (Path(where), Path(where).parent):
            if (directory / manifest.MANIFEST).is_file():
                return manifest.read(directory)
    return None


def default_prompt(ms: ModelSettings) -> tuple[str, str | None]:
    """(prompt format, task): the specialist prompt a model was trained on (`compact` or `lean`,
    from its manifest), else `chat`."""
    from fledgling.models.specialist import format_of

    info = trained_manifest(ms) or {}
    return format_of(info.get("prompt_format")) or "chat", info.get("task")


def open_backend(spec: ModelSpec, *, constrained: bool = False, recorded_calls: Iterable[Call] = (),
                 batch_size: int = 16, max_new_tokens: int = 256, concurrency: int = 8,
                 prompt: str | None = None, contract: Any = None, threads: int | None = None,
                 dtype: str | None = None, engine: str | None = None) -> ModelBackend:
    """The backend for a spec. `recorded_calls` are the calls a `recorded` backend can answer.

    Local models only: `prompt` is "chat", "compact" or "lean" (default: what it was trained on,
    see `default_prompt`); `contract` (a `fledgling.contracts.Contract`) names the task in the
    compact prompt and, when it has seen answers without a tool call, lets constrained decoding
    answer in text too; `threads` fixes the intra-op threads (default: the idle cores); `dtype`
    the precision ("float32" or "bfloat16"; default: bfloat16 where the hardware has it) on the
    transformers engine; `engine` overrides the model's `engine` setting.
    """
    ms = spec.settings
    if ms.kind == "recorded":
        from fledgling.models.recorded import RecordedBackend

        return RecordedBackend(recorded_calls, name=spec.name)
    if ms.kind == "openai":
        from fledgling.models.openai_compatible import OpenAICompatibleBackend

        return OpenAICompatibleBackend(spec.name, ms.base_url or "", model=ms.model, api_key=ms.api_key(),
                                       timeout_s=ms.timeout_s, concurrency=concurrency)
    return open_local(spec, constrained=constrained, batch_size=batch_size, max_new_tokens=max_new_tokens,
                      prompt=prompt, contract=contract, threads=threads, dtype=dtype, engine=engine)


def open_local(spec: ModelSpec, *, constrained: bool = False, batch_size: int = 16, max_new_tokens: int = 256,
               prompt: str | None = None, contract: Any = None, threads: int | None = None,
               dtype: str | None = None, engine: str | None = None) -> LocalBackend | LlamaCppBackend:
    """The local backend of an `hf` or `gguf` spec, with what only a local model offers
    (`variant`, `render`, `generate_sync`); the options are `open_backend`'s, and `engine`
    overrides the model's `engine` setting (see `choose_engine`)."""
    from fledgling.models.local import LocalBackend

    ms = spec.settings
    if not spec.is_local:
        raise ConfigError(f"model '{spec.name}' is kind '{ms.kind}', not a local model (hf or gguf)")
    trained_format, trained_task = default_prompt(ms)
    trained = trained_manifest(ms) or {}
    options: dict[str, Any] = dict(
        constrained=constrained, batch_size=batch_size, max_new_tokens=max_new_tokens,
        prompt=prompt or trained_format, threads=threads, task=getattr(contract, "task", None) or trained_task,
        allow_text=allows_text(contract), copy_rules=trained.get("copy_rules") or {},
        call_rules=trained.get("call_rules") or ())
    directory: str | Path
    gguf_file: str | None = None
    if ms.kind == "gguf" or (ms.base or "").lower() in SMOLLM2_NAMES and not ms.path:
        directory, gguf_file = _gguf_location(ms)
    else:
        directory = ms.path or ms.base or ""
        if not Path(directory).is_dir():
            raise ConfigError(f"model '{spec.name}': {directory} is not a checkpoint directory; give a "
                              "transformers model directory (hf) or a .gguf file (gguf)")
    if choose_engine(ms, engine) == "llama.cpp":
        try:
            return _open_llamacpp(spec, directory, gguf_file, options)
        except Exception as exc:  # a failed build or conversion: the transformers engine answers
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _warn_once(f"model '{spec.name}': the llama.cpp engine failed ({reason}); using transformers")
    return LocalBackend(spec.name, directory, gguf_file=gguf_file, adapter=ms.adapter, dtype=dtype, **options)


def choose_engine(ms: ModelSettings, engine: str | None = None) -> str:
    """`llama.cpp` or `transformers` for a local model. `auto` (the default) is llama.cpp when
    llama-cpp-python is installed and the weights are a GGUF file or derive from one (an
    adapter or a checkpoint tuned from the bundled SmolLM2); a missing llama-cpp-python is one
    warning and the transformers engine, never a failure."""
    from fledgling.models.llamacpp import available

    choice = engine or ms.local_engine
    if choice not in ("auto", "llama.cpp", "transformers"):
        raise ConfigError(f"unknown engine {choice!r}; use auto, llama.cpp or transformers")
    if choice == "transformers":
        return choice
    from_gguf = ms.kind == "gguf" or (ms.base or "").lower() in SMOLLM2_NAMES
    if choice == "auto" and not from_gguf:
        return "transformers"
    why = available()
    if why is not None:
        _warn_once(f"{why}; local models use the transformers engine (install it with `make setup`)")
        return "transformers"
    return "llama.cpp"


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    import logging

    if message not in _WARNED:
        _WARNED.add(message)
        logging.getLogger("fledgling.models").warning(message)


def _open_llamacpp(spec: ModelSpec, directory: str | Path, gguf_file: str | None,
                   options: dict[str, Any]) -> LlamaCppBackend:
    """The llama.cpp backend: the GGUF itself, with the adapter converted to a GGUF LoRA, or a
    fine-tuned checkpoint converted to a GGUF model of its base."""
    from fledgling.models import gguf_export
    from fledgling.models.llamacpp import LlamaCppBackend, load_tokenizer

    ms = spec.settings
    lora = None
    if gguf_file is not None:
        source = Path(directory) / gguf_file
        tokenizer = load_tokenizer(ms.adapter, None) if ms.adapter and (Path(ms.adapter) / "tokenizer.json").is_file() \
            else gguf_export.cached_tokenizer(source)
        if ms.gguf_type == "source":
            model = source
            lora = gguf_export.lora_gguf(ms.adapter, source) if ms.adapter else None
        else:  # the weights in the serving type, the adapter merged in
            model = gguf_export.serving_gguf(source, ms.gguf_type, ms.adapter)
    else:
        if ms.adapter or (ms.base or "").lower() not in SMOLLM2_NAMES:
            raise ConfigError("llama.cpp serves a GGUF, a GGUF with an adapter, or a checkpoint "
                              "fine-tuned from the bundled SmolLM2")
        model = gguf_export.checkpoint_gguf(directory, smollm2_gguf(), ms.gguf_type)
        tokenizer = load_tokenizer(directory, None)
    return LlamaCppBackend(spec.name, model, tokenizer=tokenizer, lora_path=lora, **options)


def allows_text(contract: Any) -> bool:
    """Whether a tool-calling contract has seen answers without a tool call."""
    if contract is None or getattr(contract, "kind", None) != "toolcall":
        return False
    return float((contract.stats or {}).get("no_tool_call_share") or 0.0) > 0.0
