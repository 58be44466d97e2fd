"""Which trainer backend a name means.

Each backend is imported on demand, since `lora` pulls in torch and transformers; the backends
themselves import only `backend.py`, so nothing here imports back.
"""

from __future__ import annotations

from fledgling.train.backend import BACKENDS, LaunchedBackend, TrainerBackend, TrainingError

LAUNCHED = ("lora", "unsloth")


def get_backend(name: str) -> TrainerBackend:
    """The backend object for `name` (one of `BACKENDS`)."""
    if name in LAUNCHED:
        return get_launched(name)
    if name == "openai":
        from fledgling.train.openai_finetune import OpenAIBackend

        return OpenAIBackend()
    if name == "dry-run":
        from fledgling.train.dry_run import DryRunBackend

        return DryRunBackend()
    raise TrainingError(f"unknown backend '{name}'; use one of {', '.join(BACKENDS)}")


def get_launched(name: str) -> LaunchedBackend:
    """A backend a worker process can train with (one of `LAUNCHED`)."""
    if name == "lora":
        from fledgling.train.lora import LoraBackend

        return LoraBackend()
    if name == "unsloth":
        from fledgling.train.unsloth import UnslothBackend

        return UnslothBackend()
    raise TrainingError(f"backend '{name}' does not run in worker processes; use one of {', '.join(LAUNCHED)}")
