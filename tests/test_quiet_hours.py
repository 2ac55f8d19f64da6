"""Quiet hours on each contact's clock (pure functions, injected instants: no sleeping, no server).

The DST cases are the spring-forward and fall-back nights of 2026 in Europe/Madrid (29 March,
25 October: at 01:00 UTC) and America/New_York (8 March at 07:00 UTC, 1 November at 06:00 UTC).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from autotalk_prefect.flows.outreach import quiet
from autotalk_prefect.flows.outreach.quiet import (
    QuietChunk,
    QuietHours,
    QuietTally,
    ZoneError,
    build_rule,
    inside,
    opens_at,
    parse_zone,
    when,
)

UTC = dt.timezone.utc
T = dt.time
MADRID, NEW_YORK = parse_zone("Europe/Madrid"), parse_zone("America/New_York")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ---- zones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("-06:00", -6 * 60),
        ("+05:30", 5 * 60 + 30),
        ("UTC+5:30", 5 * 60 + 30),
        ("utc-3", -3 * 60),
        ("GMT+01", 60),
        ("+0545", 5 * 60 + 45),
        ("\u221203:00", -3 * 60),  # a typographic minus
        ("UTC", 0),
        ("Z", 0),
        ("+14:00", 14 * 60),
    ],
)
def test_utc_offsets(text: str, offset: int) -> None:
    zone = parse_zone(text)
    assert zone.utcoffset(None) == dt.timedelta(minutes=offset)


def test_iana_names_and_posix_etc_names_keep_their_meaning() -> None:
    assert quiet.zone_label(parse_zone(" America/Mexico_City ")) == "America/Mexico_City"
    # Etc/GMT+5 is POSIX (five hours BEHIND UTC); "GMT+5" is read as people write it
    jan = utc(2026, 1, 15, 12)
    assert parse_zone("Etc/GMT+5").utcoffset(jan) == dt.timedelta(hours=-5)
    assert parse_zone("GMT+5").utcoffset(jan) == dt.timedelta(hours=5)


@pytest.mark.parametrize(
    "text", ["", "  ", "Mars/Base", "Europe", "../etc/passwd", "/etc/localtime", "+14:30", "+5:75"]
)
def test_bad_zones_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ZoneError) as caught:
        parse_zone(text)
    assert (repr(text.strip()) if text.strip() else "empty") in str(caught.value)


# ---- one clock ------------------------------------------------------------------------------


def test_inside_same_day_and_across_midnight() -> None:
    assert inside(T(21), T(8), T(23)) and inside(T(21), T(8), T(7, 59, 59))
    assert not inside(T(21), T(8), T(8)) and not inside(T(21), T(8), T(20, 59))
    assert inside(T(12), T(14), T(12)) and not inside(T(12), T(14), T(14))


@pytest.mark.parametrize(
    ("zone", "at", "expected", "hours"),
    [
        # 21:00-08:00 over the spring-forward night: an hour shorter
        (MADRID, utc(2026, 3, 28, 21), utc(2026, 3, 29, 6), 9),  # 22:00 CET -> 08:00 CEST
        (NEW_YORK, utc(2026, 3, 8, 3), utc(2026, 3, 8, 12), 9),  # 22:00 EST -> 08:00 EDT
        # ... and over the fall-back night: an hour longer
        (MADRID, utc(2026, 10, 24, 20), utc(2026, 10, 25, 7), 11),  # 22:00 CEST -> 08:00 CET
        (NEW_YORK, utc(2026, 11, 1, 2), utc(2026, 11, 1, 13), 11),  # 22:00 EDT -> 08:00 EST
    ],
)
def test_a_night_window_across_dst_changes(
    zone: dt.tzinfo, at: dt.datetime, expected: dt.datetime, hours: int
) -> None:
    opened = opens_at(T(21), T(8), zone, at)
    assert opened == expected
    assert (opened - at) == dt.timedelta(hours=hours)
    assert opened.astimezone(zone).time() == T(8)
    window = QuietHours(start=T(21), end=T(8), timezone=zone_key(zone))
    assert window.seconds_left(at) == hours * 3600  # the old wall-clock subtraction said 10


def zone_key(zone: dt.tzinfo) -> str:
    return quiet.zone_label(zone)


def test_an_end_in_the_skipped_hour_opens_when_the_clock_jumps() -> None:
    # Madrid, 29 March: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 never happens
    opened = opens_at(T(21), T(2, 30), MADRID, utc(2026, 3, 28, 22))
    assert opened == utc(2026, 3, 29, 1)
    assert opened.astimezone(MADRID).time() == T(3)
    assert inside(T(21), T(2, 30), (opened - dt.timedelta(seconds=1)).astimezone(MADRID).time())


def test_an_end_in_the_repeated_hour_opens_at_its_first_occurrence_then_the_clock_rereads() -> None:
    # Madrid, 25 October: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:30 happens twice
    assert opens_at(T(21), T(2, 30), MADRID, utc(2026, 10, 24, 21)) == utc(2026, 10, 25, 0, 30)
    # at 02:10 CET (the second pass) the clock reads inside again: open at the second 02:30
    assert opens_at(T(21), T(2, 30), MADRID, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 1, 30)
    # New York, 1 November: 01:00-02:00 repeats
    assert opens_at(T(22), T(1, 30), NEW_YORK, utc(2026, 11, 1, 3)) == utc(2026, 11, 1, 5, 30)
    assert opens_at(T(22), T(1, 30), NEW_YORK, utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 1, 6, 30)


def test_a_start_in_the_skipped_or_repeated_hour() -> None:
    # New York, 8 March: 02:30 never happens; at 03:00 EDT the clock is past the start
    assert opens_at(T(2, 30), T(6), NEW_YORK, utc(2026, 3, 8, 6, 59)) is None  # 01:59 EST
    assert opens_at(T(2, 30), T(6), NEW_YORK, utc(2026, 3, 8, 7)) == utc(2026, 3, 8, 10)
    # 1 November: 01:30 happens twice; quiet from the first one
    assert opens_at(T(1, 30), T(6), NEW_YORK, utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 1, 11)


@pytest.mark.parametrize("zone_name", ["Europe/Madrid", "America/New_York", "-06:00"])
@pytest.mark.parametrize("window", [(T(21), T(8)), (T(21), T(2, 30)), (T(1, 30), T(2, 15))])
@pytest.mark.parametrize(
    "night",
    [utc(2026, 3, 7, 12), utc(2026, 3, 28, 12), utc(2026, 10, 24, 12), utc(2026, 10, 31, 12)],
)
def test_every_minute_of_the_dst_nights_agrees_with_the_wall_clock(
    zone_name: str, window: tuple[dt.time, dt.time], night: dt.datetime
) -> None:
    """For each minute over 40 hours: quiet iff the clock reads inside; the opening is the
    first instant the clock reads outside (one second before it, still inside)."""
    zone = parse_zone(zone_name)
    start, end = window
    for minute in range(0, 40 * 60, 7):
        at = night + dt.timedelta(minutes=minute)
        opened = opens_at(start, end, zone, at)
        clock_inside = inside(start, end, at.astimezone(zone).time())
        assert (opened is not None) == clock_inside, at
        if opened is None:
            continue
        assert opened > at
        assert not inside(start, end, opened.astimezone(zone).time()), (at, opened)
        before = opened - dt.timedelta(seconds=1)
        assert inside(start, end, before.astimezone(zone).time()), (at, opened)
        assert opened - at <= dt.timedelta(hours=25)


def test_when_reads_as_the_contact_and_the_operator_do() -> None:
    assert when(utc(2026, 3, 29, 6), "Europe/Madrid") == "2026-03-29 08:00 CEST (06:00 UTC)"
    assert when(utc(2026, 3, 29, 14), "-06:00") == "2026-03-29 08:00 UTC-06:00 (14:00 UTC)"


# ---- the campaign's rule --------------------------------------------------------------------


def rule(**kw: Any) -> quiet.QuietRule:
    kw.setdefault("timezone_field", "timezone")
    kw.setdefault("on_quiet_hours", "skip")
    kw.setdefault("max_wait", None)
    kw.setdefault("at", utc(2026, 3, 28, 21))
    hours = kw.pop("quiet_hours", {"start": "21:00", "end": "08:00", "timezone": "UTC"})
    made = build_rule(hours, **kw)
    assert made is not None
    return made


def test_each_contact_on_its_own_clock() -> None:
    r = rule()
    at = utc(2026, 3, 28, 21, 30)  # Madrid 22:30 (quiet), Mexico City 15:30, UTC 21:30 (quiet)
    madrid = r.check({"timezone": "Europe/Madrid"}, at)
    assert madrid.opens == utc(2026, 3, 29, 6) and madrid.zone == "Europe/Madrid"
    assert r.check({"timezone": "America/Mexico_City"}, at).opens is None
    assert r.is_quiet({"timezone": "Europe/Madrid"}, at)
    assert not r.is_quiet({"timezone": "America/Mexico_City"}, at)
    assert not r.is_quiet({"timezone": "Mars/Base"}, at)  # a failure, not a deferral
    assert r.check({"timezone": "-06:00"}, at).opens is None
    # missing, empty or null: the campaign's zone (UTC here: quiet until 08:00 UTC)
    for record in ({}, {"timezone": ""}, {"timezone": "  "}, {"timezone": None}):
        assert r.check(record, at).opens == utc(2026, 3, 29, 8), record
    nested = rule(timezone_field="metadata.tz")
    assert nested.check({"metadata": {"tz": "America/Mexico_City"}}, at).opens is None


@pytest.mark.parametrize(
    ("value", "shown"), [("Mars/Base", "'Mars/Base'"), ("+25:00", "'+25:00'"), (-6, "-6 (int)")]
)
def test_a_bad_zone_value_is_a_problem_naming_the_field_and_the_value(
    value: object, shown: str
) -> None:
    verdict = rule().check({"timezone": value}, utc(2026, 3, 28, 12))
    assert verdict.opens is None and verdict.problem is not None
    assert "'timezone'" in verdict.problem and shown in verdict.problem


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"on_quiet_hours": "later"}, ("on_quiet_hours", "later")),
        ({"on_quiet_hours": "wait", "max_wait": -1}, ("max_wait", "-1")),
        ({"on_quiet_hours": "wait", "max_wait": "soon"}, ("max_wait", "soon")),
        ({"on_quiet_hours": "wait", "max_wait": True}, ("max_wait",)),
        ({"on_quiet_hours": "wait", "max_wait": float("inf")}, ("max_wait", "finite")),
        ({"timezone_field": " "}, ("timezone_field",)),
        ({"timezone_field": 3}, ("timezone_field",)),
        ({"quiet_hours": None, "max_wait": -1}, ("max_wait",)),  # checked even when moot
    ],
)
def test_bad_campaign_arguments_are_one_clear_error(
    params: dict[str, Any], names: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError) as caught:
        rule(**params)
    for name in names:
        assert name in str(caught.value)


def test_bad_windows_are_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        QuietHours(start=T(21), end=T(8), timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="start and end"):
        QuietHours(start=T(21), end=T(21))
    with pytest.raises(ValidationError, match="without an offset"):
        QuietHours.model_validate({"start": "21:00+02:00", "end": "08:00"})
    at_6am_there = utc(2026, 3, 28, 12)
    minus_six = QuietHours(start=T(21), end=T(8), timezone="UTC-06:00")
    assert minus_six.seconds_left(at_6am_there) == 2 * 3600
    assert minus_six.seconds_left(at_6am_there + dt.timedelta(hours=2)) == 0


def test_no_quiet_hours_no_rule() -> None:
    at = utc(2026, 3, 28)
    assert (
        build_rule(None, timezone_field=None, on_quiet_hours="wait", max_wait=None, at=at) is None
    )


def test_wait_holds_contacts_opening_within_the_bound_and_defers_the_rest() -> None:
    started = utc(2026, 3, 28, 21)
    r = rule(on_quiet_hours="wait", max_wait=dt.timedelta(hours=10), at=started)
    assert r.wait_until == utc(2026, 3, 29, 7)
    chunk = QuietChunk()
    at = utc(2026, 3, 28, 21, 30)
    for contact, zone in (("m", "Europe/Madrid"), ("u", "UTC"), ("l", "Europe/London")):
        record = {"timezone": zone}
        verdict = r.check(record, at)
        assert verdict.opens is not None
        chunk.hold(contact, record, verdict, r)
    # Madrid opens 06:00 UTC and London 07:00 UTC (within 10 h); UTC opens 08:00 UTC (beyond)
    assert [w.contact_id for w in chunk.waiting] == ["m", "l"]
    assert [d.contact_id for d in chunk.deferred] == ["u"]
    assert "beyond max_wait" in chunk.deferred[0].reason and "08:00 UTC" in chunk.deferred[0].reason

    tally = QuietTally()
    tally.add(chunk)
    assert tally.deferred_count == 1 and bool(tally)
    assert tally.next_opening() == (utc(2026, 3, 29, 6), 1, ["Europe/Madrid"])
    assert list(tally.take_due(utc(2026, 3, 29, 5, 59))) == []
    assert list(tally.take_due(utc(2026, 3, 29, 6))) == [("m", {"timezone": "Europe/Madrid"})]
    assert [c for c, _ in tally.take_due(utc(2026, 3, 29, 9))] == ["l"] and not tally

    # handed back at the same opening (a chunk whose clock ran behind): a second later, not at once
    tally.add(chunk.model_copy(update={"deferred": [], "waiting": chunk.waiting[:1]}))
    assert tally.next_opening()[0] == utc(2026, 3, 29, 6, 0, 1)


def test_skip_defers_with_the_opening_in_the_contacts_zone() -> None:
    r = rule()
    chunk = QuietChunk()
    verdict = r.check({"timezone": "Europe/Madrid"}, utc(2026, 3, 28, 21, 30))
    chunk.hold("m", {}, verdict, r)
    assert chunk.waiting == []
    assert chunk.deferred[0].reason == (
        "quiet hours 21:00-08:00 in Europe/Madrid: opens 2026-03-29 08:00 CEST (06:00 UTC)"
    )


def test_wait_until_polls_the_injected_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [utc(2026, 3, 28, 21)]
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += dt.timedelta(seconds=seconds)

    monkeypatch.setattr(quiet, "now", lambda: clock[0])
    monkeypatch.setattr(quiet, "sleep", fake_sleep)
    quiet.wait_until(utc(2026, 3, 28, 21, 2, 30))
    assert slept == [60.0, 60.0, 30.0] and clock[0] == utc(2026, 3, 28, 21, 2, 30)
    quiet.wait_until(utc(2026, 3, 28, 21))  # already past: no sleep
    assert len(slept) == 3
