"""``autotalk-prefect optouts ...`` and ``autotalk-prefect campaign preview``: the consent commands.

``optouts`` manages the opt-out list in a ledger database (the one your flows'
``ledger_storage`` names); ``campaign preview`` is a dry run of ``outreach_campaign``: who would
get what, with nothing claimed, written or sent. Errors go through ``cli_errors``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from autotalk_prefect.cli.errors import one_line_errors
from autotalk_prefect.credentials import AutoTalkCredentials, resolve_credentials
from autotalk_prefect.flows.outreach.engine import Audience, check_audience_type
from autotalk_prefect.flows.outreach.preview import preview_campaign
from autotalk_prefect.flows.templating import compile_template
from autotalk_prefect.ledger.consent import Consent, FrequencyCap, resolve_cap
from autotalk_prefect.ledger.optouts import Identity, OptOutList
from autotalk_prefect.ledger.store import ClaimLedger

_OPTIONS: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}

optouts_app = typer.Typer(
    help="The opt-out list every send checks: add, remove, import, export, show.",
    **_OPTIONS,
)
campaign_app = typer.Typer(
    help="Look at a campaign before it runs.",
    **_OPTIONS,
)

LEDGER = typer.Option(
    None,
    "--ledger",
    help="A SQLAlchemy URL (sqlite:///..., postgresql://...), a directory, or secret/NAME; "
    "default: $AUTOTALK_LEDGER_URL, else .autotalk/ledger (the flows' default).",
)
CONTACT = typer.Option(None, "--contact-id", help="The contact's AutoTalk id.")
PHONE = typer.Option(
    None, "--phone", help="A phone number (+country code, or national with --region)."
)
EMAIL = typer.Option(None, "--email", help="An email address.")
CSV_FILE = typer.Argument(
    ..., help="A CSV with a header naming contact_id, phone and/or email (reason optional)."
)
REGION = typer.Option(
    None,
    "--region",
    help="Region for national phone numbers, e.g. ES (default: $AUTOTALK_PHONE_REGION).",
)


def _identity(
    contact_id: str | None, phone: str | None, email: str | None, region: str | None
) -> Identity:

    identity = Identity.of(contact_id, phone, email, region=region)
    unreadable = [
        f"{name} {value!r}"
        for name, value, kept in (
            ("phone", phone, identity.phone),
            ("email", email, identity.email),
        )
        if value and not kept
    ]
    if unreadable:
        raise ValueError(
            f"cannot read {' and '.join(unreadable)} (a phone needs +country code or --region; "
            "an email needs user@domain)"
        )
    if not identity:
        raise ValueError("give --contact-id, --phone or --email")
    return identity


@optouts_app.command("add")
@one_line_errors
def optouts_add(
    contact_id: str | None = CONTACT,
    phone: str | None = PHONE,
    email: str | None = EMAIL,
    reason: str = typer.Option("added by hand", "--reason", help="Why (kept with the entry)."),
    region: str | None = REGION,
    ledger: str | None = LEDGER,
) -> None:
    """Opt a contact out (by any of its identifiers): no send path messages it again."""

    identity = _identity(contact_id, phone, email, region)
    added = OptOutList(ledger).add(identity, reason=reason, source="cli")
    typer.echo("opted out" if added else "already on the opt-out list: nothing changed")


@optouts_app.command("remove")
@one_line_errors
def optouts_remove(
    contact_id: str | None = CONTACT,
    phone: str | None = PHONE,
    email: str | None = EMAIL,
    region: str | None = REGION,
    ledger: str | None = LEDGER,
) -> None:
    """Opt a contact back in: every entry holding any identifier given is removed."""

    removed = OptOutList(ledger).remove(_identity(contact_id, phone, email, region))
    typer.echo(f"removed {removed} identifiers" if removed else "not on the list: nothing changed")


@optouts_app.command("import")
@one_line_errors
def optouts_import(
    file: Path = CSV_FILE,
    region: str | None = REGION,
    ledger: str | None = LEDGER,
) -> None:
    """Import an existing opt-out list (all rows or none: a bad row is named)."""

    if not file.is_file():
        raise ValueError(f"no such file: {file}")
    with file.open(newline="", encoding="utf-8-sig") as handle:
        report = OptOutList(ledger).import_csv(
            handle, source_name=f"import:{file.name}", region=region
        )
    typer.echo(
        f"{report.rows} rows read, {report.identifiers_added} new identifiers on the opt-out list"
    )


@optouts_app.command("export")
@one_line_errors
def optouts_export(ledger: str | None = LEDGER) -> None:
    """Write the list to stdout as CSV (contact_id, phone, email, reason, source, when)."""

    OptOutList(ledger).export_csv(sys.stdout)


@optouts_app.command("show")
@one_line_errors
def optouts_show(
    contact_id: str | None = CONTACT,
    phone: str | None = PHONE,
    email: str | None = EMAIL,
    region: str | None = REGION,
    ledger: str | None = LEDGER,
) -> None:
    """How many are on the list; with an identifier, whether (and why) that contact is."""

    optouts = OptOutList(ledger)
    if not (contact_id or phone or email):
        typer.echo(f"opt-out list in {optouts.describe()}: {optouts.count()} entries")
        return
    found = optouts.find(_identity(contact_id, phone, email, region))
    if not found:
        typer.echo("not on the opt-out list")
        raise typer.Exit(code=1)
    for entry in found:
        row = entry.as_dict()
        ids = ", ".join(f"{k} {row[k]}" for k in ("contact_id", "phone", "email") if row[k])
        typer.echo(f"opted out {row['opted_out_at']}: {ids}; {row['reason']} ({row['source']})")


@campaign_app.command("preview")
@one_line_errors
def campaign_preview(
    campaign: str = typer.Argument(..., help="The campaign id (names its ledger)."),
    template: str = typer.Option(..., "--template", help="The message template (Jinja2)."),
    dynadata_type: str = typer.Option("clients", "--type", help="The audience's Dynadata type."),
    filters: list[str] = typer.Option(  # noqa: B008
        [], "--filter", help="An equality filter FIELD=VALUE (repeat for more)."
    ),
    contact_ids: list[str] = typer.Option(  # noqa: B008
        [], "--contact-id", help="Message exactly these contacts (repeat for more)."
    ),
    cap: str | None = typer.Option(
        None, "--frequency-cap", help="N/H: at most N campaign messages per H hours."
    ),
    transactional: bool = typer.Option(
        False, "--transactional/--no-transactional", help="Include opted-out contacts."
    ),
    samples: int = typer.Option(5, "--samples", min=0, max=50, help="Rendered messages shown."),
    ledger: str | None = LEDGER,
    block: str | None = typer.Option(
        None, "--credentials", help="An AutoTalkCredentials block name (default: AUTOTALK_*)."
    ),
) -> None:
    """Dry run: what a run of CAMPAIGN would do now, per outcome, with rendered samples.

    Reads the audience, the ledger and the opt-out list; claims, writes and sends nothing.
    """
    pairs = [f.partition("=") for f in filters]
    bad = [f for f, (k, eq, _) in zip(filters, pairs, strict=True) if not eq or not k.strip()]
    if bad:
        raise ValueError(f"--filter must be FIELD=VALUE, got {bad[0]!r}")
    audience = Audience(
        dynadata_type=dynadata_type,
        filters={k.strip(): v for k, _, v in pairs},
        contact_ids=contact_ids or None,
    )
    frequency_cap = None
    if cap is not None:
        messages, slash, hours = cap.partition("/")
        if not slash or not messages.strip().isdigit():
            raise ValueError(f"--frequency-cap must be N/H (e.g. 1/24), got {cap!r}")
        frequency_cap = FrequencyCap(messages=int(messages), hours=float(hours.rstrip("hH")))
    compiled = compile_template(template)
    store = ClaimLedger(campaign, ledger)
    creds = AutoTalkCredentials.load(block) if block else resolve_credentials(None)
    consent = Consent(transactional=transactional, cap=resolve_cap(frequency_cap))
    with creds.get_client() as client:  # type: ignore[union-attr]
        check_audience_type(client, audience, compiled)
        preview = preview_campaign(
            client, store, audience, compiled, consent=consent, samples=samples
        )
    typer.echo(preview.text())
