"""The CLI's vocabulary: every option that more than one command takes, declared once.

A flag means one thing in every command; `VOCABULARY` lists the shared ones and
`tests/test_cli_vocabulary.py` walks the command tree to keep it so. A command may word the help
for its context, never change what the flag is.

Old spellings stay for one release: a command built with `spellings(...)` rewrites them to the
new flag before parsing and prints a deprecation note on stderr, so scripts keep running and
learn the new name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

VOCABULARY: dict[str, str] = {
    "--task/-t": "the task: a named job of the agent, e.g. support-agent",
    "--model/-m": "a model: a [models] name, a catalog entry or a model spec",
    "--json": "print JSON for machines instead of tables (every read command)",
    "--limit/-n": "at most N items: rows listed, items evaluated, examples trained on",
    "--calls": "how many synthetic calls the demo generates",
    "--seed/-s": "the seed: same seed and input, same result",
    "--out/-o": "the directory written to",
    "--split": "a curated split: train, val or test",
    "--dataset-version": "a curated dataset version N (v<N>)",
    "--contract-version": "a stored contract version (a unique prefix of its hash)",
    "--workers/-w": "worker processes",
    "--watch": "refresh until what is watched ends",
    "--strict": "refuse a whole input when any record in it is not understood",
    "--bind-host/--host": "the interface a server (ui, gateway) listens on",
    "--port": "the port a server listens on",
    "--log-level": "the server's (uvicorn's) log level",
    "--gateway-url/-g": "a running gateway, reached through its admin API",
    "--langfuse-url": "a Langfuse server, reached through its public API",
    "--base-url": "an OpenAI-compatible endpoint a model is served at",
    "--source": "where calls came from: gateway, langfuse, otel, openai-jsonl, demo",
    "--since": "from this time (ISO, inclusive)",
    "--until": "up to this time (ISO, exclusive)",
    "--reason/-r": "why (kept in the rollout history)",
    "--base/-b": "a base model: a bundled name, a checkpoint directory or a .gguf file",
    "--batch-size": "requests or examples per batch",
    "--prompt": "how the specialist prompt shows a request: lean, compact (or chat, auto to evaluate)",
}


# -- the options ------------------------------------------------------------------------------

def task(help: str = "The task (see `fledgling traces stats`).", *, required: bool = True) -> Any:
    return typer.Option(... if required else None, "--task", "-t", help=help)


def model(help: str, *, required: bool = True) -> Any:
    return typer.Option(... if required else None, "--model", "-m", help=help)


def as_json(help: str = "Print JSON for machines instead of tables.") -> Any:
    return typer.Option(False, "--json", help=help)


def limit(default: int | None, help: str, *, max: int | None = None) -> Any:
    return typer.Option(default, "--limit", "-n", min=1, max=max, help=help)


def seed(help: str = "The seed: same seed and input, same result.") -> Any:
    return typer.Option(0, "--seed", "-s", help=help)


def out(default: Path | None, help: str) -> Any:
    return typer.Option(default, "--out", "-o", file_okay=False, help=help)


def split(default: str, help: str = "The curated split: train, val or test.") -> Any:
    return typer.Option(default, "--split", help=help)


def dataset_version(help: str = "The curated dataset version N (v<N>; default: the newest).") -> Any:
    return typer.Option(None, "--dataset-version", help=help)


def contract_version() -> Any:
    return typer.Option(None, "--contract-version",
                        help="A stored contract version (a unique prefix works); default: the newest.")


def workers(help: str, default: int | None = None) -> Any:
    return typer.Option(default, "--workers", "-w", help=help)


def strict(help: str = "Refuse a whole file when any record in it is not understood, instead of "
                            "skipping that record with a warning.") -> Any:
    return typer.Option(False, "--strict", help=help)


def watch(help: str = "Refresh every second until it ends.") -> Any:
    return typer.Option(False, "--watch", help=help)


def bind_host(default: str | None, help: str) -> Any:
    # `--host` stays as a second spelling: it is what uvicorn and most servers call it, and it
    # means only this once `import langfuse` says --langfuse-url
    return typer.Option(default, "--bind-host", "--host", help=help)


def port(default: int | None, help: str) -> Any:
    return typer.Option(default, "--port", min=0, max=65535, help=help)


def log_level() -> Any:
    return typer.Option("warning", "--log-level", help="uvicorn log level.")


def gateway_url() -> Any:
    return typer.Option(None, "--gateway-url", "-g", envvar="FLEDGLING_GATEWAY_URL",
                        help="A running gateway (e.g. http://127.0.0.1:8787): change it through its "
                             "admin API (key from FLEDGLING_ADMIN_KEY), applied at once.")


def source(help: str = "Only calls from this source (gateway, langfuse, otel, openai-jsonl, demo).") -> Any:
    return typer.Option(None, "--source", help=help)


def since(help: str = "From this time (ISO, inclusive).") -> Any:
    return typer.Option(None, "--since", help=help)


def until(help: str = "Up to this time (ISO, exclusive).") -> Any:
    return typer.Option(None, "--until", help=help)


def reason(default: str | None, help: str = "Why (kept in the history).") -> Any:
    return typer.Option(default, "--reason", "-r", help=help)


def base(default: str | None, help: str) -> Any:
    return typer.Option(default, "--base", "-b", help=help)


def batch_size(default: int, help: str) -> Any:
    return typer.Option(default, "--batch-size", min=1, help=help)


def prompt(default: str, help: str) -> Any:
    return typer.Option(default, "--prompt", help=help)


# -- spellings kept for one release -----------------------------------------------------------

@dataclass(frozen=True)
class Renamed:
    """`old` now reads `new`; `old` goes in the release after next."""

    old: str
    new: str


def deprecation(old: str, new: str) -> None:
    typer.echo(f"warning: {old} is deprecated and goes in the next release; use {new}", err=True)


def rename(args: list[str], renamed: tuple[Renamed, ...], stop: Mapping[str, object] | None = None) -> list[str]:
    """`args` with each old spelling (`--old`, `--old=V`, `-xV`) replaced by the new one; a group
    stops at its subcommand's name, whose own parsing sees the rest."""
    new_of = {r.old: r.new for r in renamed}
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--" or (stop is not None and arg in stop):
            return out + args[i:]
        flag, eq, value = arg.partition("=")
        if flag.startswith("--") and flag in new_of:
            deprecation(flag, new_of[flag])
            out.append(new_of[flag] + eq + value)
        elif not arg.startswith("--") and arg[:2] in new_of:
            deprecation(arg[:2], new_of[arg[:2]])
            out.extend([new_of[arg[:2]], arg[2:]] if len(arg) > 2 else [new_of[arg[:2]]])
        else:
            out.append(arg)
    return out


