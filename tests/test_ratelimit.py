"""Rate limits: the client-side token bucket and Prefect global concurrency limits."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

from autotalk_prefect.ratelimit import (
    GlobalRateLimit,
    GlobalRateLimitError,
    TokenBucket,
    check_global_rate_limit,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_token_bucket_paces_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(25):
        await bucket.acquire()
    # 5 free (burst), then 20 more at 10/s -> 2 s of (virtual) waiting
    assert clock.now == pytest.approx(2.0)
    assert len(clock.sleeps) == 20


async def test_token_bucket_refills_while_idle() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, burst=2, clock=clock, sleep=clock.sleep)
    await bucket.acquire()
    await bucket.acquire()
    clock.now += 10  # idle: refills to the burst, not beyond
    for _ in range(2):
        await bucket.acquire()
    assert clock.sleeps == []
    await bucket.acquire()
    assert clock.sleeps == [pytest.approx(0.5)]


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (5, 0.5)])
def test_token_bucket_rejects_bad_settings(rate: float, burst: float | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst)


async def _create_limit(*, limit: int = 100, decay: float = 0.01, active: bool = True) -> str:
    name = f"test-rl-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(
                name=name, limit=limit, slot_decay_per_second=decay, active=active
            )
        )
    return name


async def test_missing_global_limit_fails_clearly() -> None:
    with pytest.raises(GlobalRateLimitError, match=r"does not exist.*prefect gcl create"):
        await check_global_rate_limit("no-such-limit-anywhere")


async def test_inactive_or_non_decaying_limits_are_refused() -> None:
    inactive = await _create_limit(active=False)
    with pytest.raises(GlobalRateLimitError, match="inactive"):
        await check_global_rate_limit(inactive)
    no_decay = await _create_limit(decay=0.0)
    with pytest.raises(GlobalRateLimitError, match="no slot decay"):
        await check_global_rate_limit(no_decay)


async def test_global_rate_limit_takes_slots_in_batches() -> None:
    name = await _create_limit(limit=100, decay=0.01)
    assert await check_global_rate_limit(name) == {"limit": 100, "slot_decay_per_second": 0.01}
    limiter = GlobalRateLimit(name, batch=5)
    for _ in range(12):
        await limiter.acquire()
    assert limiter.acquisitions == 3  # 5 + 5 + 5 slots for 12 sends
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(name)
    assert limit.active_slots >= 14  # 15 taken, at most a fraction decayed


async def test_global_rate_limit_is_strict_when_the_limit_vanishes() -> None:
    limiter = GlobalRateLimit("deleted-or-never-created-limit")
    with pytest.raises(ConcurrencySlotAcquisitionError, match="must be created"):
        await limiter.acquire()
