"""The one retry policy of the AutoTalk client (tenacity), and what each failure means.

The rules (DESIGN.md):

* Not processed, so always safe to retry: connect errors, connect and pool timeouts, 429, and
  503 carrying ``Retry-After`` (the server says "not now", it did not act).
* Ambiguous (the server may have acted): read timeouts, a dropped connection, 500/502/503/504.
  Retried only for idempotent calls. A non-idempotent call that fails this way raises
  :class:`~autotalk_prefect.api.errors.OutcomeUnknownError` and is never re-sent.
* Waits: ``Retry-After`` when the server gives one (capped), otherwise exponential backoff with
  full jitter. Bounded by attempts and by total seconds; every wait is logged (method, path,
  attempt, wait, reason; never a header, so never the key).
* When the bounds are hit, the last error itself is raised (not tenacity's ``RetryError``).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import enum
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying

from autotalk_prefect.api.errors import (
    AutoTalkConnectionError,
    AutoTalkError,
    NoResponseError,
    NoUsableAnswerError,
    OutcomeUnknownError,
)

logger = logging.getLogger("autotalk_prefect.api.retries")

T = TypeVar("T")

#: the policy's bounds when none are given (``ClientOptions`` uses them as its defaults too)
DEFAULT_RETRY_ATTEMPTS = 5
DEFAULT_RETRY_MAX_SECONDS = 60.0
DEFAULT_RETRY_AFTER_CAP = 30.0

AMBIGUOUS_STATUSES = frozenset({500, 502, 503, 504})
# our own generator for the jitter: a user's seeded ``random`` stays theirs
_jitter_rng = random.Random()

# Never reached the server: nothing was processed.
_NOT_SENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
)
# Sent (maybe partly), then no answer: the server may have acted.
_AMBIGUOUS_ERRORS: tuple[type[Exception], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.CloseError,
)


class RetryTally:
    """Retries absorbed while it is active, counted by reason (``429``, ``503``, ``ReadTimeout``).

    Each retry is logged at INFO (it usually succeeds); a caller that wants one WARNING for a
    batch of calls (an outreach chunk) opens :func:`count_retries` and reports the sum.
    """

    def __init__(self) -> None:
        self.by_reason: collections.Counter[str] = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def add(self, exc: BaseException | None) -> None:
        if isinstance(exc, AutoTalkError) and exc.status_code is not None:
            self.by_reason[str(exc.status_code)] += 1
        else:
            self.by_reason[type(exc).__name__ if exc is not None else "unknown"] += 1

    def describe(self) -> str:
        """``"28 retried: 19 x 429, 9 x 503"`` (``""`` when nothing was retried)."""
        if not self.total:
            return ""
        parts = ", ".join(f"{n} x {reason}" for reason, n in self.by_reason.most_common())
        return f"{self.total} retried: {parts}"


_tally: contextvars.ContextVar[RetryTally | None] = contextvars.ContextVar(
    "autotalk_retry_tally", default=None
)


@contextlib.contextmanager
def count_retries() -> Iterator[RetryTally]:
    """Count every retry made in this context (asyncio tasks started inside it included)."""
    tally = RetryTally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


class Failure(enum.Enum):
    """What a failed attempt tells us about the server's state."""

    NOT_PROCESSED = "not processed"  # always safe to retry
    AMBIGUOUS = "ambiguous"  # retry only if idempotent
    FINAL = "final"  # retrying cannot help (4xx, bad URL, ...)


