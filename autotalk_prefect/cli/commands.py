"""The commands that need Prefect, the ledger or the flows (``blocks``, ``demo``, ``rate-limit``,
``doctor``, ``contract``, ``ledger``, ``optouts``, ``campaign``): :mod:`.main` loads them only
when one of them is asked for.
"""

from __future__ import annotations

import json
import sys

import typer

from autotalk_prefect.cli.errors import CommandFailed, InputError, one_line_errors
from autotalk_prefect.cli.options import TYPER_OPTIONS

app = typer.Typer(**TYPER_OPTIONS)

from autotalk_prefect.api.settings import AutoTalkSettings  # noqa: E402
from autotalk_prefect.credentials import (  # noqa: E402
    AutoTalkCredentials,
    MissingCredentialsError,
    resolve_credentials,
    save_credentials_block,
)

blocks_app = typer.Typer(help="Save AutoTalk blocks from the environment.", **TYPER_OPTIONS)
app.add_typer(blocks_app, name="blocks")


@blocks_app.command("save")
@one_line_errors
def blocks_save_command(
    name: str = typer.Option(..., "--name", help="Block document name, e.g. 'autotalk'."),
    overwrite: bool = typer.Option(
        False, "--overwrite/--no-overwrite", help="Replace a block that holds other values."
    ),
    check: bool = typer.Option(
        False,
        "--check/--no-check",
        help="Verify the key with one read (GET /self) before saving anything.",
    ),
) -> None:
    """Save AUTOTALK_* settings as an AutoTalkCredentials block (idempotent)."""
    settings = AutoTalkSettings()
    if check:
        with AutoTalkCredentials.from_settings(settings).get_client() as client:
            company = client.get_self()
        typer.echo(f"the key works: company {company.name or company.id} at {settings.base_url}")
    outcome = save_credentials_block(name, overwrite=overwrite, settings=settings)
    typer.echo(f"AutoTalkCredentials block {name!r}: {outcome.value}")


from autotalk_prefect.cli.demo import demo_command  # noqa: E402

app.command("demo")(one_line_errors(demo_command))


from autotalk_prefect.concurrency_limits import (  # noqa: E402
    DEFAULT_RATE_LIMIT_NAME,
    describe_rate_limit,
    ensure_rate_limit,
    remove_rate_limit,
)

rate_limit_app = typer.Typer(
    help="Manage the Prefect global concurrency limit that rate-limits AutoTalk sends.",
    **TYPER_OPTIONS,
)
app.add_typer(rate_limit_app, name="rate-limit")

NAME_OPTION = typer.Option(DEFAULT_RATE_LIMIT_NAME, "--name", help="Global concurrency limit name.")


@rate_limit_app.command("set")
@one_line_errors
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
        raise InputError(str(exc)) from exc
    typer.echo(f"{outcome.value}: {info.describe()}")
    typer.echo(f"Use it with: outreach_campaign(..., global_rate_limit_name={name!r})")


@rate_limit_app.command("show")
@one_line_errors
def show_command(name: str = NAME_OPTION) -> None:
    """Print the rate limit as the Prefect server holds it (exit 1 if there is none)."""
    info = describe_rate_limit(name)
    if info is None:
        raise CommandFailed(f"no rate limit named {name!r} (create it with `rate-limit set`)")
    typer.echo(info.describe())


@rate_limit_app.command("delete")
@one_line_errors
def delete_command(name: str = NAME_OPTION) -> None:
    """Delete the rate limit (succeeds if it is already gone)."""
    removed = remove_rate_limit(name)
    typer.echo(f"deleted {name!r}" if removed else f"no rate limit named {name!r}: nothing to do")


from autotalk_prefect.cli.doctor import doctor_command  # noqa: E402

app.command("doctor")(one_line_errors(doctor_command))


from autotalk_prefect.api.contract_diff import SpecError, diff_contracts, parse_spec  # noqa: E402

