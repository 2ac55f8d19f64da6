"""retries.py: what is retried, how long it waits, and what is raised at the end.

Each test drives the policy through a real httpx client over a scripted MockTransport (faults a
server cannot produce on demand) and a recording sleep, so nothing here depends on timing.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from tenacity import RetryError

from autotalk_prefect.api.errors import (
    AutoTalkConnectionError,
    InvalidRequestError,
    NoResponseError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    error_from_response,
)
from autotalk_prefect.api.retries import Failure, RetryPolicy, classify, is_retryable
from autotalk_prefect.api.settings import AutoTalkSettings

KEY = "sk-retry-secret-4242"
Step = httpx.Response | Exception


class Script:
    """A transport that plays one step per request (a response or a raised exception)."""

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        return step


def ok() -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def status(code: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(code, json={"error": f"e{code}", "message": "m"}, headers=headers)


def policy(waits: list[float], **kw: Any) -> RetryPolicy:
    kw.setdefault("jitter", lambda ceiling: ceiling)
    return RetryPolicy(sleep=waits.append, **kw)


def run(
    script: Script, pol: RetryPolicy, *, method: str = "GET", idempotent: bool = True
) -> dict[str, Any]:
    """One call the way the client makes it: send, map an error status, let the policy decide."""
    with httpx.Client(
        transport=httpx.MockTransport(script), base_url="https://api.example.test/v1"
    ) as http:

        def attempt() -> dict[str, Any]:
            response = http.request(method, "/thing", headers={"x-api-key": KEY})
            if response.status_code >= 400:
                raise error_from_response(response, method, "/thing")
            return response.json()

        return pol.call(attempt, method=method, path="/thing", idempotent=idempotent)


REQ = httpx.Request("GET", "https://x.test/")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused", request=REQ), Failure.NOT_PROCESSED),
        (httpx.ConnectTimeout("slow", request=REQ), Failure.NOT_PROCESSED),
        (httpx.PoolTimeout("full", request=REQ), Failure.NOT_PROCESSED),
        (httpx.ReadTimeout("slow", request=REQ), Failure.AMBIGUOUS),
        (httpx.ReadError("reset", request=REQ), Failure.AMBIGUOUS),
        (httpx.RemoteProtocolError("closed", request=REQ), Failure.AMBIGUOUS),
        (ValueError("a bug"), Failure.FINAL),
    ],
)
def test_transport_errors_are_classified(exc: Exception, expected: Failure) -> None:
    assert classify(exc) is expected


@pytest.mark.parametrize(
    ("code", "retry_after", "expected"),
    [
        (429, None, Failure.NOT_PROCESSED),
        (429, "2", Failure.NOT_PROCESSED),
        (503, "1", Failure.NOT_PROCESSED),
        (503, None, Failure.AMBIGUOUS),
        (500, None, Failure.AMBIGUOUS),
        (502, None, Failure.AMBIGUOUS),
        (504, None, Failure.AMBIGUOUS),
        (501, None, Failure.FINAL),
        (400, None, Failure.FINAL),
        (401, None, Failure.FINAL),
        (404, None, Failure.FINAL),
        (409, None, Failure.FINAL),
        (422, None, Failure.FINAL),
    ],
)
def test_statuses_are_classified(code: int, retry_after: str | None, expected: Failure) -> None:
    error = error_from_response(status(code, retry_after), "GET", "/x")
    assert classify(error) is expected
    assert is_retryable(error, idempotent=True) is (expected is not Failure.FINAL)
    assert is_retryable(error, idempotent=False) is (expected is Failure.NOT_PROCESSED)


def test_429_waits_retry_after_capped_and_succeeds() -> None:
    waits: list[float] = []
    script = Script([status(429, "2"), status(429, "120"), ok()])
    assert run(script, policy(waits, retry_after_cap=5.0), method="POST", idempotent=False) == {
        "ok": True
    }
    assert waits == [2.0, 5.0]
    assert script.calls == 3


def test_503_with_retry_after_is_retried_even_for_a_post() -> None:
    waits: list[float] = []
    script = Script([status(503, "1"), ok()])
    assert run(script, policy(waits), method="POST", idempotent=False) == {"ok": True}
    assert waits == [1.0]


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx_is_retried_for_idempotent_calls(code: int) -> None:
    waits: list[float] = []
    script = Script([status(code), status(code), ok()])
    assert run(script, policy(waits, backoff_base=0.5)) == {"ok": True}
    assert waits == [0.5, 1.0]  # exponential (jitter pinned to the ceiling)


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx_on_a_post_is_outcome_unknown_and_never_resent(code: int) -> None:
    waits: list[float] = []
    script = Script([status(code), ok()])
    with pytest.raises(OutcomeUnknownError) as info:
        run(script, policy(waits), method="POST", idempotent=False)
    assert script.calls == 1
    assert waits == []
    assert info.value.status_code == code
    assert (info.value.method, info.value.path) == ("POST", "/thing")
    assert "not re-sent" in str(info.value)
    assert pickle.loads(pickle.dumps(info.value)).status_code == code


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_ambiguous_transport_failure_on_a_post_is_outcome_unknown(exc: Exception) -> None:
    waits: list[float] = []
    script = Script([exc, ok()])
    with pytest.raises(OutcomeUnknownError) as info:
        run(script, policy(waits), method="POST", idempotent=False)
    assert script.calls == 1
    assert info.value.status_code is None
    assert isinstance(info.value.__cause__, type(exc))


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("dropped")]
)
def test_ambiguous_transport_failure_on_a_get_is_retried(exc: Exception) -> None:
    waits: list[float] = []
    script = Script([exc, exc, ok()])
    assert run(script, policy(waits)) == {"ok": True}
    assert script.calls == 3


def test_connect_errors_are_retried_even_for_a_post() -> None:
    waits: list[float] = []
    script = Script([httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), ok()])
    assert run(script, policy(waits), method="POST", idempotent=False) == {"ok": True}
    assert len(waits) == 2


def test_exhausted_retries_raise_the_last_error_not_retry_error() -> None:
    waits: list[float] = []
    script = Script([status(429, "1")])
    with pytest.raises(RateLimitError) as info:
        run(script, policy(waits, attempts=4))
    assert not isinstance(info.value, RetryError)
    assert info.value.retry_after == 1.0
    assert script.calls == 4
    assert waits == [1.0, 1.0, 1.0]


def test_exhausted_connect_errors_become_connection_error() -> None:
    waits: list[float] = []
    script = Script([httpx.ConnectError("[Errno 111] Connection refused")])
    with pytest.raises(AutoTalkConnectionError, match="Connection refused"):
        run(script, policy(waits, attempts=3), method="POST", idempotent=False)
    assert script.calls == 3


def test_exhausted_read_timeouts_on_a_get_become_no_response() -> None:
    waits: list[float] = []
    script = Script([httpx.ReadTimeout("timed out")])
    with pytest.raises(NoResponseError):
        run(script, policy(waits, attempts=2))
    assert script.calls == 2


def test_exhausted_5xx_on_a_get_raise_server_error() -> None:
    waits: list[float] = []
    script = Script([status(503)])
    with pytest.raises(ServerError):
        run(script, policy(waits, attempts=3))
    assert script.calls == 3


def test_total_seconds_bound_stops_before_a_wait_that_would_pass_it() -> None:
    waits: list[float] = []
    script = Script([status(429, "4")])
    with pytest.raises(RateLimitError):
        run(script, policy(waits, attempts=50, max_seconds=10.0))
    assert waits == [4.0, 4.0]  # a third wait would make 12 s > 10 s
    assert script.calls == 3


def test_client_errors_are_not_retried() -> None:
    waits: list[float] = []
    script = Script([status(422), ok()])
    with pytest.raises(InvalidRequestError):
        run(script, policy(waits))
    assert script.calls == 1
    assert waits == []


def test_backoff_is_exponential_and_capped() -> None:
    pol = RetryPolicy(backoff_base=0.5, backoff_max=3.0, jitter=lambda c: c)
    assert [pol.wait_for(None, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_stays_between_zero_and_the_ceiling() -> None:
    pol = RetryPolicy(backoff_base=1.0, backoff_max=8.0)
    draws = [pol.wait_for(None, 3) for _ in range(300)]
    assert all(0.0 <= d <= 4.0 for d in draws)
    assert len(set(draws)) > 1  # actually random


def test_each_wait_is_logged_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    caplog.set_level(logging.DEBUG)
    script = Script([status(429, "2"), httpx.ConnectError("refused"), ok()])
    run(script, policy(waits))
    records = [r for r in caplog.records if r.name == "autotalk_prefect.api.retries"]
    assert len(records) == 2
    first = records[0]
    assert first.levelno == logging.INFO  # routine: the chunk sums retries in one WARNING
    assert (first.autotalk_method, first.autotalk_path) == ("GET", "/thing")  # type: ignore[attr-defined]
    assert first.autotalk_attempt == 1  # type: ignore[attr-defined]
    assert first.autotalk_wait == 2.0  # type: ignore[attr-defined]
    assert "429" in first.autotalk_reason  # type: ignore[attr-defined]
    assert "GET /thing" in first.getMessage() and "2.00s" in first.getMessage()
    assert "ConnectError" in records[1].getMessage()
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in str(record.__dict__)


def test_from_settings_reads_the_bounds() -> None:
    settings = AutoTalkSettings(retry_attempts=7, retry_max_seconds=12.5, retry_after_cap=3.0)
    pol = RetryPolicy.from_settings(settings)
    assert (pol.attempts, pol.max_seconds, pol.retry_after_cap) == (7, 12.5, 3.0)
    assert RetryPolicy.from_settings(settings, attempts=2).attempts == 2


def test_policy_is_frozen_and_validated() -> None:
    pol = RetryPolicy()
    with pytest.raises(AttributeError):
        pol.attempts = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="max_seconds"):
        RetryPolicy(max_seconds=-1)


def test_a_bug_in_the_attempt_is_not_wrapped_or_retried() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        RetryPolicy(sleep=lambda s: None).call(attempt, method="GET", path="/x", idempotent=True)
    assert calls == [1]


# ---- async: the same policy object under AsyncRetrying ----------------------------------------


async def arun(
    steps: list[Step], pol: RetryPolicy, *, method: str = "GET", idempotent: bool = True
) -> tuple[Any, Script]:
    script = Script(steps)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(script), base_url="https://api.example.test/v1"
    ) as http:

        async def attempt() -> Any:
            response = await http.request(method, "/thing")
            if response.status_code >= 400:
                raise error_from_response(response, method, "/thing")
            return response.json()

        return await pol.acall(attempt, method=method, path="/thing", idempotent=idempotent), script


async def test_async_retries_429_then_succeeds_with_a_sync_sleep() -> None:
    waits: list[float] = []
    result, script = await arun([status(429, "1"), ok()], policy(waits))
    assert result == {"ok": True}
    assert waits == [1.0]
    assert script.calls == 2


async def test_async_accepts_an_async_sleep() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    pol = RetryPolicy(sleep=sleep, jitter=lambda c: c)
    result, _ = await arun([httpx.ReadTimeout("slow"), ok()], pol)
    assert result == {"ok": True}
    assert waits == [0.5]


async def test_async_post_dropped_is_outcome_unknown() -> None:
    waits: list[float] = []
    with pytest.raises(OutcomeUnknownError):
        await arun(
            [httpx.RemoteProtocolError("dropped"), ok()],
            policy(waits),
            method="POST",
            idempotent=False,
        )
    assert waits == []


async def test_async_exhaustion_raises_the_last_error() -> None:
    waits: list[float] = []
    with pytest.raises(RateLimitError):
        await arun([status(429, "1")], policy(waits, attempts=3))
    assert waits == [1.0, 1.0]


def test_jitter_leaves_the_global_random_generator_alone() -> None:
    """A user who seeds ``random`` for a reproducible flow gets the same sequence with our
    retries in between: the jitter has its own generator."""
    import random

    policy = RetryPolicy()
    random.seed(1234)
    expected = [random.random() for _ in range(3)]
    random.seed(1234)
    waits = [policy.wait_for(None, attempt) for attempt in (1, 2, 3)]
    assert [random.random() for _ in range(3)] == expected
    assert all(0.0 <= w <= policy.backoff_max for w in waits)
