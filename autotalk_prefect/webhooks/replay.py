"""Replay protection: remember accepted event ids for the tolerance window, in bounded memory.

An id is *reserved* while its event is being handed to Prefect (so a concurrent duplicate is
refused too), *committed* once Prefect confirmed it, and *released* if emission failed, so
that the sender's retry of a failed delivery is not mistaken for a replay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

logger = logging.getLogger("autotalk_prefect.webhooks")


class ReplayGuard:
    """Event ids seen within ``ttl_seconds``; at most ``max_entries`` (oldest evicted first)."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # insertion order == expiry order
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._expiry) + len(self._in_flight)

    def reserve(self, key: str) -> bool:
        """Claim ``key``; False when it was accepted recently or is being accepted right now."""
        with self._lock:
            self._purge(self._clock())
            if key in self._expiry or key in self._in_flight:
                return False
            self._in_flight.add(key)
            return True

    def commit(self, key: str) -> None:
        """Prefect has the event: refuse this id until the window has passed."""
        with self._lock:
            self._in_flight.discard(key)
            now = self._clock()
            self._purge(now)
            self._expiry.pop(key, None)
            self._expiry[key] = now + self._ttl
            if len(self._expiry) > self._max:
                self._expiry.popitem(last=False)
                logger.warning(
                    "replay cache full (%d ids): forgot the oldest id before its window ended; "
                    "raise AUTOTALK_WEBHOOK_REPLAY_CACHE_SIZE",
                    self._max,
                )

    def release(self, key: str) -> None:
        """Emission failed: the sender's retry of this id is welcome."""
        with self._lock:
            self._in_flight.discard(key)

    def _purge(self, now: float) -> None:
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            del self._expiry[key]
