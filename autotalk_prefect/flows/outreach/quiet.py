"""Quiet hours in each contact's own time zone: send now, or not before the window opens.

A campaign's ``quiet_hours`` is one daily wall-clock window (``21:00-08:00``) applied on every
contact's own clock: the zone comes from a record field the user names (an IANA name such as
``Europe/Madrid``, or a UTC offset such as ``-06:00`` / ``UTC+5:30``), else the campaign's zone.
The rule is the wall clock: a contact is quiet while their local clock reads inside the window.
Instants are computed in UTC, so a night that springs forward is an hour shorter and one that
falls back an hour longer; a window end that does not exist that night (inside the skipped hour)
opens the window when the clock jumps past it, and one that occurs twice opens it the first time.

Everything here is pure (the clock is ``now``, replaced in tests) and picklable: the rule travels
inside each chunk job to wherever the chunk runs.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

UTC = dt.timezone.utc
MAX_LISTED = 200  # deferred contacts listed by id in the summary (the count is exact)
DEFERRED = "deferred: quiet hours"

#: the clock quiet hours are checked against (tests replace it, and ``sleep`` with it)
now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)  # noqa: E731
sleep: Callable[[float], None] = time.sleep

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+\-\u2212])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_ZONE_HELP = "an IANA name like 'Europe/Madrid' or a UTC offset like '-06:00' or 'UTC+5:30'"


class ZoneError(ValueError):
    """A time zone text that is neither an IANA name nor a UTC offset."""


@lru_cache(maxsize=4096)
def parse_zone(text: str) -> dt.tzinfo:
    """The zone an IANA name or a UTC offset names (cached: audiences repeat a few zones)."""
    value = text.strip()
    if not value:
        raise ZoneError(f"empty time zone (use {_ZONE_HELP})")
    if value.upper() in {"UTC", "GMT", "Z"}:
        return UTC
    match = _OFFSET.match(value)
    if match:
        sign = -1 if match.group(1) in "-\u2212" else 1
        hours, minutes = int(match.group(2)), int(match.group(3) or 0)
        if minutes >= 60 or hours * 60 + minutes > 14 * 60:
            raise ZoneError(f"UTC offset {text!r} is out of range (-14:00 to +14:00)")
        offset = dt.timedelta(hours=hours, minutes=minutes)
        return dt.timezone(sign * offset) if offset else UTC
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ZoneError(f"unknown time zone {text!r} (use {_ZONE_HELP})") from None


def zone_label(zone: dt.tzinfo) -> str:
    """``Europe/Madrid``, ``UTC-06:00``."""
    if isinstance(zone, ZoneInfo):
        return zone.key
    return str(zone)


# ---- the window on one clock ----------------------------------------------------------------


def inside(start: dt.time, end: dt.time, wall: dt.time) -> bool:
    """True when the wall-clock time ``wall`` is in the window (which may span midnight)."""
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def _wall(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _first_reaching(naive: dt.datetime, zone: dt.tzinfo, after: dt.datetime) -> dt.datetime:
    """The first instant after ``after`` at which the clock in ``zone`` reads ``naive`` or later.

    Twice on a fall-back night (the earlier one after ``after`` wins); never on a spring-forward
    night when ``naive`` is in the skipped hour: then the instant the clock jumps past it.
    """
    candidates = sorted({naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)})
    real = [c for c in candidates if _wall(c, zone) == naive and c > after]
    if real:
        return real[0]
    if len(candidates) == 2 and all(_wall(c, zone) != naive for c in candidates):
        # skipped hour: the clock reads < naive at the earlier candidate, > naive at the later
        low, high = candidates
        while (high - low) > dt.timedelta(seconds=1):
            mid = low + (high - low) / 2
            if _wall(mid, zone) >= naive:
                high = mid
            else:
                low = mid
        high = high.replace(microsecond=0)
        return high if _wall(high, zone) >= naive else high + dt.timedelta(seconds=1)
    return candidates[-1]


def opens_at(start: dt.time, end: dt.time, zone: dt.tzinfo, at: dt.datetime) -> dt.datetime | None:
    """``None`` when ``at`` is outside the window on the clock of ``zone``; else the first
    instant (UTC) after ``at`` at which that clock has left the window."""
    local = at.astimezone(zone)
    wall = local.time()
    if not inside(start, end, wall):
        return None
    day = local.date()
    if start > end and wall >= start:
        day += dt.timedelta(days=1)
    opened = _first_reaching(dt.datetime.combine(day, end), zone, at.astimezone(UTC))
    # a fall-back night can put the clock back inside; two days cover any window
    for _ in range(3):
        if not inside(start, end, opened.astimezone(zone).time()):
            break
        again = opens_at(start, end, zone, opened)
        opened = again if again is not None else opened
    return opened


# ---- the campaign's parameters --------------------------------------------------------------


class QuietHours(BaseModel):
    """A daily window in which nothing is sent (it may span midnight, e.g. 21:00-08:00), on each
    contact's own clock when the campaign names a ``timezone_field``."""

    start: dt.time = Field(description="Start of the quiet window (local time).")
    end: dt.time = Field(description="End of the quiet window (local time).")
    timezone: str = Field(
        default="UTC",
        description="The campaign's zone (IANA name, e.g. 'Europe/Madrid', or a UTC offset, "
        "e.g. '-06:00'): for every contact, or those whose zone field is missing or empty.",
    )

    @field_validator("start", "end")
    @classmethod
    def _wall_time(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError(
                "give a wall-clock time without an offset (the zone is `timezone`, or each "
                "contact's with timezone_field)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        parse_zone(zone)  # a ZoneError is a ValueError: pydantic names the field
        return zone

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end are equal: the window would be empty")
        return self

    def opens_at(self, at: dt.datetime, zone: dt.tzinfo | None = None) -> dt.datetime | None:
        """When the window ends if ``at`` is inside it (in ``zone``, default the campaign's)."""
        return opens_at(self.start, self.end, zone or parse_zone(self.timezone), at)

    def seconds_left(self, now: dt.datetime) -> float:
        """Seconds until the window ends if ``now`` is inside it (campaign zone), else 0."""
        opened = self.opens_at(now)
        return 0.0 if opened is None else (opened - now).total_seconds()


OnQuietHours = Literal["wait", "skip"]


@dataclass(frozen=True)
class Verdict:
    """One contact, now: send (``opens`` is None), wait for ``opens``, or a bad zone value."""

    opens: dt.datetime | None = None
    zone: str = ""
    problem: str | None = None


@dataclass(frozen=True)
class QuietRule:
    """The campaign's quiet hours as each chunk applies them (picklable: it rides in the job)."""

    start: dt.time
    end: dt.time
    zone: str
    field: str | None = None
    wait: bool = False
    wait_until: dt.datetime | None = None  # with ``wait``: hold contacts opening by then

    def _zone_value(self, record: Mapping[str, Any]) -> Any:
        assert self.field is not None
        if self.field in record or "." not in self.field:
            return record.get(self.field)
        value: Any = record
        for part in self.field.split("."):  # a nested field: metadata.timezone
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def check(self, record: Mapping[str, Any], at: dt.datetime) -> Verdict:
        """The verdict for one contact at ``at``."""
        zone = parse_zone(self.zone)
        if self.field is not None:
            value = self._zone_value(record)
            if isinstance(value, str) and value.strip():
                try:
                    zone = parse_zone(value)
                except ZoneError as exc:
                    return Verdict(problem=f"time zone field {self.field!r}: {exc}")
            elif value is not None and not isinstance(value, str):
                return Verdict(
                    problem=f"time zone field {self.field!r} is {value!r} "
                    f"({type(value).__name__}), not {_ZONE_HELP}"
                )
        opened = opens_at(self.start, self.end, zone, at)
        return Verdict(opens=opened, zone=zone_label(zone))

    def is_quiet(self, record: Mapping[str, Any], at: dt.datetime) -> bool:
        """True when a run at ``at`` would defer this contact (a dry run's count)."""
        return self.check(record, at).opens is not None

    def may_wait(self, opens: dt.datetime) -> bool:
        """With ``wait``: True when the window opens within the run's bound."""
        return self.wait and (self.wait_until is None or opens <= self.wait_until)

    def campaign_opens(self, at: dt.datetime) -> dt.datetime | None:
        """When the campaign zone's window opens (``None``: outside it)."""
        return opens_at(self.start, self.end, parse_zone(self.zone), at)

    def window(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _seconds(max_wait: object) -> float | None:
    if max_wait is None:
        return None
    if isinstance(max_wait, dt.timedelta):
        return max_wait.total_seconds()
    if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)):
        raise ValueError(f"max_wait must be seconds or a timedelta (or unset), got {max_wait!r}")
    return float(max_wait)


def build_rule(
    quiet_hours: QuietHours | Mapping[str, Any] | None,
    *,
    timezone_field: str | None,
    on_quiet_hours: str,
    max_wait: float | dt.timedelta | None,
    at: dt.datetime,
) -> QuietRule | None:
    """The campaign's rule, or one clear error naming the parameter before anything is sent.

    ``timezone_field`` and ``max_wait`` are checked but moot without ``quiet_hours`` (so a
    deployment that sets them can still be run with ``quiet_hours=null``), and ``max_wait``
    is moot with ``skip``.
    """
    if on_quiet_hours not in ("wait", "skip"):
        raise ValueError(f"on_quiet_hours must be 'wait' or 'skip', got {on_quiet_hours!r}")
    seconds = _seconds(max_wait)
    if seconds is not None and not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"max_wait must be >= 0 seconds and finite (or unset), got {max_wait!r}")
    if timezone_field is not None and (
        not isinstance(timezone_field, str) or not timezone_field.strip()
    ):
        raise ValueError(
            f"timezone_field must name a record field (e.g. 'timezone'), got {timezone_field!r}"
        )
    if quiet_hours is None:  # e.g. `--param quiet_hours=null`: the rest is moot for this run
        return None
    window = (
        quiet_hours
        if isinstance(quiet_hours, QuietHours)
        else QuietHours.model_validate(quiet_hours)
    )
    wait = on_quiet_hours == "wait"
    return QuietRule(
        start=window.start,
        end=window.end,
        zone=window.timezone,
        field=timezone_field.strip() if timezone_field else None,
        wait=wait,
        wait_until=at + dt.timedelta(seconds=seconds) if wait and seconds is not None else None,
    )


