"""The async client's connection lanes: ``_lanes.Lanes`` on its own, then the client on the real
sandbox (its stats count the requests in flight and the client connections it saw)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from autotalk_prefect.api.client import AsyncAutoTalkClient
from autotalk_prefect.api.errors import ServerError
from autotalk_prefect.api.lanes import Lanes, LanesClosedError
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.sandbox import SandboxHandle

KEY = "sk-lanes-test-19c4"

# ---- Lanes ------------------------------------------------------------------------------------


def maker(*names: str) -> Callable[[], str]:
    """Makes the named lanes in order (and fails the test if asked for one more)."""
    left = iter(names)
    return lambda: next(left)


async def test_at_most_one_use_of_a_lane_at_a_time_and_every_lane_is_used() -> None:
    lanes = Lanes(maker("a", "b", "c"), 3)
    busy: set[str] = set()
    used: list[str] = []
    peak = 0

    async def use() -> None:
        nonlocal peak
        async with lanes.take() as lane:
            assert lane not in busy, f"lane {lane} handed out twice"
            busy.add(lane)
            used.append(lane)
            peak = max(peak, len(busy))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            busy.discard(lane)

    await asyncio.gather(*(use() for _ in range(60)))
    assert peak == 3 and set(used) == {"a", "b", "c"} and len(used) == 60
    assert lanes.in_use == 0 and lanes.made == ["a", "b", "c"]


async def test_lanes_are_made_only_when_needed() -> None:
    lanes = Lanes(maker("a", "b", "c"), 3)
    for _ in range(5):  # one caller at a time never needs a second lane
        async with lanes.take() as lane:
            assert lane == "a"
    assert lanes.made == ["a"]
    first = await lanes.acquire()
    second = await lanes.acquire()
    assert (first, second, lanes.made) == ("a", "b", ["a", "b"])


async def test_slots_allow_that_many_uses_of_one_lane() -> None:
    lanes = Lanes(maker("only"), 1, slots=4)
    held = [await lanes.acquire() for _ in range(4)]
    assert held == ["only"] * 4 and lanes.in_use == 4
    fifth = asyncio.ensure_future(lanes.acquire())
    await asyncio.sleep(0)
    assert not fifth.done()
    lanes.release("only")
    assert await fifth == "only"


async def test_waiters_are_served_first_come_first_served() -> None:
    lanes = Lanes(maker("x"), 1)
    first = await lanes.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        lane = await lanes.acquire()
        order.append(n)
        lanes.release(lane)

    waiters = [asyncio.ensure_future(wait(n)) for n in range(5)]
    await asyncio.sleep(0)
    lanes.release(first)
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2, 3, 4]


async def test_a_cancelled_waiter_loses_no_lane() -> None:
    lanes = Lanes(maker("x"), 1)
    held = await lanes.acquire()
    # cancelled while still waiting: it leaves the queue
    gone = asyncio.ensure_future(lanes.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    # cancelled after the lane was handed to it, before it ran: it passes the lane on
    handed = asyncio.ensure_future(lanes.acquire())
    behind = asyncio.ensure_future(lanes.acquire())
    await asyncio.sleep(0)
    lanes.release(held)  # goes to `handed`...
    handed.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert await asyncio.wait_for(behind, 5) == "x"
    lanes.release("x")
    assert lanes.in_use == 0
    assert await asyncio.wait_for(lanes.acquire(), 5) == "x"


async def test_a_waiter_cancelled_just_before_a_lane_comes_back_ends_cancelled() -> None:
    """Cancelling a task cancels the future it awaits at once; a release in the same loop step
    skips that future (and drops it from the queue) before the task's own handler runs."""
    lanes = Lanes(maker("x"), 1)
    held = await lanes.acquire()
    gone = asyncio.ensure_future(lanes.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    lanes.release(held)  # no live waiter: the lane goes back to the free list
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert lanes.in_use == 0
    assert await asyncio.wait_for(lanes.acquire(), 5) == "x"


async def test_closed_lanes_refuse_takers_and_hand_back_what_was_made() -> None:
    lanes = Lanes(maker("a", "b"), 2)
    async with lanes.take():
        pass
    assert lanes.close() == ["a"] and lanes.closed
    with pytest.raises(LanesClosedError, match="closed"):
        await lanes.acquire()


def test_lanes_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="size"):
        Lanes(maker(), 0)
    with pytest.raises(ValueError, match="slots"):
        Lanes(maker("a"), 1, slots=0)


