"""The admin of the Prefect global concurrency limit AutoTalk sends share as a rate limit.

Create it, update it in place, read it, delete it: :func:`ensure_rate_limit`,
:func:`describe_rate_limit`, :func:`remove_rate_limit` (``autotalk-prefect rate-limit
set|show|delete`` on the command line). As a rate limit, ``slot_decay_per_second`` is the
sustained requests per second and ``limit`` the burst (slots that may be taken at once after a
quiet spell); a limit without slot decay is refused by the server in rate-limit mode (HTTP 422).
Taking slots while sending is ``ratelimit.py``'s (:class:`~autotalk_prefect.ratelimit.GlobalRateLimit`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse

__all__ = [
    "DEFAULT_RATE_LIMIT_NAME",
    "RateLimitInfo",
    "RateLimitOutcome",
    "default_burst",
    "describe_rate_limit",
    "ensure_rate_limit",
    "remove_rate_limit",
]


#: the limit name the docs, the CLI and ``global_rate_limit_name`` examples use
DEFAULT_RATE_LIMIT_NAME = "autotalk-api"


class RateLimitOutcome(str, enum.Enum):
    """What :func:`ensure_rate_limit` had to do."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class RateLimitInfo:
    """A global concurrency limit read as a rate limit."""

    name: str
    requests_per_second: float
    burst: int
    active: bool
    active_slots: int

    @property
    def usable(self) -> bool:
        """True if sends can take slots from it (active, and the slots decay)."""
        return self.active and self.requests_per_second > 0 and self.burst >= 1

    def describe(self) -> str:
        state = "active" if self.active else "INACTIVE (does not throttle)"
        return (
            f"{self.name}: {self.requests_per_second:g} requests/s, burst {self.burst}, "
            f"{state}, {self.active_slots} slot(s) taken now"
        )


def default_burst(requests_per_second: float) -> int:
    """One second's worth of requests (at least 1): the burst when none is given."""
    return max(1, math.ceil(requests_per_second))


def _check(name: str, requests_per_second: float, burst: int | None) -> int:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("rate limit name must be a non-empty string")
    if (
        isinstance(requests_per_second, bool)
        or not isinstance(requests_per_second, (int, float))
        or not math.isfinite(requests_per_second)
        or requests_per_second <= 0
    ):
        raise ValueError(
            f"requests_per_second must be a finite number > 0, got {requests_per_second!r}"
        )
    if burst is None:
        return default_burst(requests_per_second)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"burst must be an integer >= 1 (or unset), got {burst!r}")
    return burst


def _info(limit: GlobalConcurrencyLimitResponse) -> RateLimitInfo:
    return RateLimitInfo(
        name=limit.name,
        requests_per_second=float(limit.slot_decay_per_second or 0.0),
        burst=limit.limit,
        active=limit.active,
        active_slots=limit.active_slots,
    )


def _client() -> SyncPrefectClient:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _read(client: SyncPrefectClient, name: str) -> GlobalConcurrencyLimitResponse | None:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        return None


def ensure_rate_limit(
    name: str = DEFAULT_RATE_LIMIT_NAME,
    requests_per_second: float = 10.0,
    burst: int | None = None,
) -> tuple[RateLimitInfo, RateLimitOutcome]:
    """Create or update GCL ``name`` so it allows ``requests_per_second`` (bursts of ``burst``).

    Idempotent: an existing limit with these numbers is left as it is; one that differs (or is
    inactive) is updated in place, so slots already taken stay counted. ``burst`` defaults to
    one second's worth. Returns the limit as the server now holds it, and what was done.
    """
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists

    burst = _check(name, requests_per_second, burst)
    rate = float(requests_per_second)
    with _client() as client:
        current = _read(client, name)
        if current is None:
            try:
                create = GlobalConcurrencyLimitCreate(
                    name=name, limit=burst, slot_decay_per_second=rate, active=True
                )
            except ValidationError as exc:
                raise ValueError(
                    f"invalid rate limit name {name!r}: {exc.errors()[0]['msg']}"
                ) from None
            try:
                client.create_global_concurrency_limit(create)
                outcome = RateLimitOutcome.CREATED
            except ObjectAlreadyExists:  # created by someone else since we looked: update it
                outcome = RateLimitOutcome.UPDATED
                current = _read(client, name)
        if current is not None:
            if (current.limit, current.slot_decay_per_second, current.active) == (
                burst,
                rate,
                True,
            ):
                outcome = RateLimitOutcome.UNCHANGED
            else:
                client.update_global_concurrency_limit(
                    name,
                    GlobalConcurrencyLimitUpdate(
                        limit=burst, slot_decay_per_second=rate, active=True
                    ),
                )
                outcome = RateLimitOutcome.UPDATED
        final = _read(client, name)
    if final is None:
        raise RuntimeError(f"rate limit {name!r} vanished right after it was written")
    return _info(final), outcome


def describe_rate_limit(name: str = DEFAULT_RATE_LIMIT_NAME) -> RateLimitInfo | None:
    """The rate limit ``name`` as the Prefect server holds it, or ``None`` if there is none."""
    with _client() as client:
        found = _read(client, name)
    return _info(found) if found is not None else None


def remove_rate_limit(name: str = DEFAULT_RATE_LIMIT_NAME) -> bool:
    """Delete rate limit ``name``; ``False`` if it did not exist (so it is safe to repeat).

    Runs that name it afterwards fail at their start instead of sending unthrottled.
    """
    from prefect.exceptions import ObjectNotFound

    with _client() as client:
        try:
            client.delete_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True
