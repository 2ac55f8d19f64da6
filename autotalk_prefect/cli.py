"""The ``autotalk-prefect`` command: one sub-command per job, each defined beside its feature."""

from __future__ import annotations

import typer

from autotalk_prefect._version import __version__

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


from autotalk_prefect.ratelimit import (  # noqa: E402
    DEFAULT_RATE_LIMIT_NAME,
    describe_rate_limit,
    ensure_rate_limit,
    remove_rate_limit,
)

rate_limit_app = typer.Typer(
    help="Manage the Prefect global concurrency limit that rate-limits AutoTalk sends.",
    no_args_is_help=True,
)
app.add_typer(rate_limit_app, name="rate-limit")

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


ledger_app = typer.Typer(
    help="Look inside an exactly-once ledger, and reconcile its unknown outcomes.",
    no_args_is_help=True,
)
app.add_typer(ledger_app, name="ledger")

LEDGER_OPTION = typer.Option(
    None,
    "--ledger",
    help="A SQLAlchemy URL (sqlite:///..., postgresql://...) or a directory; default: "
    "$AUTOTALK_LEDGER_URL, else .autotalk/ledger (the flows' default).",
)


def _open_ledger(campaign: str, ledger: str | None) -> ClaimLedger:
    try:
        return ClaimLedger(campaign, ledger)
    except (ValueError, TypeError, ModuleNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


from autotalk_prefect.ledger.store import ClaimLedger  # noqa: E402


@ledger_app.command("show")
def ledger_show_command(campaign: str, ledger: str | None = LEDGER_OPTION) -> None:
    """Print how many contacts of CAMPAIGN are in each state."""
    from autotalk_prefect.ledger.report import counts_text

    typer.echo(counts_text(_open_ledger(campaign, ledger)))


@ledger_app.command("export")
def ledger_export_command(
    campaign: str,
    ledger: str | None = LEDGER_OPTION,
    fmt: str = typer.Option("csv", "--format", help="csv, or json (one object per line)."),
) -> None:
    """Write one row per contact of CAMPAIGN to stdout: state, message id, attempts, reason,
    when."""
    import sys

    from autotalk_prefect.ledger.report import write_export

    if fmt not in ("csv", "json"):
        typer.echo(f"error: --format must be csv or json, got {fmt!r}", err=True)
        raise typer.Exit(code=2)
    write_export(_open_ledger(campaign, ledger), fmt, sys.stdout)


@ledger_app.command("reconcile")
def ledger_reconcile_command(
    campaign: str,
    ledger: str | None = LEDGER_OPTION,
    grace_minutes: float | None = typer.Option(
        None,
        "--grace-minutes",
        help="Treat an unknown send still not in AutoTalk this many minutes after it began as "
        "not applied (failed: the next run sends it). Default: leave it unknown.",
    ),
    block: str | None = typer.Option(
        None, "--credentials", help="An AutoTalkCredentials block name (default: AUTOTALK_*)."
    ),
) -> None:
    """Look up every unknown outcome of CAMPAIGN in AutoTalk and record what is found."""
    from autotalk_prefect.credentials import (
        AutoTalkCredentials,
        MissingCredentialsError,
        resolve_credentials,
    )
    from autotalk_prefect.ledger.reconcile import reconcile

    store = _open_ledger(campaign, ledger)
    try:
        creds = AutoTalkCredentials.load(block) if block else resolve_credentials(None)
        with creds.get_client() as client:  # type: ignore[union-attr]
            report = reconcile(store, client, grace_minutes=grace_minutes)
    except (MissingCredentialsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"{campaign}: {report.line()}")
