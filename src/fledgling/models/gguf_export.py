"""Trained weights in the form llama.cpp reads: a PEFT LoRA as a GGUF LoRA adapter, a full
fine-tuned checkpoint as a GGUF model.

llama.cpp cannot read PEFT's safetensors. A LoRA adapter is rewritten tensor for tensor (llama.cpp
applies it at run time on the quantised base, as `scale * B @ A` beside each weight, the same sum
PEFT merges into the dequantised base on the transformers path). A full checkpoint is written as a
GGUF model that takes its metadata and tokenizer from the base GGUF it was tuned from and its
tensors from the checkpoint, each stored in the base file's type for that tensor (Q4_1 stays
Q4_1): the same size and speed as the base.

Served weights (`serving_gguf`): the bundled SmolLM2 is Q4_1, a type llama.cpp has no fast
matrix-matrix kernel for on x86, so it evaluates a prompt about as slowly per token as it decodes
(measured here: 224 prompt tokens/s at Q4_1 against ~390 at Q8_0 or Q4_0, at the same decoding
speed; `benchmarks/serving_latency.py` measures each type). By default the engine serves a copy in
Q8_0: each weight dequantised and stored again in eight bits, which keeps the four-bit values almost
exactly, and a LoRA adapter merged into it (`scale * B @ A` added to the dequantised weight) rather
than applied beside every weight at run time. `gguf_type = "source"` serves the file's own types
with the adapter applied at run time.

Names and layout follow llama.cpp's own converters (`convert_hf_to_gguf.py`,
`convert_lora_to_gguf.py`) for the `llama` architecture (SmolLM2): `model.layers.N.self_attn.q_proj`
is `blk.N.attn_q`, and the query and key projections are stored with their rows permuted (the
rotary halves interleaved), the order llama.cpp's RoPE expects; transformers undoes it when it
loads a GGUF, so the trained weights are in HF order and are permuted back here. For a LoRA only
`B` (the output side) is permuted.

Converted files are kept beside the adapter (or checkpoint) under a name with the hash of its
weights, so a second load converts nothing, and the adapter directory itself is never changed
(its content hash is the fingerprint replay checks).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from fledgling.errors import ConfigError

CONVERTER = "fledgling-gguf-2"  # part of the cache key: a fixed converter writes a new file
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn|mlp)\.(\w+)$")
_BLOCK_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
                "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
_TOP_NAMES = {"embed_tokens": "token_embd", "norm": "output_norm", "lm_head": "output"}
_NORM_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
_FILE_TYPES = {"q8_0": 7, "q4_0": 2, "f16": 1}  # llama.cpp's LLAMA_FTYPE_MOSTLY_* for general.file_type


def gguf_tensor_name(hf_name: str) -> str | None:
    """The llama.cpp name of a transformers Llama weight (`...layers.3.mlp.up_proj` ->
    `blk.3.ffn_up.weight`); None for a name it has no counterpart for."""
    name = hf_name.removesuffix(".weight")
    m = _LAYER.search(name)
    if m:
        mapped = _BLOCK_NAMES.get(m.group(3))
        return f"blk.{m.group(1)}.{mapped}.weight" if mapped else None
    m = re.search(r"(?:^|\.)layers\.(\d+)\.(input_layernorm|post_attention_layernorm)$", name)
    if m:
        return f"blk.{m.group(1)}.{_NORM_NAMES[m.group(2)]}.weight"
    last = name.rsplit(".", 1)[-1]
    return f"{_TOP_NAMES[last]}.weight" if last in _TOP_NAMES else None


def permute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """HF row order -> llama.cpp's for a query/key projection (`LlamaModel.permute`): per head,
    the two rotary halves interleaved."""
    shape = rows.shape
    return rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _heads(reader: Any) -> tuple[int, int]:
    arch = _field(reader, "general.architecture")
    return int(_field(reader, f"{arch}.attention.head_count")), int(_field(reader, f"{arch}.attention.head_count_kv"))


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        raise ConfigError(f"the base GGUF has no '{key}'; it is not a model llama.cpp can serve")
    return f.contents()


def _files_hash(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.name.encode())
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _target(source: Path, files: list[Path], base_gguf: Path, kind: str) -> Path:
    digest = _files_hash(files, f"{CONVERTER} {kind} {base_gguf.name}")
    return source.parent / f"{source.name}.{kind}-{digest}.gguf"


def lora_gguf(adapter_dir: str | Path, base_gguf: str | Path) -> Path:
    """The GGUF LoRA adapter of a PEFT LoRA directory, converted on first use."""
    adapter = Path(adapter_dir)
    out = _target(adapter, _adapter_files(adapter), Path(base_gguf), "lora")
    if not out.is_file():
        write_lora_gguf(adapter, Path(base_gguf), out)
    return out


def _adapter_files(adapter: Path) -> list[Path]:
    weights = adapter / "adapter_model.safetensors"
    config_file = adapter / "adapter_config.json"
    if not weights.is_file() or not config_file.is_file():
        raise ConfigError(f"{adapter} is not a PEFT adapter (no adapter_model.safetensors and "
                          "adapter_config.json)")
    return [weights, config_file]


def _read_lora(adapter: Path, base_gguf: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """(adapter_config, {GGUF tensor name: {"A": ..., "B": ...}}) of a plain PEFT LoRA, in HF order."""
    import gguf
    from safetensors import safe_open

    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("modules_to_save") \
            or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ConfigError(f"{adapter}: only plain LoRA adapters convert to GGUF (no DoRA, per-module "
                          "ranks or modules_to_save)")
    base_names = {t.name for t in gguf.GGUFReader(str(base_gguf)).tensors}
    pairs: dict[str, dict[str, np.ndarray]] = {}
    with safe_open(str(adapter / "adapter_model.safetensors"), "np") as st:
        for key in st.keys():  # noqa: SIM118 (safe_open is not a mapping)
            m = re.match(r"(.+)\.lora_([AB])\.weight$", key)
            if not m:
                raise ConfigError(f"{adapter}: tensor {key} is not a LoRA A/B matrix; cannot convert")
            name = gguf_tensor_name(m.group(1))
            if name is None or name not in base_names:
                raise ConfigError(f"{adapter}: {m.group(1)} has no counterpart in {base_gguf.name}")
            pairs.setdefault(name, {})[m.group(2)] = st.get_tensor(key).astype(np.float32)
    for name, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ConfigError(f"{adapter}: {name} has only one of its LoRA matrices")
    return config, pairs


def write_lora_gguf(adapter: Path, base_gguf: Path, out: Path) -> Path:
    """Write `adapter` (PEFT LoRA, safetensors) as a llama.cpp LoRA adapter for `base_gguf`."""
    import gguf

    config, pairs = _read_lora(adapter, base_gguf)
    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(_field(reader, "general.architecture"))
    n_head, n_kv_head = _heads(reader)
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha") or rank)
    if config.get("use_rslora"):
        alpha = alpha * rank ** 0.5  # llama.cpp scales by alpha/r, rsLoRA by alpha/sqrt(r)
    writer = gguf.GGUFWriter(str(_partial(out)), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    writer.add_string("general.name", f"{adapter.name} ({CONVERTER})")
    for name, ab in sorted(pairs.items()):
        b = ab["B"]
        if name.endswith("attn_q.weight"):
            b = permute_rows(b, n_head)
        elif name.endswith("attn_k.weight"):
            b = permute_rows(b, n_kv_head)
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(ab["A"]))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b))
    _finish(writer, out)
    return out


def checkpoint_gguf(model_dir: str | Path, base_gguf: str | Path, gguf_type: str = "source") -> Path:
    """The GGUF model of a full fine-tuned transformers checkpoint of the base, converted on first
    use, its tensors in `gguf_type` (`source`: the base file's type for each tensor)."""
    directory = Path(model_dir)
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{directory} has no .safetensors weights; cannot convert it to GGUF")
    qtype = serving_type(gguf_type)
    out = _target(directory, files, Path(base_gguf), "model" if qtype is None else f"model-{gguf_type}")
    if not out.is_file():
        write_checkpoint_gguf(directory, Path(base_gguf), out, gguf_type)
    return out


def write_checkpoint_gguf(directory: Path, base_gguf: Path, out: Path, gguf_type: str = "source") -> Path:
    """Write the checkpoint's weights into a copy of `base_gguf` (metadata, tokenizer, and the
    tensor types of `gguf_type`)."""
    from safetensors import safe_open

    tuned: dict[str, np.ndarray] = {}
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), "pt") as st:
            for key in st.keys():  # noqa: SIM118
                name = gguf_tensor_name(key)
                if name is not None:
                    tuned[name] = st.get_tensor(key).float().numpy()
    if "output.weight" not in tuned and "token_embd.weight" in tuned:
        tuned["output.weight"] = tuned["token_embd.weight"]  # tied embeddings
    return _rewrite(base_gguf, out, gguf_type, replace=tuned, hf_order=True,
                    missing_hint=f"{directory}: no weights for {{names}} (of the base GGUF's {{total}}); is it a "
                                 f"fine-tune of {base_gguf.name}?")


