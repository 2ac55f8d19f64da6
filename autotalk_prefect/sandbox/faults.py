"""Fault injection: what can go wrong on a request, decided deterministically from a seed.

The N-th API request that a fault config applies to always gets the same fate for the same seed
(four draws per request, whatever knobs are on), so a failing scenario replays exactly.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SERVER_ERROR_STATUSES = (500, 502, 503, 504)

#: 200 answers that say the call failed (``refusal_rate``): the request is NOT applied. Every
#: shape the outcome rule reads as a refusal; ``error_with_id`` also carries an id (unknown).
REFUSAL_BODIES: dict[str, dict[str, Any]] = {
    "success_false": {"success": False, "error": "Recipient is not reachable on this channel"},
    "ok_false": {"ok": False, "message": "Message rejected by the channel"},
    "status_failed": {"status": "failed", "reason": "Template not approved"},
    "status_error": {"status": "error", "message": "Daily sending quota exceeded"},
    "status_rejected": {"status": "rejected", "detail": "Recipient opted out at the provider"},
    "error": {"error": {"code": "invalid_number", "message": "Phone number is invalid"}},
    "errors": {"errors": [{"message": "contactId: unknown contact"}, "channel disabled"]},
    "error_with_id": {"_id": "fault-0000000000000000", "error": "Queued with a warning"},
}


def _fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FaultConfig:
    """The faults to inject into ``/v1`` requests (never into ``/_sandbox`` admin calls).

    ``error_rate`` answers that fraction with a status drawn from ``error_statuses``;
    ``rate_429`` answers that fraction with 429 + ``Retry-After: retry_after_seconds``;
    ``rate_limit_rps`` is a per-key token bucket (burst = one second's worth), 429 beyond it;
    ``drop_after_processing`` applies the request, then closes the connection with no answer;
    ``refusal_rate`` answers that fraction ``200`` with ``REFUSAL_BODIES[refusal_body]`` (a
    refusal inside a 2xx) without applying the request.
    ``methods`` (e.g. ``("POST",)``) and ``path_pattern`` (regex searched in the request path,
    e.g. ``"send_message"``) limit which requests any of this applies to.
    """

    latency_ms: float = 0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = SERVER_ERROR_STATUSES
    retry_after_on_503: bool = False
    rate_429: float = 0.0
    retry_after_seconds: float = 1.0
    rate_limit_rps: float | None = None
    drop_after_processing: float = 0.0
    refusal_rate: float = 0.0
    refusal_body: str = "success_false"
    methods: tuple[str, ...] | None = None
    path_pattern: str | None = None
    seed: int = 0
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.latency_ms, (int, float)) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms!r}")
        for name in ("error_rate", "rate_429", "drop_after_processing", "refusal_rate"):
            _fraction(name, getattr(self, name))
        if self.error_rate + self.refusal_rate > 1.0:
            raise ValueError("error_rate + refusal_rate must not exceed 1 (they share one draw)")
        if self.refusal_body not in REFUSAL_BODIES:
            raise ValueError(
                f"refusal_body must be one of {sorted(REFUSAL_BODIES)}, got {self.refusal_body!r}"
            )
        statuses = tuple(int(s) for s in self.error_statuses)
        if not statuses or any(s not in SERVER_ERROR_STATUSES for s in statuses):
            raise ValueError(
                f"error_statuses must be among {SERVER_ERROR_STATUSES}, got {statuses!r}"
            )
        object.__setattr__(self, "error_statuses", statuses)
        if not isinstance(self.retry_after_seconds, (int, float)) or self.retry_after_seconds <= 0:
            raise ValueError(f"retry_after_seconds must be > 0, got {self.retry_after_seconds!r}")
        if self.rate_limit_rps is not None and (
            not isinstance(self.rate_limit_rps, (int, float)) or self.rate_limit_rps <= 0
        ):
            raise ValueError(f"rate_limit_rps must be > 0 or None, got {self.rate_limit_rps!r}")
        if self.methods is not None:
            if isinstance(self.methods, str):
                raise ValueError("methods must be a list of HTTP methods, not a string")
            object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))
        if self.path_pattern is not None:
            try:
                object.__setattr__(self, "_compiled", re.compile(self.path_pattern))
            except re.error as exc:
                raise ValueError(
                    f"path_pattern {self.path_pattern!r} is not a regex: {exc}"
                ) from None

    @property
    def active(self) -> bool:
        """Whether any knob is on."""
        return bool(
            self.latency_ms
            or self.error_rate
            or self.rate_429
            or self.rate_limit_rps
            or self.drop_after_processing
            or self.refusal_rate
        )

    def applies_to(self, method: str, path: str) -> bool:
        """Whether this config's faults apply to a request (``methods`` / ``path_pattern``)."""
        if self.methods is not None and method not in self.methods:
            return False
        return self._compiled is None or self._compiled.search(path) is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the admin API's ``GET /_sandbox/faults``)."""
        data = asdict(self)
        data.pop("_compiled", None)
        data["error_statuses"] = list(self.error_statuses)
        data["methods"] = list(self.methods) if self.methods is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON; unknown keys and bad values raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        for name in ("error_statuses", "methods"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class Decision:
    """The fate of one request."""

    latency_s: float = 0.0
    status: int | None = None  # answer this error instead of processing
    retry_after: str | None = None
    kind: str | None = None  # "error", "429", "rate_limit", "drop", "refusal"
    drop: bool = False
    body: dict[str, Any] | None = None  # answer 200 with this body, not applied (a refusal)


NO_FAULT = Decision()


def format_seconds(seconds: float) -> str:
    """``Retry-After`` value: whole seconds as ``"2"``, else up to 3 decimals (``"0.25"``)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


class FaultInjector:
    """Holds the current ``FaultConfig``, its seeded random stream and the per-key buckets."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.set(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def set(self, config: FaultConfig) -> None:
        """Replace the config and restart its random stream and rate-limit buckets."""
        with self._lock:
            self._config = config
            self._rng = random.Random(f"faults:{config.seed}")
            self._buckets: dict[str, tuple[float, float]] = {}

    def reset_counts(self) -> None:
        with self._lock:
            self.counts = {}
            self._rng = random.Random(f"faults:{self._config.seed}")
            self._buckets = {}

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def decide(self, method: str, path: str, key: str) -> Decision:
        """What happens to this request (called once per authenticated ``/v1`` request)."""
        config = self._config
        if not config.active or not config.applies_to(method, path):
            return NO_FAULT
        with self._lock:
            r_429, r_error, r_status, r_drop = (self._rng.random() for _ in range(4))
            latency = config.latency_ms / 1000.0
            if latency:
                self._count("latency")
            if config.rate_limit_rps is not None:
                wait = self._take_token(key, config.rate_limit_rps)
                if wait > 0:
                    self._count("rate_limit")
                    return Decision(latency, 429, format_seconds(max(wait, 0.001)), "rate_limit")
            if r_429 < config.rate_429:
                self._count("429")
                return Decision(latency, 429, format_seconds(config.retry_after_seconds), "429")
            if r_error < config.error_rate:
                statuses = config.error_statuses
                status = statuses[min(int(r_status * len(statuses)), len(statuses) - 1)]
                self._count(f"error_{status}")
                retry = (
                    format_seconds(config.retry_after_seconds)
                    if status == 503 and config.retry_after_on_503
                    else None
                )
                return Decision(latency, status, retry, "error")
            if r_error < config.error_rate + config.refusal_rate:  # the same draw: seeds keep
                self._count(f"refusal_{config.refusal_body}")
                return Decision(latency, kind="refusal", body=REFUSAL_BODIES[config.refusal_body])
            if r_drop < config.drop_after_processing:
                self._count("drop")
                return Decision(latency, kind="drop", drop=True)
            return Decision(latency) if latency else NO_FAULT

    def _take_token(self, key: str, rps: float) -> float:
        """Token bucket per key; 0 if a token was taken, else seconds until one is available."""
        now = time.monotonic()
        capacity = max(1.0, rps)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rps)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rps