# ---- the async client on the sandbox ----------------------------------------------------------


@pytest.fixture
def sb(autotalk_sandbox: SandboxHandle) -> SandboxHandle:
    return autotalk_sandbox


@pytest.mark.parametrize("max_connections", [1, 4, 16])
async def test_max_connections_bounds_calls_in_flight_and_connections(
    sb: SandboxHandle, max_connections: int
) -> None:
    sb.set_faults(latency_ms=20)  # calls overlap on the server, so the bound is what holds them
    async with AsyncAutoTalkClient(
        sb.api_key, sb.base_url, max_connections=max_connections
    ) as client:
        contact = sb.contact_ids()[0]
        results = await asyncio.gather(
            *(client.send_message(contact, f"m{i}") for i in range(4 * max_connections))
        )
    assert len({m.id for m in results}) == 4 * max_connections
    stats = sb.stats()
    assert stats["max_in_flight"] == max_connections  # reached, never exceeded
    assert stats["connections"] <= max_connections  # kept alive and reused
    assert len(sb.sent_messages()) == 4 * max_connections


async def test_a_retry_wait_does_not_hold_a_connection(sb: SandboxHandle) -> None:
    """With one connection, a call waiting to retry must let another call through meanwhile."""
    sb.set_faults(error_rate=1.0, error_statuses=[503])
    other_done: list[str] = []

    async def sleep_while_another_call_runs(seconds: float) -> None:
        sb.clear_faults()
        company = await asyncio.wait_for(client.get_self(), 10)  # would hang if the lane were held
        other_done.append(company.name)

    policy = RetryPolicy(attempts=2, sleep=sleep_while_another_call_runs)
    async with AsyncAutoTalkClient(
        sb.api_key, sb.base_url, max_connections=1, retry_policy=policy
    ) as client:
        company = await client.get_self()
    assert other_done == [company.name]


async def test_the_last_error_still_arrives_and_close_closes_every_lane(sb: SandboxHandle) -> None:
    sb.set_faults(error_rate=1.0, error_statuses=[503])
    client = AsyncAutoTalkClient(
        sb.api_key,
        sb.base_url,
        max_connections=3,
        retry_policy=RetryPolicy(attempts=2, sleep=[].append),
    )
    with pytest.raises(ServerError):
        await client.get_self()
    assert not client.is_closed
    await client.aclose()
    assert client.is_closed
    await client.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_self()


async def test_a_callers_transport_gets_max_connections_calls_at_once() -> None:
    in_flight = peak = 0
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if peak >= 3:
            release.set()
        await asyncio.wait_for(release.wait(), 10)
        in_flight -= 1
        return httpx.Response(200, json={"_id": "co", "name": "Co"})

    transport = httpx.MockTransport(handler)
    async with AsyncAutoTalkClient(
        KEY, "http://127.0.0.1:9/v1", max_connections=3, transport=transport
    ) as client:
        await asyncio.gather(*(client.get_self() for _ in range(9)))
    assert peak == 3


async def test_one_call_at_a_time_uses_one_connection(sb: SandboxHandle) -> None:
    async with AsyncAutoTalkClient(sb.api_key, sb.base_url, max_connections=16) as client:
        for _ in range(5):
            await client.get_self()
        assert len(client._lanes.made) == 1  # the other 15 were never needed, never opened
    assert sb.stats()["connections"] == 1