SERVING_TYPES = ("q8_0", "q4_0", "f16", "source")


def serving_type(gguf_type: str) -> Any:
    """The `GGMLQuantizationType` of a `gguf_type` setting (None for `source`)."""
    import gguf

    if gguf_type not in SERVING_TYPES:
        raise ConfigError(f"unknown gguf_type {gguf_type!r}; use one of {', '.join(SERVING_TYPES)}")
    return None if gguf_type == "source" else gguf.GGMLQuantizationType[gguf_type.upper()]


def serving_gguf(base_gguf: str | Path, gguf_type: str, adapter_dir: str | Path | None = None) -> Path:
    """The GGUF model the llama.cpp engine serves for `base_gguf` (+ a PEFT LoRA merged in), its
    weights in `gguf_type`, written on first use: beside the adapter, or for the base alone in the
    user's cache (the base may sit in a read-only site-packages)."""
    import os

    base = Path(base_gguf)
    if serving_type(gguf_type) is None:
        raise ConfigError("gguf_type 'source' serves the file itself; nothing to write")
    if adapter_dir is not None:
        adapter = Path(adapter_dir)
        files = _adapter_files(adapter)
        out = _target(adapter, files, base, f"merged-{gguf_type}")
    else:
        stat = base.stat()
        key = hashlib.sha256(f"{CONVERTER} {base.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode())
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fledgling" / "gguf"
        root.mkdir(parents=True, exist_ok=True)
        out = root / f"{base.stem}.{gguf_type}-{key.hexdigest()[:16]}.gguf"
    if not out.is_file():
        deltas = lora_deltas(Path(adapter_dir), base) if adapter_dir is not None else {}
        _rewrite(base, out, gguf_type, add=deltas)
    return out


def lora_deltas(adapter: Path, base_gguf: Path) -> dict[str, np.ndarray]:
    """What a PEFT LoRA adds to each weight, `scale * B @ A`, by GGUF tensor name and in the GGUF's
    row order (the same sum PEFT's merge adds on the transformers path)."""
    config, pairs = _read_lora(adapter, base_gguf)
    import gguf

    n_head, n_kv_head = _heads(gguf.GGUFReader(str(base_gguf)))
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha") or rank)
    scale = alpha / (rank ** 0.5 if config.get("use_rslora") else rank)
    deltas = {}
    for name, ab in pairs.items():
        delta = scale * (ab["B"] @ ab["A"])
        if name.endswith("attn_q.weight"):
            delta = permute_rows(delta, n_head)
        elif name.endswith("attn_k.weight"):
            delta = permute_rows(delta, n_kv_head)
        deltas[name] = delta
    return deltas


def _rewrite(base_gguf: Path, out: Path, gguf_type: str, *, replace: dict[str, np.ndarray] | None = None,
             add: dict[str, np.ndarray] | None = None, hf_order: bool = False,
             missing_hint: str = "") -> Path:
    """A copy of `base_gguf` (metadata, tokenizer) whose tensors are the base's, or `replace[name]`
    (weights in HF row order when `hf_order`: the query/key rows are permuted here), plus
    `add[name]`, each stored in `gguf_type` (`source`: the base file's type for that tensor;
    one-dimensional tensors, the norms, stay F32)."""
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(_field(reader, "general.architecture"))
    n_head, n_kv_head = _heads(reader)
    target = serving_type(gguf_type)
    writer = gguf.GGUFWriter(str(_partial(out)), arch)
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or (target is not None and
                                                                        key == "general.file_type"):
            continue
        kind = f.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, list(f.contents()))
        else:
            writer.add_key_value(key, f.contents(), kind)
    if target is not None:
        writer.add_file_type(_FILE_TYPES[gguf_type])
    missing = []
    for t in reader.tensors:
        if replace is not None:
            data = replace.get(t.name)
            if data is None:
                missing.append(t.name)
                continue
            if hf_order and t.name.endswith("attn_q.weight"):
                data = permute_rows(data, n_head)
            elif hf_order and t.name.endswith("attn_k.weight"):
                data = permute_rows(data, n_kv_head)
        else:
            data = gguf.quants.dequantize(t.data, t.tensor_type).reshape(tuple(reversed(
                [int(d) for d in t.shape])))
        if add and t.name in add:
            data = data + add[t.name]
        qtype = t.tensor_type if target is None or data.ndim < 2 or data.shape[-1] % 32 else target
        if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            writer.add_tensor(t.name, np.ascontiguousarray(
                data, dtype=np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16))
        else:
            writer.add_tensor(t.name, gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype),
                              raw_dtype=qtype)
    if missing:
        writer.close()
        _partial(out).unlink(missing_ok=True)
        raise ConfigError(missing_hint.format(names=", ".join(missing[:3]), total=len(reader.tensors)))
    if add:
        unknown = sorted(set(add) - {t.name for t in reader.tensors})
        if unknown:
            writer.close()
            _partial(out).unlink(missing_ok=True)
            raise ConfigError(f"no tensor {unknown[0]} in {base_gguf.name} to add a LoRA delta to")
    _finish(writer, out)
    return out


def cached_tokenizer(gguf_path: str | Path) -> Any:
    """The Hugging Face tokenizer inside a GGUF file. Reading it out of the GGUF takes many
    seconds (the vocabulary is rebuilt), so it is saved once as a tokenizer directory in the
    user's cache, keyed by the file's name, size and modification time, and loaded from there."""
    import os

    from transformers import AutoTokenizer

    path = Path(gguf_path)
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fledgling" / "tokenizers"
    cached = root / f"{path.stem}-{key}"
    if (cached / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached))
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    try:
        partial = cached.with_name(cached.name + f".partial-{os.getpid()}")
        tokenizer.save_pretrained(str(partial))
        partial.replace(cached)
    except OSError:
        pass  # a read-only cache: read from the GGUF again next time
    return tokenizer


def _partial(out: Path) -> Path:
    """Where a conversion writes before it moves the file in place: named for the process, so two
    processes converting the same weights at once (test workers, two gateways) never share it."""
    import os

    return out.with_name(f"{out.name}.partial-{os.getpid()}")


def _finish(writer: Any, out: Path) -> None:
    """Write the file whole under a temporary name, then move it in place: a reader never sees
    half a GGUF, and an interrupted conversion is redone."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    _partial(out).replace(out)