def when(instant: dt.datetime, zone: str) -> str:
    """``2026-03-29 08:00 CEST (06:00 UTC)``: an opening as the contact and the operator read it."""
    local = instant.astimezone(parse_zone(zone))
    name = local.tzname() or zone
    return f"{local:%Y-%m-%d %H:%M} {name} ({instant.astimezone(UTC):%H:%M} UTC)"


# ---- what chunks hand back, and the run's tally ---------------------------------------------


class QuietDeferral(BaseModel):
    """A contact inside their quiet hours: not messaged, not claimed (a later run sends it)."""

    contact_id: str
    reason: str
    opens_at: dt.datetime


class QuietWaiting(BaseModel):
    """A contact whose window opens within the run's ``max_wait``: the run sends it then."""

    contact_id: str
    record: dict[str, Any] = Field(default_factory=dict)
    opens_at: dt.datetime
    zone: str = ""


class QuietChunk(BaseModel):
    """Quiet hours in one chunk: the contacts deferred, and those the run waits for."""

    deferred: list[QuietDeferral] = Field(default_factory=list)
    waiting: list[QuietWaiting] = Field(default_factory=list)

    def hold(
        self, contact_id: str, record: dict[str, Any], verdict: Verdict, rule: QuietRule
    ) -> None:
        """Keep a quiet contact for later in this run (within the bound), or defer it."""
        assert verdict.opens is not None
        if rule.may_wait(verdict.opens):
            self.waiting.append(
                QuietWaiting(
                    contact_id=contact_id, record=record, opens_at=verdict.opens, zone=verdict.zone
                )
            )
            return
        bound = " (beyond max_wait)" if rule.wait else ""
        reason = (
            f"quiet hours {rule.window()} in {verdict.zone}: opens "
            f"{when(verdict.opens, verdict.zone)}{bound}"
        )
        self.deferred.append(
            QuietDeferral(contact_id=contact_id, reason=reason, opens_at=verdict.opens)
        )


