"""Model backends behind one async interface: `generate(requests) -> generations`."""

from fledgling.models.generation import Backend, Generation
from fledgling.models.spec import ModelSpec, open_backend, resolve_model

__all__ = ["Backend", "Generation", "ModelSpec", "open_backend", "resolve_model"]
