"""The opt-out list and THE consent check inside a claim (no Prefect, no sandbox): identifiers,
entries, CSV, the claim that skips opted-out and capped contacts, caps across campaigns at once
on SQLite and PostgreSQL, and the migration of a ledger made by an earlier version."""

from __future__ import annotations

import io
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from autotalk_prefect.ledger.consent import Consent, FrequencyCap, Verdict, resolve_cap
from autotalk_prefect.ledger.once import OnceLedger
from autotalk_prefect.ledger.optouts import Identity, OptOutList, normalize_email, normalize_phone
from autotalk_prefect.ledger.store import Claim, ClaimLedger, LedgerState, Resolution

PG_DSN = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


# ---- identifiers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+34 600 11 12 22", None, "+34600111222"),
        ("+34-600-111-222", None, "+34600111222"),
        ("600 111 222", "ES", "+34600111222"),
        ("(415) 555-0132", "US", "+14155550132"),
        ("600 111 222", None, None),  # national number, no region: not guessed
        ("not a phone", "ES", None),
        ("", "ES", None),
        ("+1", None, None),
    ],
)
def test_phones_normalize_to_e164_with_phonenumbers(
    raw: str, region: str | None, e164: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTOTALK_PHONE_REGION", raising=False)
    assert normalize_phone(raw, region) == e164


def test_region_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTALK_PHONE_REGION", "ES")
    assert normalize_phone("600111222") == "+34600111222"


def test_emails_normalize_and_bad_ones_are_dropped() -> None:
    assert normalize_email("  Ana@Example.COM ") == "ana@example.com"
    assert normalize_email("no-at-sign") is None
    assert normalize_email("@x.com") is None
    assert normalize_email(None) is None
    assert not Identity.of(None, "bad", "bad")


# ---- the list ---------------------------------------------------------------------------------


def test_an_entry_is_removed_by_any_of_its_identifiers(url: str) -> None:
    optouts = OptOutList(url)
    ana = Identity.of("c-ana", "+34600111222", "ana@example.com")
    assert optouts.add(ana, reason="replied STOP", source="event e-1")
    assert not optouts.add(ana, reason="again", source="event e-2")  # a repeat adds nothing
    assert optouts.count() == 1
    (entry,) = optouts.find(Identity(phone="+34600111222"))
    assert (entry.contact_id, entry.reason, entry.source) == ("c-ana", "replied STOP", "event e-1")
    # the same person named by another identifier only
    assert optouts.is_opted_out(Identity(email="ana@example.com"))
    assert optouts.is_opted_out(Identity.of("someone-else", "+34 600 111 222"))
    assert not optouts.is_opted_out(Identity("c-bob"))
    assert optouts.remove(Identity(email="ANA@example.com".lower())) == 3
    assert not optouts.is_opted_out(Identity("c-ana"))
    assert optouts.count() == 0
    with pytest.raises(ValueError, match="contact id, a phone number or an email"):
        optouts.remove(Identity())


def test_csv_import_export_round_trip_and_bad_rows_name_their_line(url: str) -> None:
    optouts = OptOutList(url)
    text = (
        "phone,email,reason\n"
        "+34600111222,,complaint\n"
        ",bob@example.com,\n"
        "600 333 444,,\n"  # national: needs the region
    )
    with pytest.raises(ValueError, match=r"line 4: \{'phone': '600 333 444'\}.*Nothing was"):
        optouts.import_csv(io.StringIO(text))
    assert optouts.count() == 0
    report = optouts.import_csv(io.StringIO(text), source_name="import:list.csv", region="ES")
    assert (report.rows, report.identifiers_added) == (3, 3)
    out = io.StringIO()
    assert optouts.export_csv(out) == 3
    lines = out.getvalue().splitlines()
    assert lines[0] == "contact_id,phone,email,reason,source,opted_out_at"
    assert ",+34600111222,,complaint,import:list.csv," in lines[1]
    assert ",,bob@example.com,imported,import:list.csv," in lines[2]
    # importing the export again adds nothing
    again = optouts.import_csv(io.StringIO(out.getvalue()))
    assert again.identifiers_added == 0
    with pytest.raises(ValueError, match="needs a header"):
        optouts.import_csv(io.StringIO("name\nAna\n"))


# ---- inside the claim -------------------------------------------------------------------------


def test_the_claim_skips_opted_out_contacts_and_counts_transactional_ones(url: str) -> None:
    OptOutList(url).add(Identity.of("c-2", email="two@example.com"), reason="STOP")
    OptOutList(url).add(Identity(phone="+14155550133"), reason="imported")
    ledger = ClaimLedger("spring", url)
    claims = [
        Claim("c-1", "hi", Identity("c-1")),
        Claim("c-2", "hi", Identity("c-2")),  # by contact id
        Claim("c-3", "hi", Identity.of("c-3", "+1 415 555 0133")),  # by phone only
        Claim("c-4", "hi", Identity.of("c-4", None, "Two@Example.com")),  # by email only
    ]
    verdicts: dict[str, Verdict] = {}
    won = ledger.claim(claims, "run-1", consent=Consent(), verdicts=verdicts)
    assert set(won) == {"c-1"}
    assert verdicts == {k: Verdict.OPTED_OUT for k in ("c-2", "c-3", "c-4")}
    assert set(ledger.statuses(["c-2", "c-3", "c-4"])) == set()  # no row: never sent or failed

    verdicts = {}
    won = ClaimLedger("order-updates", url).claim(
        claims, "run-2", consent=Consent(transactional=True), verdicts=verdicts
    )
    assert set(won) == {"c-1", "c-2", "c-3", "c-4"}
    assert verdicts == {k: Verdict.TRANSACTIONAL for k in ("c-2", "c-3", "c-4")}
    # without a consent (e.g. internal keys), the list is not read
    assert set(ClaimLedger("internal", url).claim(claims, "run-3")) == {"c-1", "c-2", "c-3", "c-4"}


def test_once_ledger_blocks_an_opted_out_call_without_calling(url: str) -> None:
    OptOutList(url).add(Identity("c-9"), reason="STOP")
    calls: list[str] = []
    steps = OnceLedger("onboarding-x", url)
    result = steps.run(
        "send", lambda: calls.append("sent"), identity=Identity("c-9"), consent=Consent()
    )
    assert not result.claimed and result.blocked is Verdict.OPTED_OUT and calls == []
    assert steps.status("send") is None
    result = steps.run(
        "send",
        lambda: calls.append("sent"),
        identity=Identity("c-9"),
        consent=Consent(transactional=True),
    )
    assert result.claimed and calls == ["sent"]


def test_frequency_cap_counts_other_campaigns_in_the_window(url: str) -> None:
    cap = FrequencyCap(messages=2, hours=24)
    for campaign in ("a", "b"):
        ledger = ClaimLedger(campaign, url)
        (attempt,) = ledger.claim([Claim("c-1", "x")], "r").values()
        ledger.resolve([Resolution("c-1", attempt, LedgerState.SENT)])
    old = ClaimLedger("old", url)
    old.claim([Claim("c-2", "x")], "r")
    with old.engine.begin() as conn:  # claimed two days ago: outside the window
        conn.execute(
            sa.text(
                "UPDATE autotalk_ledger SET claimed_at = claimed_at - 172800 WHERE campaign = 'old'"
            )
        )
    failed = ClaimLedger("failed", url)
    (attempt,) = failed.claim([Claim("c-2", "x")], "r").values()
    failed.resolve([Resolution("c-2", attempt, LedgerState.FAILED)])  # never went out

    verdicts: dict[str, Verdict] = {}
    won = ClaimLedger("c", url).claim(
        [Claim("c-1"), Claim("c-2")], "r", consent=Consent(cap=cap), verdicts=verdicts
    )
    assert set(won) == {"c-2"} and verdicts == {"c-1": Verdict.CAPPED}
    loose = FrequencyCap(messages=3, hours=24)
    assert set(ClaimLedger("d", url).claim([Claim("c-1")], "r", consent=Consent(cap=loose)))


def test_cap_parameter_and_settings_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTALK_FREQUENCY_CAP", raising=False)
    assert resolve_cap(None) is None
    assert resolve_cap({"messages": 1, "hours": 24}) == FrequencyCap(messages=1, hours=24)
    monkeypatch.setenv("AUTOTALK_FREQUENCY_CAP", '{"messages": 3, "hours": 12}')
    assert resolve_cap(None) == FrequencyCap(messages=3, hours=12)
    with pytest.raises(ValueError, match="messages"):
        resolve_cap({"messages": 0, "hours": 24})
    with pytest.raises(ValueError, match="frequency_cap must be"):
        resolve_cap("1/24")  # type: ignore[arg-type]


def _race_two_campaigns(url: str, contacts: list[str]) -> dict[str, list[str]]:
    """Two campaigns claim the same contacts at the same moment with a 1-per-24h cap."""
    cap = Consent(cap=FrequencyCap(messages=1, hours=24))
    won: dict[str, list[str]] = {}
    start = threading.Barrier(2)

    def run(campaign: str) -> None:
        ledger = ClaimLedger(campaign, url)
        start.wait()
        got: list[str] = []
        for i in range(0, len(contacts), 10):  # batches, as the group commit makes them
            got += ledger.claim([Claim(c) for c in contacts[i : i + 10]], campaign, consent=cap)
        won[campaign] = got

    threads = [threading.Thread(target=run, args=(name,)) for name in ("cap-a", "cap-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return won


def _assert_nobody_twice(won: dict[str, list[str]], contacts: list[str]) -> None:
    together = won["cap-a"] + won["cap-b"]
    assert sorted(together) == sorted(contacts)  # everyone once, nobody twice


def test_two_campaigns_at_once_never_exceed_the_cap_on_sqlite(url: str) -> None:
    contacts = [f"c-{i:03d}" for i in range(200)]
    _assert_nobody_twice(_race_two_campaigns(url, contacts), contacts)


@pytest.mark.skipif(not PG_DSN, reason="AUTOTALK_TEST_POSTGRES_DSN not set")
def test_two_campaigns_at_once_never_exceed_the_cap_on_postgresql() -> None:
    assert PG_DSN is not None
    name = f"consent_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_DSN.replace("postgresql://", "postgresql+psycopg2://", 1))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = PG_DSN.rsplit("/", 1)[0] + f"/{name}"
        contacts = [f"c-{i:03d}" for i in range(200)]
        _assert_nobody_twice(_race_two_campaigns(url, contacts), contacts)
        from autotalk_prefect.ledger.database import engine_for

        engine_for(url).dispose()
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def test_a_ledger_made_by_an_earlier_version_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the table as version 0.1 made it
        db.execute(
            "CREATE TABLE autotalk_ledger (campaign VARCHAR(128) NOT NULL, key VARCHAR(1024) "
            "NOT NULL, state VARCHAR(16) NOT NULL, attempt VARCHAR(64) NOT NULL, attempts "
            "INTEGER NOT NULL, run_id VARCHAR(64), message_id TEXT, reason TEXT, text TEXT, "
            "raw TEXT, claimed_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, "
            "PRIMARY KEY (campaign, key))"
        )
        db.execute(
            "INSERT INTO autotalk_ledger VALUES ('old', 'c-1', 'sent', 'a', 1, 'r', 'm-1', "
            f"NULL, 'hi', NULL, {time.time()}, {time.time()})"
        )
    ledger = ClaimLedger("old", f"sqlite:///{path}")
    assert ledger.status("c-1").state is LedgerState.SENT  # type: ignore[union-attr]
    won = ledger.claim([Claim("c-2", "hi")], "r2", flow_run_id="f-1")
    assert ledger.status("c-2").flow_run_id == "f-1"  # type: ignore[union-attr]
    assert ledger.mark_stopped("f-1", "crashed") == 1
    assert ledger.status("c-2").state is LedgerState.UNKNOWN  # type: ignore[union-attr]
    assert won
    with sqlite3.connect(path) as db:
        indexes = {row[1] for row in db.execute("PRAGMA index_list(autotalk_ledger)")}
    assert "autotalk_ledger_key" in indexes


# ---- the CLI ----------------------------------------------------------------------------------


def test_optouts_cli_add_import_show_export_remove(url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autotalk_prefect.cli import app

    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["optouts", *args, "--ledger", url])
        return result.exit_code, result.output

    assert cli("add", "--contact-id", "c-1", "--phone", "+34 600 111 222") == (0, "opted out\n")
    assert cli("add", "--contact-id", "c-1")[1].startswith("already on the opt-out list")
    code, out = cli("add", "--phone", "600")
    assert code == 1 and "cannot read phone '600'" in out
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,phone,reason\nbob@example.com,,complaint\n,600 333 444,\n")
    code, out = cli("import", str(csv_file))
    assert code == 1 and "line 3" in out and "Nothing was imported" in out
    code, out = cli("import", str(csv_file), "--region", "ES")
    assert (code, out) == (0, "2 rows read, 2 new identifiers on the opt-out list\n")
    assert cli("show")[1].endswith(": 3 entries\n")
    code, out = cli("show", "--phone", "+34600111222")
    assert code == 0 and "contact_id c-1, phone +34600111222; added by hand (cli)" in out
    code, out = cli("export")
    assert out.splitlines()[0] == "contact_id,phone,email,reason,source,opted_out_at"
    assert len(out.splitlines()) == 4 and "bob@example.com,complaint,import:list.csv" in out
    assert cli("remove", "--phone", "+34600111222") == (0, "removed 2 identifiers\n")
    assert cli("show", "--contact-id", "c-1") == (1, "not on the opt-out list\n")
    code, out = cli("remove")
    assert code == 1 and "give --contact-id, --phone or --email" in out


# ---- THE outcome rule: a refusal inside a 2xx --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "state", "words"),
    [
        ({"success": False, "error": "not reachable"}, "failed", "success: false: not reachable"),
        ({"ok": False, "message": "rejected"}, "failed", "ok: false: rejected"),
        ({"status": "Failed", "reason": "template"}, "failed", "status 'failed': template"),
        ({"status": "error"}, "failed", "status 'error': no message given"),
        ({"status": "rejected", "detail": "x"}, "failed", "status 'rejected': x"),
        ({"error": {"code": "bad", "message": "invalid phone"}}, "failed", "invalid phone"),
        ({"errors": [{"message": "a"}, "b"]}, "failed", "'errors' field: a; b"),
        ({"data": {"success": False, "error": "inner"}}, "failed", "success: false: inner"),
        ({"_id": "m-1", "error": "queued with a warning"}, "unknown", "also an id"),
        ({"success": False, "data": {"id": "m-2"}}, "unknown", "also an id"),
        # not refusals: stay "applied"
        ({"_id": "m-3", "status": "sent"}, "sent", None),
        ({"success": True, "_id": "m-4"}, "sent", None),
        ({"error": None, "errors": [], "_id": "m-5"}, "sent", None),
        ({"ok": True}, "sent", None),
    ],
)
def test_a_2xx_that_says_it_failed_is_failed_or_unknown(
    body: dict[str, object], state: str, words: str | None
) -> None:
    import json as _json

    from autotalk_prefect.api.errors import UnexpectedAnswerError
    from autotalk_prefect.api.outcomes import from_answer, from_exception

    outcome = from_answer(body)
    assert outcome.state == state
    if words is not None:
        assert words in (outcome.reason or "") and outcome.raw is not None
    # the same body behind an answer the client could not decode
    exc = UnexpectedAnswerError("odd", status_code=200, body=_json.dumps(body))
    assert from_exception(exc).state == state


def test_sandbox_refusal_faults_are_validated() -> None:
    from autotalk_prefect.sandbox import FaultConfig

    with pytest.raises(ValueError, match="refusal_body must be one of"):
        FaultConfig(refusal_rate=1.0, refusal_body="nope")
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultConfig(refusal_rate=0.6, error_rate=0.6)
    assert FaultConfig(refusal_rate=0.5).active