class QuietTally:
    """The run's quiet-hours bookkeeping: deferred contacts, and the queue the run waits on."""

    def __init__(self) -> None:
        self.deferred_count = 0
        self.deferred: list[QuietDeferral] = []
        self.waited = 0
        self._queue: list[tuple[dt.datetime, int, QuietWaiting]] = []
        self._order = 0
        self._last: dt.datetime | None = None

    def add(self, chunk: QuietChunk) -> None:
        self.deferred_count += len(chunk.deferred)
        self.deferred += chunk.deferred[: max(0, MAX_LISTED - len(self.deferred))]
        for item in chunk.waiting:
            self._order += 1
            heapq.heappush(self._queue, (item.opens_at, self._order, item))

    def __bool__(self) -> bool:
        return bool(self._queue)

    def next_opening(self) -> tuple[dt.datetime, int, list[str]]:
        """The next opening, how many contacts wait for it, and their zones.

        An opening handed back again (a chunk's clock, say a Dask worker's, ran a little behind
        the flow's) comes a second later each time instead of at once: no busy loop.
        """
        first = self._queue[0][0]
        due = [item for opens, _, item in self._queue if opens <= first]
        if self._last is not None and first <= self._last:
            first = self._last + dt.timedelta(seconds=1)
        self._last = first
        return first, len(due), sorted({item.zone for item in due})

    def take_due(self, at: dt.datetime) -> Iterator[tuple[str, dict[str, Any]]]:
        """(contact id, record) for every waiting contact whose window has opened by ``at``."""
        while self._queue and self._queue[0][0] <= at:
            item = heapq.heappop(self._queue)[2]
            yield item.contact_id, item.record

    def line(self) -> str:
        return f"{self.deferred_count} deferred, {self.waited} sent after waiting"


def wait_until(instant: dt.datetime, step: float = 60.0) -> None:
    """Sleep until the clock reads ``instant`` (in steps, re-reading the clock each time)."""
    while (left := (instant - now()).total_seconds()) > 0:
        sleep(min(left, step))


__all__ = [
    "DEFERRED",
    "QuietChunk",
    "QuietDeferral",
    "QuietHours",
    "QuietRule",
    "QuietTally",
    "QuietWaiting",
    "Verdict",
    "ZoneError",
    "build_rule",
    "inside",
    "opens_at",
    "parse_zone",
    "wait_until",
    "when",
    "zone_label",
]
