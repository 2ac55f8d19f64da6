"""A bounded set of interchangeable lanes (here: single-connection HTTP clients) for async code.

Why the async client does not use one httpx pool of N connections: httpcore 1.0's pool re-scans
every connection (and probes each idle socket) on every request it assigns, O(N^2) per request,
which made a 16-connection pool spend about half of a send's CPU in the pool. N one-connection
pools handed out by this class do the same work in O(1) per request: measured 2.3x the sends per
second of one pool on the same sandbox (bench/README.md). See encode/httpcore#1035.

A lane is taken for one request and given back right after it, never across a retry's wait.
Waiters are served first come, first served; a waiter cancelled after a lane was handed to it
passes the lane on instead of losing it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Lanes"]


class Lanes(Generic[T]):
    """``slots`` uses of each lane at once; ``async with lanes.take() as lane`` waits for one."""

    def __init__(self, lanes: Iterable[T], slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.all: tuple[T, ...] = tuple(lanes)
        if not self.all:
            raise ValueError("at least one lane is needed")
        # LIFO: the most recently used (warm) connection goes out first; spares may idle out
        self._free: list[T] = [lane for lane in self.all for _ in range(slots)]
        self._waiters: deque[asyncio.Future[T]] = deque()
        self.in_use = 0  # lanes taken and not yet given back

    async def acquire(self) -> T:
        if self._free and not self._waiters:
            self.in_use += 1
            return self._free.pop()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            lane = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.in_use += 1
                self.release(waiter.result())  # handed over, but we are gone: pass it on
            else:
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