contract_app = typer.Typer(
    help="Compare AutoTalk's own OpenAPI document with the contract this library follows.",
    **TYPER_OPTIONS,
)
app.add_typer(contract_app, name="contract")


def _read_spec(spec: str) -> str:
    """The document's text from a file path or an http(s) URL (fetched without credentials)."""
    if spec.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(spec, follow_redirects=True, timeout=30)
        except httpx.HTTPError as exc:
            raise ValueError(f"could not fetch {spec}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise ValueError(f"could not fetch {spec}: HTTP {response.status_code}")
        return response.text
    from pathlib import Path

    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"no such file: {spec} (give a path or an http(s) URL)")
    return path.read_text(encoding="utf-8")


@contract_app.command("diff")
@one_line_errors
def contract_diff_command(
    spec: str = typer.Argument(
        ..., help="AutoTalk's OpenAPI document: a file path (YAML or JSON) or an http(s) URL."
    ),
    as_json: bool = typer.Option(False, "--json/--no-json", help="Print the comparison as JSON."),
) -> None:
    """Report how SPEC differs from our contract; exit 1 if a difference would break a call."""
    try:
        result = diff_contracts(parse_spec(_read_spec(spec)))
    except (SpecError, ValueError, OSError) as exc:
        raise InputError(str(exc)) from None
    typer.echo(json.dumps(result.to_json(), indent=2) if as_json else result.to_text())
    raise typer.Exit(code=1 if result.breaking else 0)


ledger_app = typer.Typer(
    help="Look inside an exactly-once ledger, and reconcile its unknown outcomes.",
    **TYPER_OPTIONS,
)
app.add_typer(ledger_app, name="ledger")

LEDGER_OPTION = typer.Option(
    None,
    "--ledger",
    help="A SQLAlchemy URL (sqlite:///..., postgresql://...), a directory, or secret/NAME "
    "(a Prefect Secret block holding the URL); default: "
    "$AUTOTALK_LEDGER_URL, else .autotalk/ledger (the flows' default).",
)


def _open_ledger(campaign: str, ledger: str | None) -> ClaimLedger:
    try:
        return ClaimLedger(campaign, ledger)
    except (ValueError, TypeError, ModuleNotFoundError) as exc:
        raise InputError(str(exc)) from exc


from autotalk_prefect.ledger.reconcile import reconcile  # noqa: E402
from autotalk_prefect.ledger.report import counts_text, write_export  # noqa: E402
from autotalk_prefect.ledger.store import ClaimLedger  # noqa: E402


@ledger_app.command("show")
@one_line_errors
def ledger_show_command(campaign: str, ledger: str | None = LEDGER_OPTION) -> None:
    """Print how many contacts of CAMPAIGN are in each state."""
    typer.echo(counts_text(_open_ledger(campaign, ledger)))


@ledger_app.command("export")
@one_line_errors
def ledger_export_command(
    campaign: str,
    ledger: str | None = LEDGER_OPTION,
    fmt: str = typer.Option("csv", "--format", help="csv, or json (one object per line)."),
) -> None:
    """Write one row per contact of CAMPAIGN to stdout: state, message id, attempts, reason,
    when."""
    if fmt not in ("csv", "json"):
        raise InputError(f"--format must be csv or json, got {fmt!r}")
    write_export(_open_ledger(campaign, ledger), fmt, sys.stdout)


@ledger_app.command("reconcile")
@one_line_errors
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
    store = _open_ledger(campaign, ledger)
    try:
        creds = AutoTalkCredentials.load(block) if block else resolve_credentials(None)
        with creds.get_client() as client:  # type: ignore[union-attr]
            report = reconcile(store, client, grace_minutes=grace_minutes)
    except (MissingCredentialsError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    typer.echo(f"{campaign}: {report.line()}")


from autotalk_prefect.cli.consent import campaign_app, optouts_app  # noqa: E402

app.add_typer(optouts_app, name="optouts")
app.add_typer(campaign_app, name="campaign")
