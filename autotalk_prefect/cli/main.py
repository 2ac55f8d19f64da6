"""The ``autotalk-prefect`` command: one sub-command per job, each defined beside its feature.

Every command's failure is one line on stderr that says what was wrong and what to do
(:mod:`autotalk_prefect.cli.errors`); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
from typing import Any

import typer
from typer.core import TyperGroup

from autotalk_prefect._version import __version__
from autotalk_prefect.cli.errors import DEBUG, one_line_errors
from autotalk_prefect.cli.options import TYPER_OPTIONS
from autotalk_prefect.cli.sandbox import sandbox_command
from autotalk_prefect.cli.webhooks import webhooks_command


@functools.cache
def _more_commands() -> TyperGroup:
    """The commands that import Prefect (or the ledger, the flows), built when first asked for."""
    from autotalk_prefect.cli.commands import app as more

    return typer.main.get_group(more)


class _Commands(TyperGroup):
    """``version``, ``sandbox`` and ``webhooks`` here; the rest from :mod:`.commands` on demand,
    so ``autotalk-prefect sandbox`` starts without importing Prefect."""

    # typed Any: newer typer vendors click (typer._click), older typer uses click itself
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_more_commands().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return super().get_command(ctx, cmd_name) or _more_commands().get_command(ctx, cmd_name)


app = typer.Typer(
    name="autotalk-prefect",
    cls=_Commands,
    help="AutoTalk for Prefect: run the sandbox, the webhook receiver and the demo.",
    **TYPER_OPTIONS,
)


@app.callback()
def main(
    debug: bool = typer.Option(
        False,
        "--debug/--no-debug",
        envvar="AUTOTALK_DEBUG",
        help="Show the full traceback when a command fails.",
    ),
) -> None:
    """AutoTalk for Prefect: run the sandbox, the webhook receiver and the demo."""
    DEBUG["on"] = debug


@app.command("version")
def version_command() -> None:
    """Print the installed autotalk-prefect version."""
    typer.echo(__version__)


app.command("sandbox")(one_line_errors(sandbox_command))
app.command("webhooks")(one_line_errors(webhooks_command))
