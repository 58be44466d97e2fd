"""URL secrets are masked wherever a URL is shown; a model endpoint must be http(s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fledgling.cli import app
from fledgling.config import parse_settings
from fledgling.errors import ConfigError
from fledgling.models import catalog
from fledgling.store import Store
from fledgling.urls import check_http_url, mask_url


@pytest.mark.parametrize(("url", "shown"), [
    ("https://alice:pw-1@api.example/v1", "https://alice:***@api.example/v1"),
    ("https://ghp_tok3n@git.example/v1", "https://***@git.example/v1"),
    ("https://api.example/v1?api_key=sk-1&region=eu", "https://api.example/v1?api_key=***&region=eu"),
    ("https://api.example/v1?apiKey=a&access_token=b&sig=c", "https://api.example/v1?apiKey=***&access_token=***&sig=***"),
    ("postgresql+psycopg://app:pw-2@db:5432/t?sslmode=require&password=pw-3",
     "postgresql+psycopg://app:***@db:5432/t?sslmode=require&password=***"),
    ("postgresql+psycopg://postgres@127.0.0.1/db", "postgresql+psycopg://postgres@127.0.0.1/db"),
    ("sqlite:///.fledgling/fledgling.db", "sqlite:///.fledgling/fledgling.db"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://files.example/v1", "javascript:alert(1)",
                                 "data:text/plain,hi", "http://", "api.openai.com/v1", "//api.example/v1"])
def test_only_http_urls_are_endpoints(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        check_http_url(url)
    with pytest.raises(ConfigError, match="models.llm.base_url") as exc:
        parse_settings({"models": {"llm": {"kind": "openai", "base_url": url}}})
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="gateway.upstream"):
        parse_settings({"gateway": {"upstream": url}})


def test_http_endpoints_are_accepted() -> None:
    for url in ("https://api.openai.com/v1", "http://127.0.0.1:8000/v1", "HTTPS://[::1]:8000/v1"):
        settings = parse_settings({"models": {"llm": {"kind": "openai", "base_url": url}},
                                   "gateway": {"upstream": url}})
        assert settings.models["llm"].base_url == url


def test_a_bad_url_in_the_config_is_one_line_without_its_password(tmp_path: Path) -> None:
    cfg = tmp_path / "fledgling.toml"
    cfg.write_text('[models.llm]\nkind = "openai"\nbase_url = "ftp://bob:pw-9@files.example/v1"\n')
    cli = subprocess.run([sys.executable, "-c", "from fledgling.cli import main; main()", "--config", str(cfg),
                          "gateway"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1
    assert "'models.llm.base_url'" in cli.stderr and "ftp://bob:***@files.example/v1" in cli.stderr
    assert "pw-9" not in cli.stderr + cli.stdout


def test_the_catalog_refuses_and_masks(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path}/f.db") as store:
        with pytest.raises(Exception, match="not an http"):
            catalog.add_model(store, "local", kind="openai", base_url="file:///etc/passwd", model_id="m")
        catalog.add_model(store, "remote", kind="openai", base_url="https://u:pw-5@llm.example/v1", model_id="m")
    res = CliRunner().invoke(app, ["models", "list"], env={"FLEDGLING_DB_URL": f"sqlite:///{tmp_path}/f.db"})
    assert res.exit_code == 0, res.output
    assert "https://u:***@llm.example/v1" in res.output and "pw-5" not in res.output


@pytest.mark.parametrize("url", ["http://", "https://:443/v1", "ftp://files.example/v1"])
def test_the_upstream_flag_must_be_an_http_url(url: str, tmp_path: Path) -> None:
    """`fledgling gateway --upstream URL` is checked like [gateway] upstream: one line, exit 2."""
    cli = subprocess.run([sys.executable, "-c", "from fledgling.cli import main; main()", "gateway",
                          "--upstream", url, "--port", "0"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=False)
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "http(s)" in cli.stderr
