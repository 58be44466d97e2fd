"""`fledgling gateway`: help that explains, and one-line errors for a bad setup."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from fledgling.cli import app


def _run(args: list[str], tmp_path: Path, toml: str = "") -> tuple[int, str]:
    cfg = tmp_path / "fledgling.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/f.db"\n' + toml)
    res = CliRunner().invoke(app, ["--config", str(cfg), "gateway", *args])
    return res.exit_code, res.output + str(res.exception or "")


def test_help_explains_how_to_point_an_agent() -> None:
    res = CliRunner().invoke(app, ["gateway", "--help"])
    assert res.exit_code == 0
    assert "base_url" in res.output and "--upstream" in res.output and "spool_fsync_ms" in res.output


def test_nowhere_to_forward_is_a_config_error(tmp_path: Path) -> None:
    code, out = _run([], tmp_path)
    assert code != 0 and "nowhere to forward" in out and "--upstream" in out


def test_unknown_upstream_name_is_a_config_error(tmp_path: Path) -> None:
    code, out = _run(["--upstream", "gpt-5"], tmp_path,
                     '[models.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n')
    assert code != 0 and "upstream 'gpt-5' is neither a model in [models] (known: local)" in out


def test_port_in_use_is_a_config_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = _run(["--upstream", "http://127.0.0.1:1/v1", "--port", str(port)], tmp_path)
    assert code != 0 and f"cannot listen on 127.0.0.1:{port}" in out


def test_bad_gateway_key_in_config_is_named(tmp_path: Path) -> None:
    code, out = _run([], tmp_path, "[gateway]\nspool_fsync = 5\n")
    assert code != 0 and "gateway.spool_fsync" in out and "spool_fsync_ms" in out
