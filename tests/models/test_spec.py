from __future__ import annotations

import pytest

from fledgling.config import parse_settings
from fledgling.errors import ConfigError
from fledgling.models import open_backend, resolve_model
from fledgling.models.smollm2 import smollm2_gguf


def test_spec_strings():
    assert resolve_model("openai:http://h/v1#m").settings.model == "m"
    assert resolve_model("openai:http://h/v1").settings.base_url == "http://h/v1"
    hf = resolve_model("hf:/ckpt+/adapter")
    assert (hf.kind, hf.settings.path, hf.settings.adapter) == ("hf", "/ckpt", "/adapter")
    assert resolve_model("gguf:smollm2").is_local
    assert resolve_model("recorded").kind == "recorded"


def test_config_names_win_and_unknown_names_explain():
    s = parse_settings({"models": {"slm": {"kind": "gguf", "path": "smollm2"}}})
    assert resolve_model("slm", s).kind == "gguf"
    with pytest.raises(ConfigError, match="unknown model 'nope'.*slm"):
        resolve_model("nope", s)


def test_missing_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        open_backend(resolve_model(f"gguf:{tmp_path}/missing.gguf"))
    with pytest.raises(ConfigError, match="not a checkpoint directory"):
        open_backend(resolve_model(f"hf:{tmp_path}/nothing"))


def test_bundled_smollm2_is_found():
    path = smollm2_gguf()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50_000_000