def classify(exc: BaseException) -> Failure:
    """Sort one attempt's exception into the three classes the rules speak of."""
    if isinstance(exc, AutoTalkError):
        status = exc.status_code
        if status == 429:
            return Failure.NOT_PROCESSED
        if status == 503 and exc.retry_after is not None:
            return Failure.NOT_PROCESSED
        if status in AMBIGUOUS_STATUSES:
            return Failure.AMBIGUOUS
        return Failure.FINAL
    if isinstance(exc, _NOT_SENT_ERRORS):
        return Failure.NOT_PROCESSED
    if isinstance(exc, _AMBIGUOUS_ERRORS):
        return Failure.AMBIGUOUS
    return Failure.FINAL


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether the rules allow another attempt after ``exc``."""
    failure = classify(exc)
    return failure is Failure.NOT_PROCESSED or (failure is Failure.AMBIGUOUS and idempotent)


def describe(exc: BaseException) -> str:
    """A short, secret-free reason for logs: the status and code, or the transport error."""
    if isinstance(exc, AutoTalkError):
        text = f"{exc.status_code} {exc.code or type(exc).__name__}"
        if exc.retry_after is not None:
            text += f", Retry-After {exc.retry_after:g}s"
        return text
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail[:200]}" if detail else type(exc).__name__


def final_error(exc: BaseException, *, method: str, path: str, idempotent: bool) -> BaseException:
    """The exception a caller sees once no more attempts will be made.

    Status errors stay what errors.py made them, except that an ambiguous failure of a
    non-idempotent call becomes :class:`OutcomeUnknownError`. Transport errors become
    :class:`AutoTalkConnectionError` (never reached), :class:`NoResponseError` (idempotent, no
    answer) or :class:`OutcomeUnknownError`.
    """
    failure = classify(exc)
    if isinstance(exc, AutoTalkError):
        if failure is Failure.AMBIGUOUS and not idempotent:
            return OutcomeUnknownError(
                f"AutoTalk answered {exc.status_code} ({exc.message}); the call may have been "
                "applied, so it was not re-sent. Check before trying again.",
                status_code=exc.status_code,
                body=exc.body,
                method=method,
                path=path,
                request_id=exc.request_id,
                code=exc.code,
                retry_after=exc.retry_after,
            )
        return exc
    if not isinstance(exc, httpx.HTTPError):
        return exc  # a bug or a cancellation: let it through untouched
    reason = describe(exc)
    if failure is Failure.NOT_PROCESSED:
        return AutoTalkConnectionError(
            f"could not reach AutoTalk{_at(exc)} ({reason}); check the base URL "
            "(AUTOTALK_BASE_URL or the credentials block) and the network",
            method=method,
            path=path,
        )
    if failure is Failure.AMBIGUOUS and not idempotent:
        return OutcomeUnknownError(
            f"no answer from AutoTalk ({reason}); the call may have been applied, so it was "
            "not re-sent. Check before trying again.",
            method=method,
            path=path,
        )
    if failure is Failure.AMBIGUOUS:
        return NoResponseError(f"no answer from AutoTalk ({reason})", method=method, path=path)
    if isinstance(exc, httpx.TransportError):  # e.g. unsupported protocol: nothing was sent
        return AutoTalkConnectionError(f"request failed ({reason})", method=method, path=path)
    return NoUsableAnswerError(
        f"unreadable answer from AutoTalk ({reason})", method=method, path=path
    )


def _at(exc: BaseException) -> str:
    """`` at <scheme://host[:port]/path>`` (no query) of the failed request, when httpx knows it."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when no request is set
        return ""
    port = f":{url.port}" if url.port else ""
    return f" at {url.scheme}://{url.host}{port}{url.path}"


