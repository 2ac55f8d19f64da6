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


blocks_app = typer.Typer(help="Save AutoTalk blocks from the environment.", no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")


@blocks_app.command("save")
def blocks_save_command(
    name: str = typer.Option(..., "--name", help="Block document name, e.g. 'autotalk'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace differing values."),
) -> None:
    """Save AUTOTALK_* settings as an AutoTalkCredentials block (idempotent)."""
    from autotalk_prefect.credentials import MissingCredentialsError, save_credentials_block

    try:
        outcome = save_credentials_block(name, overwrite=overwrite)
    except (MissingCredentialsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"AutoTalkCredentials block {name!r}: {outcome.value}")


from autotalk_prefect.webhooks.cli import webhooks_command  # noqa: E402

app.command("webhooks")(webhooks_command)


from autotalk_prefect.demo import demo_command  # noqa: E402

app.command("demo")(demo_command)


from autotalk_prefect.rate_limit_cli import rate_limit_app  # noqa: E402

app.add_typer(rate_limit_app, name="rate-limit")
