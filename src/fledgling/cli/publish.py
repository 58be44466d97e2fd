"""`fledgling publish MODEL --repo ORG/NAME`: push a trained adapter to the Hugging Face Hub."""

from __future__ import annotations

import typer

from fledgling.cli import options
from fledgling.cli.session import console, store


def publish(
    model: str = typer.Argument(..., help="A trained model from `fledgling models list`."),
    repo: str = typer.Option(..., "--repo", help="The Hub repository, e.g. my-org/support-agent-slm."),
    public: bool = typer.Option(False, "--public", help="Create the repository public (default private)."),
    auto: bool = typer.Option(False, "--auto", help="Publish only if the task's acceptance gates pass."),
    task: str | None = options.task("The task whose gates --auto checks (default: the model's).", required=False),
) -> None:
    """Push a trained adapter to the Hugging Face Hub, with its manifest and a model card.

    The token comes from HF_TOKEN or the Hugging Face token file (`hf auth login`), never from
    Fledgling's database."""
    from fledgling.report.publish import publish as push

    url = push(store(), model, repo, private=not public, auto=auto, task=task)
    console.print(f"[green]published[/] {model} -> {url}")