class RetryBounds(Protocol):
    """What a policy is read from: ``AutoTalkSettings``, a credentials block, any options."""

    @property
    def retry_attempts(self) -> int: ...
    @property
    def retry_max_seconds(self) -> float: ...
    @property
    def retry_after_cap(self) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often one call may retry; the same object serves sync and async.

    ``sleep`` replaces the real sleep (tests pass a no-op or a recorder); it may return an
    awaitable for the async client. ``jitter`` maps the backoff ceiling to the actual wait
    (default: full jitter, uniform between 0 and the ceiling).
    """

    attempts: int = DEFAULT_RETRY_ATTEMPTS
    max_seconds: float = DEFAULT_RETRY_MAX_SECONDS
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    sleep: Callable[[float], Any] | None = field(default=None, compare=False)
    jitter: Callable[[float], float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        for name in ("max_seconds", "retry_after_cap", "backoff_base", "backoff_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: RetryBounds, **overrides: Any) -> RetryPolicy:
        """The policy the settings (or a credentials block) describe (``retry_attempts``,
        ``retry_max_seconds``, ``retry_after_cap``); keywords override single fields.

        For the environment's policy: ``RetryPolicy.from_settings(AutoTalkSettings())``.
        """
        policy = cls(
            attempts=settings.retry_attempts,
            max_seconds=settings.retry_max_seconds,
            retry_after_cap=settings.retry_after_cap,
        )
        return dataclasses.replace(policy, **overrides) if overrides else policy

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retries (errors are still translated the same way)."""
        return cls(attempts=1)

    # ---- the pieces tenacity calls ----------------------------------------------------------

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        retry_after: float | None = exc.retry_after if isinstance(exc, AutoTalkError) else None
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt - 1, 62))
        if self.jitter is not None:
            return max(0.0, min(ceiling, float(self.jitter(ceiling))))
        return _jitter_rng.uniform(0.0, ceiling)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.wait_for(exc, state.attempt_number)

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        # Time spent so far: the wall clock, or the waits alone when sleep is faked in tests.
        spent = max(state.seconds_since_start or 0.0, state.idle_for)
        return spent + (state.upcoming_sleep or 0.0) > self.max_seconds

    def _log(self, method: str, path: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            reason = describe(exc) if exc is not None else "unknown"
            tally = _tally.get()
            if tally is not None:
                tally.add(exc)
            # INFO: a retry is routine and usually succeeds; the final error is what matters.
            logger.info(
                "AutoTalk %s %s failed (attempt %d of %d: %s); retrying in %.2fs",
                method,
                path,
                state.attempt_number,
                self.attempts,
                reason,
                state.upcoming_sleep,
                extra={
                    "autotalk_method": method,
                    "autotalk_path": path,
                    "autotalk_attempt": state.attempt_number,
                    "autotalk_wait": state.upcoming_sleep,
                    "autotalk_reason": reason,
                },
            )

        return before_sleep

    def _tenacity_kwargs(self, method: str, path: str, idempotent: bool) -> dict[str, Any]:
        def retry(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome is not None else None
            return exc is not None and is_retryable(exc, idempotent=idempotent)

        return {
            "retry": retry,
            "wait": self._wait,
            "stop": self._stop,
            "before_sleep": self._log(method, path),
            "reraise": True,
        }

    # ---- running a call -----------------------------------------------------------------------

    def call(self, attempt: Callable[[], T], *, method: str, path: str, idempotent: bool) -> T:
        """Run ``attempt`` (one HTTP exchange) under the rules; raise the translated error."""
        kwargs = self._tenacity_kwargs(method, path, idempotent)
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        try:
            for try_ in Retrying(**kwargs):
                with try_:
                    return attempt()
        except Exception as exc:
            final = final_error(exc, method=method, path=path, idempotent=idempotent)
            if final is exc:
                raise
            raise final from exc
        raise AssertionError("unreachable: tenacity ended without a result")  # pragma: no cover

    async def acall(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        method: str,
        path: str,
        idempotent: bool,
    ) -> T:
        """The async twin of :meth:`call` (same rules, ``asyncio`` sleep unless injected)."""
        kwargs = self._tenacity_kwargs(method, path, idempotent)
        if self.sleep is not None:
            kwargs["sleep"] = _as_async(self.sleep)
        try:
            async for try_ in AsyncRetrying(**kwargs):
                with try_:
                    return await attempt()
        except Exception as exc:
            final = final_error(exc, method=method, path=path, idempotent=idempotent)
            if final is exc:
                raise
            raise final from exc
        raise AssertionError("unreachable: tenacity ended without a result")  # pragma: no cover


def _as_async(sleep: Callable[[float], Any]) -> Callable[[float], Awaitable[None]]:
    async def async_sleep(seconds: float) -> None:
        result = sleep(seconds)
        if inspect.isawaitable(result):
            await result

    return async_sleep


__all__ = [
    "AMBIGUOUS_STATUSES",
    "Failure",
    "RetryPolicy",
    "RetryTally",
    "classify",
    "count_retries",
    "describe",
    "final_error",
    "is_retryable",
]