def lift_task(command: TyperCommand, ctx: Any, args: list[str]) -> list[str]:
    """The old `command TASK` form as `command --task TASK` (the command takes no other
    positional argument)."""
    opts, rest, _ = command.make_parser(ctx).parse_args(args=list(args))
    if len(rest) != 1:
        return args
    if isinstance(opts.get("task"), str):
        raise typer.BadParameter(f"give the task once, as --task (not also {rest[0]!r} as an argument)",
                                 param_hint="--task")
    valued = {name for p in command.params if getattr(p, "param_type_name", "") == "option"
              and not getattr(p, "is_flag", False) and not getattr(p, "count", False)
              for name in p.opts}
    after_value = False
    for i, arg in enumerate(args):
        if arg == "--":
            i += 1
            break
        if not after_value and (arg == "-" or not arg.startswith("-")):
            break
        after_value = arg in valued
    else:
        return args
    if i >= len(args) or args[i] != rest[0]:
        return args
    deprecation(f"the task as an argument ({rest[0]})", f"--task {rest[0]}")
    return ["--task", rest[0], *args[:i], *args[i + 1:]]


class Command(TyperCommand):
    renamed: ClassVar[tuple[Renamed, ...]] = ()
    task_argument: ClassVar[bool] = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = rename(args, self.renamed)
        if self.task_argument:
            args = lift_task(self, ctx, args)
        return super().parse_args(ctx, args)


class Group(TyperGroup):
    renamed: ClassVar[tuple[Renamed, ...]] = ()

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rename(args, self.renamed, stop=self.commands))


def spellings(*renamed: Renamed, task_argument: bool = False) -> type[Command]:
    """A command class that still accepts `renamed` spellings (and the task as an argument)."""
    return type("Command", (Command,), {"renamed": renamed, "task_argument": task_argument})


def group_spellings(*renamed: Renamed) -> type[Group]:
    """A group class (a command with subcommands) that still accepts `renamed` spellings."""
    return type("Group", (Group,), {"renamed": renamed})
