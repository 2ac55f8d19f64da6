"""The send-time throttles: a client-side token bucket, and one Prefect limit for every worker.

* :class:`TokenBucket`: ``requests_per_second`` within one process (no server).

Both are built once per campaign run (the outreach send context) and shared as they are by the
chunks of one process, each chunk in its own thread and event loop: their state sits behind a
``threading.Lock`` never held across an ``await``. Pickled (to a Dask worker), each travels as
its settings and starts fresh there.
* :class:`GlobalRateLimit`: a Prefect *global concurrency limit* (GCL) used as a rate limit, so
  every worker on every machine shares one budget (slots are counted by the Prefect server;
  see ``docs/scaling.md``). As a rate limit, ``slot_decay_per_second`` = the sustained requests
  per second and ``limit`` = the burst (slots that may be taken at once after a quiet spell).
  :func:`check_global_rate_limit` is the campaign's check before its first send.

Creating, updating and deleting the limit itself is ``concurrency_limits.py``'s
(``autotalk-prefect rate-limit set|show|delete``); its names stay importable from here too, as
the first releases documented them.

How ``prefect.concurrency.asyncio.rate_limit`` behaves (Prefect 3.9.1, read from its source):

* ``occupy=k`` takes ``k`` slots at once and never gives them back; they decay at
  ``slot_decay_per_second``. We take ``batch`` slots per call and hand them out one per send, so
  a send never goes out without its slot (``batch`` <= the limit, or the server never grants it).
* ``strict=False`` (Prefect's default) only logs a warning when the limit does not exist and then
  does not throttle at all; an inactive limit behaves the same. We always pass ``strict=True``
  (a missing limit raises ``ConcurrencySlotAcquisitionError``) and check up front with
  :func:`check_global_rate_limit`, so a user who asked for a limit gets it or a clear failure.
* A limit without slot decay is refused by the server in rate-limit mode (HTTP 422).
* Every acquisition is one request to the Prefect API and emits an event: for very high rates
  use ``batch`` > 1 to cut that traffic.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from autotalk_prefect.concurrency_limits import (
    DEFAULT_RATE_LIMIT_NAME,
    RateLimitInfo,
    RateLimitOutcome,
    default_burst,
    describe_rate_limit,
    ensure_rate_limit,
    remove_rate_limit,
)

__all__ = [
    "DEFAULT_RATE_LIMIT_NAME",
    "GlobalRateLimit",
    "GlobalRateLimitError",
    "RateLimitInfo",
    "RateLimitOutcome",
    "TokenBucket",
    "check_global_rate_limit",
    "default_burst",
    "describe_rate_limit",
    "ensure_rate_limit",
    "remove_rate_limit",
]

_EPSILON = 1e-9


class TokenBucket:
    """Token bucket: at most ``rate`` acquisitions per second, bursts up to ``burst``.

    Each acquisition reserves its token at once (the count may go below zero) and sleeps until
    the token is due, so waiters are served in order, from any thread or event loop; monotonic
    clock, no background task.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (TokenBucket, (self.rate, self.burst))

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst})"

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _reserve(self) -> float:
        """Take one token (perhaps not yet there); the seconds until it is."""
        with self._lock:
            self._refill()
            self._tokens -= 1
            # The epsilon matters: float rounding can leave -0.0000000001 after a refill of
            # exactly the missing time; waiting for that would not move the clock.
            return 0.0 if self._tokens >= -_EPSILON else -self._tokens / self.rate

    async def acquire(self) -> None:
        """Wait until one token is available, then take it."""
        wait = self._reserve()
        if wait > 0:
            await self._sleep(wait)


class GlobalRateLimitError(RuntimeError):
    """The global concurrency limit named for the campaign cannot be used as a rate limit."""


async def check_global_rate_limit(name: str) -> dict[str, Any]:
    """Fail clearly unless global concurrency limit ``name`` exists, is active and decays.

    Returns ``{"limit": N, "slot_decay_per_second": R}``.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    if not name or not name.strip():
        raise GlobalRateLimitError("global_rate_limit_name must not be empty")
    async with get_client() as client:
        try:
            limit = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            raise GlobalRateLimitError(
                f"Global concurrency limit {name!r} does not exist. Create it first, e.g. "
                f"`prefect gcl create {name} --limit 10 --slot-decay-per-second 10`, or leave "
                "global_rate_limit_name empty."
            ) from None
    if not limit.active:
        raise GlobalRateLimitError(
            f"Global concurrency limit {name!r} is inactive, so it would not throttle anything: "
            f"activate it (`prefect gcl enable {name}`)."
        )
    if not limit.slot_decay_per_second or limit.slot_decay_per_second <= 0:
        raise GlobalRateLimitError(
            f"Global concurrency limit {name!r} has no slot decay, so it cannot act as a rate "
            f"limit: set one (`prefect gcl update {name} --slot-decay-per-second 10`)."
        )
    return {"limit": limit.limit, "slot_decay_per_second": limit.slot_decay_per_second}


class GlobalRateLimit:
    """One slot of Prefect global limit ``name`` per :meth:`acquire` (taken ``batch`` at a time).

    ``strict=True`` always: a limit deleted mid-run fails the sends instead of silently
    unthrottling them.
    """

    def __init__(self, name: str, *, batch: int = 1, timeout_seconds: float | None = None) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch!r}")
        self.name = name
        self.batch = batch
        self.timeout_seconds = timeout_seconds
        self._available = 0
        self._guard = threading.Lock()  # the counters, from any thread
        # one asyncio lock per event loop: a loop's senders take batches one at a time
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.acquisitions = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (_global_rate_limit, (self.name, self.batch, self.timeout_seconds))

    def __repr__(self) -> str:
        return f"GlobalRateLimit({self.name!r}, batch={self.batch})"

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
            return lock

    def _take_banked(self) -> bool:
        with self._guard:
            if self._available == 0:
                return False
            self._available -= 1
            return True

    async def acquire(self) -> None:
        from prefect.concurrency.asyncio import rate_limit

        async with self._loop_lock():
            if self._take_banked():
                return
            await rate_limit(
                self.name, occupy=self.batch, timeout_seconds=self.timeout_seconds, strict=True
            )
            with self._guard:
                self.acquisitions += 1
                self._available += self.batch - 1  # one is this send's


def _global_rate_limit(name: str, batch: int, timeout_seconds: float | None) -> GlobalRateLimit:
    return GlobalRateLimit(name, batch=batch, timeout_seconds=timeout_seconds)
