"""Model backends behind one async interface: `generate(requests) -> generations`."""

from fledgling.models.generation import Generation, ModelBackend
from fledgling.models.spec import ModelSpec, open_backend, open_local, resolve_model

__all__ = ["Generation", "ModelBackend", "ModelSpec", "open_backend", "open_local", "resolve_model"]
