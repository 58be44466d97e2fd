"""Writing trained weights as GGUF: names, layout (the query/key row order), types and metadata,
checked against the real SmolLM2 GGUF and the transformers model loaded from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fledgling.errors import ConfigError
from fledgling.models import gguf_export
from fledgling.models.smollm2 import smollm2_gguf


@pytest.fixture(scope="module")
def hf_model():
    import torch
    from transformers import AutoModelForCausalLM

    gguf = smollm2_gguf()
    return AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)


def save_checkpoint(model, directory) -> None:
    """The weights as a safetensors checkpoint (`save_pretrained` refuses a model loaded from a
    GGUF; the tied output matrix is the embedding's, written once)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(directory / "model.safetensors"))
    model.config.save_pretrained(directory)


def _tensors(path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {t.name: t for t in reader.tensors}


def test_names_follow_llama_cpp():
    assert gguf_export.gguf_tensor_name("model.layers.3.self_attn.q_proj.weight") == "blk.3.attn_q.weight"
    assert gguf_export.gguf_tensor_name("base_model.model.model.layers.12.mlp.down_proj") == "blk.12.ffn_down.weight"
    assert gguf_export.gguf_tensor_name("model.layers.0.post_attention_layernorm.weight") == "blk.0.ffn_norm.weight"
    assert gguf_export.gguf_tensor_name("model.embed_tokens.weight") == "token_embd.weight"
    assert gguf_export.gguf_tensor_name("model.norm.weight") == "output_norm.weight"
    assert gguf_export.gguf_tensor_name("model.layers.0.self_attn.rotary_emb.inv_freq") is None


@pytest.mark.slow
def test_permuted_rows_are_the_gguf_layout_of_the_hf_weights(hf_model):
    """transformers un-permutes the query/key rows when it loads the GGUF; `permute_rows` must
    give the file's order back, value for value (the layout an adapter's B must be written in)."""
    import gguf

    tensors = _tensors(smollm2_gguf())
    cfg = hf_model.config
    for name, heads in (("q_proj", cfg.num_attention_heads), ("k_proj", cfg.num_key_value_heads)):
        hf = hf_model.model.layers[2].self_attn.__getattr__(name).weight.detach().numpy()
        t = tensors[f"blk.2.attn_{name[0]}.weight"]
        stored = gguf.quants.dequantize(t.data, t.tensor_type).reshape(hf.shape)
        assert np.array_equal(gguf_export.permute_rows(hf, heads), stored)
        assert not np.array_equal(hf, stored)  # the permutation is not the identity


def test_lora_conversion_writes_every_pair_with_alpha(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    weights = {}
    for layer in range(2):
        for mod, (out_dim, in_dim) in (("self_attn.q_proj", (576, 576)), ("self_attn.k_proj", (192, 576)),
                                       ("mlp.up_proj", (1536, 576))):
            key = f"base_model.model.model.layers.{layer}.{mod}"
            weights[f"{key}.lora_A.weight"] = rng.normal(size=(4, in_dim)).astype(np.float32)
            weights[f"{key}.lora_B.weight"] = rng.normal(size=(out_dim, 4)).astype(np.float32)
    save_file(weights, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    out = gguf_export.lora_gguf(adapter, smollm2_gguf())
    import gguf

    reader = gguf.GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == len(weights)
    b = tensors["blk.1.attn_k.weight.lora_b"].data.reshape(192, 4)
    expected = gguf_export.permute_rows(weights["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"], 3)
    assert np.array_equal(b, expected)
    a = tensors["blk.1.attn_k.weight.lora_a"].data.reshape(4, 576)
    assert np.array_equal(a, weights["base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight"])
    up = tensors["blk.0.ffn_up.weight.lora_b"].data.reshape(1536, 4)
    assert np.array_equal(up, weights["base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"])
    assert gguf_export.lora_gguf(adapter, smollm2_gguf()) == out  # converted once
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]


def test_unsupported_adapters_are_refused_in_one_line(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(ConfigError, match="not a PEFT adapter"):
        gguf_export.lora_gguf(tmp_path / "a", smollm2_gguf())
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "use_dora": True}))
    from safetensors.numpy import save_file

    save_file({"x.lora_A.weight": np.zeros((4, 4), np.float32)}, str(tmp_path / "a" / "adapter_model.safetensors"))
    with pytest.raises(ConfigError, match="only plain LoRA"):
        gguf_export.lora_gguf(tmp_path / "a", smollm2_gguf())


@pytest.mark.slow
def test_a_checkpoint_becomes_a_gguf_with_the_base_types_and_metadata(hf_model, tmp_path):
    """The base model itself saved as a checkpoint and converted back: every tensor in the base
    file's type, within Q4_1's rounding of the original values, the tokenizer carried over."""
    import gguf

    save_checkpoint(hf_model, tmp_path / "full")
    out = gguf_export.checkpoint_gguf(tmp_path / "full", smollm2_gguf())
    base, back = _tensors(smollm2_gguf()), _tensors(out)
    assert set(base) == set(back)
    for name in ("blk.0.attn_q.weight", "blk.5.ffn_down.weight", "token_embd.weight", "blk.3.attn_norm.weight"):
        assert back[name].tensor_type == base[name].tensor_type
        was = gguf.quants.dequantize(base[name].data, base[name].tensor_type)
        now = gguf.quants.dequantize(back[name].data, back[name].tensor_type)
        scale = np.abs(was).max()
        assert np.abs(now - was).max() <= 0.05 * scale, name
    reader = gguf.GGUFReader(str(out))
    assert len(reader.fields["tokenizer.ggml.tokens"].contents()) == 49152
    assert reader.fields["tokenizer.chat_template"].contents().startswith("{%")


def _small_adapter(directory, rng, *, r: int = 4, alpha: int = 8) -> dict:
    """A random PEFT LoRA on two layers' query, key and up projections; its tensors by name."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    weights = {}
    for layer in range(2):
        for mod, (out_dim, in_dim) in (("self_attn.q_proj", (576, 576)), ("self_attn.k_proj", (192, 576)),
                                       ("mlp.up_proj", (1536, 576))):
            key = f"base_model.model.model.layers.{layer}.{mod}"
            weights[f"{key}.lora_A.weight"] = (rng.normal(size=(r, in_dim)) * 0.05).astype(np.float32)
            weights[f"{key}.lora_B.weight"] = (rng.normal(size=(out_dim, r)) * 0.05).astype(np.float32)
    save_file(weights, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r, "lora_alpha": alpha}))
    return weights


def _q8_bound(values: np.ndarray) -> np.ndarray:
    """Q8_0's rounding bound per value: half a step of its block of 32 (step = block max / 127),
    plus what storing the step as a float16 adds (127 steps times its relative error, 2^-11)."""
    steps = np.abs(values).reshape(values.shape[0], -1, 32).max(axis=-1, keepdims=True) / 127
    bound = steps * (0.5 + 127 * 2.0 ** -11) * 1.01 + 1e-7
    return np.broadcast_to(bound, (*steps.shape[:2], 32)).reshape(values.shape)


def test_a_served_copy_is_q8_0_with_the_adapter_merged_in(tmp_path, monkeypatch):
    """Every weight of the Q8_0 copy equals the base's dequantised weight plus scale * B @ A
    (computed here with numpy, the key rows in llama.cpp's order) within Q8_0's rounding; norms stay
    F32 and exact; the metadata and tokenizer are the base's; the file is written once."""
    import gguf

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    weights = _small_adapter(tmp_path / "adapter", np.random.default_rng(1))
    out = gguf_export.serving_gguf(smollm2_gguf(), "q8_0", tmp_path / "adapter")
    base, served = _tensors(smollm2_gguf()), _tensors(out)
    assert set(base) == set(served)
    for name, lora_key, heads in (("blk.1.attn_k.weight", "layers.1.self_attn.k_proj", 3),
                                  ("blk.0.ffn_up.weight", "layers.0.mlp.up_proj", None),
                                  ("blk.4.attn_q.weight", None, None)):
        assert served[name].tensor_type == gguf.GGMLQuantizationType.Q8_0
        expected = gguf.quants.dequantize(base[name].data, base[name].tensor_type)
        if lora_key:
            a = weights[f"base_model.model.model.{lora_key}.lora_A.weight"]
            b = weights[f"base_model.model.model.{lora_key}.lora_B.weight"]
            delta = 2.0 * b @ a  # alpha 8 / r 4
            if heads:  # llama.cpp's row order of a key projection: per head, the rotary halves interleaved
                delta = delta.reshape(heads, 2, -1, 576).swapaxes(1, 2).reshape(delta.shape)
            assert np.abs(delta).max() > 0.01  # the adapter changes this weight measurably
            expected = expected + delta
        got = gguf.quants.dequantize(served[name].data, served[name].tensor_type)
        assert np.all(np.abs(got - expected) <= _q8_bound(expected)), name
    norm = "blk.3.attn_norm.weight"
    assert served[norm].tensor_type == gguf.GGMLQuantizationType.F32
    assert np.array_equal(served[norm].data, base[norm].data)
    reader = gguf.GGUFReader(str(out))
    assert int(reader.fields["general.file_type"].contents()) == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    assert reader.fields["tokenizer.chat_template"].contents().startswith("{%")
    stamp = out.stat().st_mtime_ns
    assert gguf_export.serving_gguf(smollm2_gguf(), "q8_0", tmp_path / "adapter") == out
    assert out.stat().st_mtime_ns == stamp  # written once
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["adapter_config.json",
                                                                         "adapter_model.safetensors"]
    alone = gguf_export.serving_gguf(smollm2_gguf(), "q8_0")  # the base alone: in the user's cache
    assert alone.parent == tmp_path / "cache" / "fledgling" / "gguf"
    assert not list(alone.parent.glob("*.partial*"))


def test_an_unknown_serving_type_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="unknown gguf_type 'q3'.*q8_0"):
        gguf_export.serving_gguf(smollm2_gguf(), "q3")
