"""The `fledgling` command. Thin: parse, call one library function, present."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape

from fledgling import __version__
from fledgling.cli import session
from fledgling.cli.autopilot import app as autopilot_app
from fledgling.cli.contracts import app as contracts_app
from fledgling.cli.curate import app as curate_app
from fledgling.cli.demo import app as demo_app
from fledgling.cli.eval import app as eval_app
from fledgling.cli.export import app as export_app
from fledgling.cli.gateway import app as gateway_app
from fledgling.cli.imports import app as import_app
from fledgling.cli.models import app as models_app
from fledgling.cli.publish import publish
from fledgling.cli.replay import replay
from fledgling.cli.report import app as report_app
from fledgling.cli.rollout import app as rollout_app
from fledgling.cli.traces import app as traces_app
from fledgling.cli.train import app as train_app
from fledgling.cli.ui import app as ui_app
from fledgling.errors import FledglingError

app = typer.Typer(
    name="fledgling",
    help="Capture your agent's LLM calls, prove a small specialist model does them as well, "
         "then switch traffic safely.\n\nStart with `fledgling demo`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _single(command: Callable[..., None]) -> typer.Typer:
    """A one-command group, so that typer lists it in its panel in the order given here."""
    group = typer.Typer(subcommand_metavar="")
    group.callback(invoke_without_command=True, help=command.__doc__)(command)
    return group


START, CAPTURE, PROVE, SHIP = "Start here", "1. Capture", "2. Prove parity", "3. Ship"
app.add_typer(demo_app, name="demo", rich_help_panel=START)
app.add_typer(ui_app, name="ui", help="Serve the web dashboard (default http://127.0.0.1:8788/).",
              rich_help_panel=START)
app.add_typer(gateway_app, name="gateway", rich_help_panel=CAPTURE)
app.add_typer(import_app, name="import", rich_help_panel=CAPTURE)
app.add_typer(traces_app, name="traces", rich_help_panel=CAPTURE)
app.add_typer(export_app, name="export", rich_help_panel=CAPTURE)
app.add_typer(contracts_app, name="contracts", rich_help_panel=PROVE)
app.add_typer(curate_app, name="curate", rich_help_panel=PROVE)
app.add_typer(train_app, name="train", rich_help_panel=PROVE)
app.add_typer(eval_app, name="eval", rich_help_panel=PROVE)
app.add_typer(report_app, name="report", rich_help_panel=PROVE)
app.add_typer(models_app, name="models", rich_help_panel=PROVE)
app.add_typer(_single(publish), name="publish", rich_help_panel=PROVE)
app.add_typer(rollout_app, name="rollout", rich_help_panel=SHIP)
app.add_typer(autopilot_app, name="autopilot", rich_help_panel=SHIP)
app.add_typer(_single(replay), name="replay", rich_help_panel=SHIP)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fledgling {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="FLEDGLING_CONFIG",
        help="fledgling.toml to read (default: ./fledgling.toml, else built-in defaults)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    session.set_config_path(config)


_UNPRINTABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85) if c != 0x09} | {
    0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(message: str) -> str:
    """A message as one terminal line: line breaks and control characters (from a file name or
    a value quoted from the input) are shown escaped, never acted on."""
    return message.translate(_UNPRINTABLE)


def main() -> None:
    """Entry point: every FledglingError becomes one line on stderr and a non-zero exit."""
    try:
        app(standalone_mode=False)
    except FledglingError as exc:
        session.err_console.print(f"[bold red]error:[/] {escape(one_line(str(exc)))}",
                                  highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        session.err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        session.err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors (a missing option, a bad value) come from click, or from the copy of
        # click that typer bundles; both have show() and exit_code.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise
