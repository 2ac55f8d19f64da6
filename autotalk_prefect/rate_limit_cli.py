"""``autotalk-prefect rate-limit set|show|delete``: the shared AutoTalk rate limit from a shell.

Talks to the Prefect API the current profile / ``PREFECT_API_URL`` points at, i.e. the server
that every worker of the deployment uses.
"""

from __future__ import annotations

import typer

from autotalk_prefect.concurrency_limits import (
    DEFAULT_RATE_LIMIT_NAME,
    describe_rate_limit,
    ensure_rate_limit,
    remove_rate_limit,
)

rate_limit_app = typer.Typer(
    help="Manage the Prefect global concurrency limit that rate-limits AutoTalk sends.",
    no_args_is_help=True,
)

NAME_OPTION = typer.Option(DEFAULT_RATE_LIMIT_NAME, "--name", help="Global concurrency limit name.")


@rate_limit_app.command("set")
def set_command(
    requests_per_second: float = typer.Option(
        ..., "--rps", help="Sustained requests per second (the limit's slot decay)."
    ),
    burst: int | None = typer.Option(
        None, "--burst", help="Requests allowed at once after a pause (default: one second's)."
    ),
    name: str = NAME_OPTION,
) -> None:
    """Create the rate limit, or update it in place (idempotent)."""
    try:
        info, outcome = ensure_rate_limit(name, requests_per_second, burst)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"{outcome.value}: {info.describe()}")
    typer.echo(f"Use it with: outreach_campaign(..., global_rate_limit_name={name!r})")


@rate_limit_app.command("show")
def show_command(name: str = NAME_OPTION) -> None:
    """Print the rate limit as the Prefect server holds it (exit 1 if there is none)."""
    info = describe_rate_limit(name)
    if info is None:
        typer.echo(f"no rate limit named {name!r} (create it with `rate-limit set`)", err=True)
        raise typer.Exit(code=1)
    typer.echo(info.describe())


@rate_limit_app.command("delete")
def delete_command(name: str = NAME_OPTION) -> None:
    """Delete the rate limit (succeeds if it is already gone)."""
    removed = remove_rate_limit(name)
    typer.echo(f"deleted {name!r}" if removed else f"no rate limit named {name!r}: nothing to do")
