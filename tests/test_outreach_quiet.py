"""Quiet hours on each contact's clock, through outreach_campaign, the real sandbox and Prefect API.

The seed gives clients a ``timezone`` in turn: Europe/Madrid, America/Mexico_City,
America/Sao_Paulo, America/New_York. The clock is ``quiet.now`` (injected; the wait test with
a real bound uses the real one). 2026-03-28 20:30 UTC is 21:30 in Madrid (CET, quiet) and the
afternoon in the Americas; Madrid springs forward that night, so its 08:00 is 06:00 UTC.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.outreach import quiet
from autotalk_prefect.flows.outreach.engine import Audience, QuietHours
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.flows.outreach.report import headline, summary_table
from autotalk_prefect.ledger.store import ClaimLedger
from autotalk_prefect.sandbox import SandboxHandle, run_sandbox

KEY = "sk-quiet-test-8d2a"
UTC = dt.timezone.utc
NIGHT = QuietHours(start=dt.time(21), end=dt.time(8), timezone="UTC")
EVENING = dt.datetime(2026, 3, 28, 20, 30, tzinfo=UTC)
MADRID_OPENS = dt.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with run_sandbox(api_key=KEY, seed=21, contacts=16) as handle:
        yield handle


@pytest.fixture
def creds(sandbox: SandboxHandle) -> AutoTalkCredentials:
    sandbox.reset()
    return AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The quiet-hours clock, starting at EVENING; a wait moves it instead of sleeping."""
    now = [EVENING]

    def advance(seconds: float) -> None:
        now[0] += dt.timedelta(seconds=seconds)

    monkeypatch.setattr(quiet, "now", lambda: now[0])
    monkeypatch.setattr(quiet, "sleep", advance)
    return now


def _zones(creds: AutoTalkCredentials) -> dict[str, str]:
    with creds.get_client() as client:
        return {
            str(item.to_wire()["_id"]): str(item.to_wire().get("timezone", ""))
            for page in client.iter_dynadata_pages("clients")
            for item in page
        }


def _counts(sandbox: SandboxHandle) -> collections.Counter[str]:
    return collections.Counter(str(m["contactId"]) for m in sandbox.sent_messages())


def _run(creds: AutoTalkCredentials, ledger: Path, **params: Any) -> Any:
    params.setdefault("campaign_id", "quiet")
    params.setdefault("message_template", "Hi {{ name }}, spring is here.")
    params.setdefault("quiet_hours", NIGHT)
    params.setdefault("timezone_field", "timezone")
    return outreach_campaign(ledger_storage=str(ledger), credentials=creds, **params)


def test_madrid_deferred_the_americas_sent_then_a_later_run_sends_madrid_once(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, clock: list[dt.datetime], tmp_path: Path
) -> None:
    offset = sandbox.seed_items("clients", 1, timezone="-06:00")[0]
    no_zone = sandbox.seed_items("clients", 1, timezone="")[0]  # the campaign's zone: UTC
    bad = sandbox.seed_items("clients", 1, timezone="Mars/Base")[0]
    zones = _zones(creds)
    madrid = {c for c, z in zones.items() if z == "Europe/Madrid"}
    assert len(madrid) == 4 and {"America/Mexico_City", "America/New_York"} <= set(zones.values())
    others = set(zones) - madrid - {bad}

    first = _run(creds, tmp_path, on_quiet_hours="skip")
    assert _counts(sandbox) == {c: 1 for c in others}  # Madrid (21:30) and the bad zone: nothing
    assert (first.total, first.sent, first.deferred_quiet_hours, first.failed) == (19, 14, 4, 1)
    assert first.skipped_claimed == 0 and not first.quiet_hours_skipped
    assert {d.contact_id for d in first.quiet_deferred} == madrid
    assert first.quiet_deferred[0].reason == (
        "quiet hours 21:00-08:00 in Europe/Madrid: opens 2026-03-29 08:00 CEST (06:00 UTC)"
    )
    assert [f.contact_id for f in first.failures] == [bad]
    assert "'timezone'" in first.failures[0].reason and "'Mars/Base'" in first.failures[0].reason
    assert "4 deferred: quiet hours" in headline(first)
    assert {r["outcome"] for r in summary_table(first)} == {"failed", "deferred: quiet hours"}
    assert ClaimLedger("quiet", str(tmp_path)).statuses(madrid) == {}  # deferred: not claimed
    assert offset in others and no_zone in others

    clock[0] = MADRID_OPENS - dt.timedelta(minutes=1)  # 07:59 CEST (06:59 on a DST-blind clock)
    second = _run(creds, tmp_path, on_quiet_hours="skip")
    assert (second.sent, second.deferred_quiet_hours, second.skipped_already_sent) == (0, 4, 14)

    clock[0] = MADRID_OPENS  # 08:00 CEST: open (07:00 on a DST-blind clock would still be quiet)
    third = _run(creds, tmp_path, on_quiet_hours="skip")
    assert (third.sent, third.deferred_quiet_hours, third.skipped_already_sent) == (4, 0, 14)
    assert third.failed == 1  # the bad zone stays failed until its record is fixed
    assert _counts(sandbox) == {c: 1 for c in others | madrid}

    # an explicit id list: the records are fetched for their zone
    clock[0] = EVENING
    ids = _run(
        creds,
        tmp_path,
        campaign_id="quiet-ids",
        on_quiet_hours="skip",
        message_template="Spring is here.",
        audience=Audience(contact_ids=sorted(madrid | {offset})),
    )
    assert (ids.sent, ids.deferred_quiet_hours) == (1, 4)


