"""Fledgling: prove a small specialist model can do your agent's LLM calls, then switch traffic."""

from fledgling.errors import FledglingError

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it (tool.setuptools.dynamic)

__all__ = ["FledglingError", "__version__", "instrument"]


def __getattr__(name: str) -> object:
    # `fledgling.instrument` is imported on first use, so `import fledgling` stays light.
    if name == "instrument":
        from fledgling.capture.instrument import instrument

        return instrument
    raise AttributeError(f"module 'fledgling' has no attribute {name!r}")
