"""The ``autotalk-prefect`` command: one sub-command per job, each defined beside its feature."""

from __future__ import annotations

import typer

from autotalk_prefect import __version__

app = typer.Typer(
    name="autotalk-prefect",
    help="AutoTalk for Prefect: run the sandbox, the webhook receiver and the demo.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("version")
def version_command() -> None:
    """Print the installed autotalk-prefect version."""
    typer.echo(__version__)


from autotalk_prefect.sandbox.cli import sandbox_command  # noqa: E402

app.command("sandbox")(sandbox_command)
