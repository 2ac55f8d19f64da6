"""Request accounting: totals, statuses, per-second request counts per API key, and how many
requests were in flight at once over how many client connections (to check a client's bounds).

Keys are never stored or shown: each is reduced to a fingerprint (``key_fingerprint``), so stats
can be logged or printed safely.
"""

from __future__ import annotations

import hashlib
import threading
import time
from functools import lru_cache
from typing import Any

MAX_SECONDS_KEPT = 3600


@lru_cache(maxsize=256)
def key_fingerprint(api_key: str) -> str:
    """A short, non-reversible label for an API key (``key-`` + 12 hex of its SHA-256)."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


class Stats:
    """Counters of ``/v1`` traffic (thread-safe, O(1) per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.unauthorized = 0
            self.by_status: dict[int, int] = {}
            self.per_key: dict[str, int] = {}
            self.per_second: dict[str, dict[int, int]] = {}
            self.in_flight = 0
            self.max_in_flight = 0
            self.connections: set[tuple[str, int]] = set()

    def arrived(self, fingerprint: str | None) -> None:
        """One ``/v1`` request arrived (``None``: it had no valid key)."""
        second = int(time.time())
        with self._lock:
            self.requests += 1
            if fingerprint is None:
                self.unauthorized += 1
                return
            self.per_key[fingerprint] = self.per_key.get(fingerprint, 0) + 1
            seconds = self.per_second.setdefault(fingerprint, {})
            seconds[second] = seconds.get(second, 0) + 1
            if len(seconds) > MAX_SECONDS_KEPT:
                del seconds[min(seconds)]

    def started(self, client: tuple[str, int] | None) -> None:
        """A ``/v1`` request is being handled, on the connection from ``client`` (host, port)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if client is not None:
                self.connections.add((client[0], client[1]))

    def finished(self) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)  # a reset may have zeroed it meanwhile

    def answered(self, status: int) -> None:
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready counters (``per_second`` maps unix second -> requests, per key)."""
        with self._lock:
            keys = {
                fp: {
                    "requests": total,
                    "per_second": {str(s): n for s, n in sorted(self.per_second[fp].items())},
                    "max_per_second": max(self.per_second[fp].values(), default=0),
                }
                for fp, total in self.per_key.items()
            }
            return {
                "requests": self.requests,
                "unauthorized": self.unauthorized,
                "by_status": {str(s): n for s, n in sorted(self.by_status.items())},
                "keys": keys,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "connections": len(self.connections),
            }
