"""`manifest.json`: the provenance of a trained model, the thing a report links to.

It names exactly what went in (base model and its hash, dataset version and hash, every
hyper-parameter, the seed, the prompt format) and what came out (metrics, files), and the
library versions that did it, so a result can be reproduced or questioned.
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from fledgling.errors import InputError

MANIFEST = "manifest.json"
REQUIRED = ("task", "backend", "base_model", "dataset", "hyperparameters", "seed", "metrics",
            "libraries", "prompt_format", "created_at", "artifacts")
LIBRARIES = ("fledgling", "torch", "transformers", "peft", "trl", "accelerate", "datasets",
             "tokenizers", "safetensors", "openai", "unsloth")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def build(**fields: Any) -> dict[str, Any]:
    """A manifest dict; raises if a required field is missing so none is ever written half-empty."""
    manifest = {"created_at": datetime.now(UTC).isoformat(), "libraries": library_versions(), **fields}
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise ValueError(f"manifest is missing {', '.join(missing)}")
    return manifest


def write(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write atomically: a reader never sees a half-written manifest."""
    path = Path(directory) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise InputError(f"{directory} has no {MANIFEST}; it is not a model trained by Fledgling "
                         "(train one with `fledgling train`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"not JSON ({exc})", source=str(path)) from None
