"""Fledgling: prove a small specialist model can do your agent's LLM calls, then switch traffic."""

from fledgling.errors import FledglingError

__version__ = "0.1.0"

__all__ = ["FledglingError", "__version__"]
