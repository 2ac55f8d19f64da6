"""The ``autotalk-prefect`` command: one sub-command per job, each defined beside its feature."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="autotalk-prefect",
    help="AutoTalk for Prefect: run the sandbox, the webhook receiver and the demo.",
    no_args_is_help=True,
    add_completion=False,
)


def _register() -> None:
    """Attach each feature's command; features own their options and help text."""
    from autotalk_prefect.sandbox.cli import sandbox_command

    app.command("sandbox")(sandbox_command)


_register()
