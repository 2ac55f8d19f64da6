"""A bounded set of interchangeable lanes (here: one-connection HTTP clients) for async code.

Why the async client does not use one httpx pool of N connections: httpcore 1.0's pool re-scans
every connection (and probes each idle socket) on every request it assigns, O(N^2) per request,
which made a 16-connection pool spend about half of a send's CPU in the pool. N one-connection
pools handed out by this class do the same work in O(1) per request: measured 2.1x the sends per
second of one pool on the same sandbox (bench/README.md). See encode/httpcore#1035.

Lanes are made on first need (a client used for one call opens one), at most ``size`` of them,
each usable by ``slots`` callers at once. A lane is taken for one request and given back right
after it, never across a retry's wait. Waiters are served first come, first served; a waiter
cancelled after a lane was handed to it passes the lane on instead of losing it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Lanes", "LanesClosedError"]


class LanesClosedError(RuntimeError):
    """A lane was asked for after ``close()``."""


class Lanes(Generic[T]):
    """At most ``size`` lanes from ``make()``; ``async with lanes.take() as lane`` waits for one."""

    def __init__(self, make: Callable[[], T], size: int, slots: int = 1) -> None:
        for name, value in (("size", size), ("slots", slots)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self._make, self.size, self.slots = make, size, slots
        self.made: list[T] = []  # every lane opened so far (to close them)
        # LIFO: the most recently used (warm) connection goes out first; spares may idle out
        self._free: list[T] = []
        self._waiters: deque[asyncio.Future[T]] = deque()
        self.in_use = 0  # lanes taken and not yet given back
        self.closed = False

    async def acquire(self) -> T:
        if self.closed:
            raise LanesClosedError("this client has been closed: open a new one")
        if not self._waiters:
            if self._free:
                self.in_use += 1
                return self._free.pop()
            if len(self.made) < self.size:
                lane = self._make()
                self.made.append(lane)
                self._free.extend([lane] * (self.slots - 1))
                self.in_use += 1
                return lane
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            lane = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.in_use += 1
                self.release(waiter.result())  # handed over, but we are gone: pass it on
            elif waiter in self._waiters:  # a release may already have skipped and dropped it
                self._waiters.remove(waiter)
            raise
        self.in_use += 1
        return lane

    def release(self, lane: T) -> None:
        self.in_use -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(lane)
                return
        self._free.append(lane)

    @asynccontextmanager
    async def take(self) -> AsyncIterator[T]:
        lane = await self.acquire()
        try:
            yield lane
        finally:
            self.release(lane)

    def close(self) -> list[T]:
        """Refuse new takers; returns the lanes made, for the caller to close."""
        self.closed = True
        return list(self.made)