def test_wait_sends_each_zone_when_its_window_opens_within_max_wait(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, clock: list[dt.datetime], tmp_path: Path
) -> None:
    zones = _zones(creds)
    madrid = {c for c, z in zones.items() if z == "Europe/Madrid"}

    # Madrid opens 9.5 h after EVENING: beyond a 9 h bound, so deferred; the rest sent at once
    short = _run(creds, tmp_path, on_quiet_hours="wait", max_wait=dt.timedelta(hours=9))
    assert (short.sent, short.deferred_quiet_hours, short.quiet_waited) == (12, 4, 0)
    assert {d.contact_id for d in short.quiet_deferred} == madrid
    assert "beyond max_wait" in short.quiet_deferred[0].reason
    assert clock[0] == EVENING  # nothing to wait for

    long = _run(creds, tmp_path, on_quiet_hours="wait", max_wait=36_000)  # 10 h, as seconds
    assert (long.sent, long.deferred_quiet_hours, long.quiet_waited) == (4, 0, 4)
    assert clock[0] >= MADRID_OPENS  # the run waited (on the injected clock) for 08:00 CEST
    assert _counts(sandbox) == {c: 1 for c in zones}


def test_wait_on_the_real_clock_with_a_bound_in_seconds(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    """A Madrid window ending a few seconds from now: the run holds Madrid, sends the others,
    then Madrid once the window ends; no Madrid message is created before it."""
    zones = _zones(creds)
    madrid = {c for c, z in zones.items() if z == "Europe/Madrid"}
    here = dt.datetime.now(quiet.parse_zone("Europe/Madrid"))
    ends = here + dt.timedelta(seconds=5)
    window = QuietHours(start=(here - dt.timedelta(hours=1)).time(), end=ends.time())
    summary = _run(creds, tmp_path, quiet_hours=window, on_quiet_hours="wait", max_wait=60)
    assert (summary.sent, summary.deferred_quiet_hours, summary.failed) == (16, 0, 0)
    assert summary.quiet_waited == len(madrid)
    assert _counts(sandbox) == {c: 1 for c in zones}
    stamp = ends.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"
    madrid_sent = [m["createdAt"] for m in sandbox.sent_messages() if m["contactId"] in madrid]
    assert len(madrid_sent) == 4 and min(madrid_sent) >= stamp


def test_one_zone_for_everybody_waits_before_reading_within_max_wait(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, clock: list[dt.datetime], tmp_path: Path
) -> None:
    """No timezone_field: the campaign's zone decides once, at the start. From 22:30 CET the
    night lasts 8.5 h, to 08:00 CEST (9.5 h on a DST-blind clock: beyond a 9 h bound)."""
    madrid_night = QuietHours(start=dt.time(21), end=dt.time(8), timezone="Europe/Madrid")
    common: dict[str, Any] = {"quiet_hours": madrid_night, "timezone_field": None}
    clock[0] = EVENING + dt.timedelta(hours=1)  # 21:30 UTC = 22:30 CET, opens 06:00 UTC
    beyond = _run(creds, tmp_path, on_quiet_hours="wait", max_wait=7 * 3600, **common)
    assert beyond.quiet_hours_skipped and beyond.sent == 0 and sandbox.sent_messages() == []
    assert clock[0] == EVENING + dt.timedelta(hours=1)

    within = _run(creds, tmp_path, on_quiet_hours="wait", max_wait=dt.timedelta(hours=9), **common)
    assert clock[0] == MADRID_OPENS  # 8.5 h later, on the injected clock
    assert not within.quiet_hours_skipped
    assert (within.sent, within.deferred_quiet_hours) == (16, 0)
