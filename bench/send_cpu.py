"""CPU per send: ``send_message`` through our client beside the same POST by bare httpx.

No server: both go through one in-memory ``httpx.MockTransport`` answering a canned 201, so the
figure is the client's own CPU (building and validating the call, the auth hook, the retry
policy, the outcome-aware decoding into a ``Message``), measured with ``time.process_time``,
free of the network and of a sandbox sharing the process. Usage:

    .venv/bin/python bench/send_cpu.py [--sends 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.retries import RetryPolicy

BASE_URL = "https://api.autotalk.test/v1"
KEY = "sk-bench-not-a-real-key"
ANSWER = json.dumps(
    {"_id": "65f0c0ffee0000000000beef", "contactId": "c1", "message": "hi", "status": "sent"}
).encode()


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, content=ANSWER, headers={"content-type": "application/json"})


def _cpu_per_call(fn: Callable[[int], object], sends: int) -> float:
    for i in range(min(200, sends)):  # warm: pools, caches, lazy imports
        fn(i)
    start = time.process_time()
    for i in range(sends):
        fn(i)
    return (time.process_time() - start) / sends


async def _acpu_per_call(fn: Callable[[int], Awaitable[object]], sends: int) -> float:
    for i in range(min(200, sends)):
        await fn(i)
    start = time.process_time()
    for i in range(sends):
        await fn(i)
    return (time.process_time() - start) / sends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=5000)
    sends = parser.parse_args().sends
    transport = httpx.MockTransport(_answer)
    rows: list[tuple[str, float]] = []

    with httpx.Client(base_url=BASE_URL, transport=transport) as bare:

        def bare_send(i: int) -> object:
            response = bare.post(
                f"/contacts/c{i}/send_message", json={"message": "hi"}, headers={"x-api-key": KEY}
            )
            response.raise_for_status()
            return response.json()

        rows.append(("bare httpx.Client.post + json()", _cpu_per_call(bare_send, sends)))

    with AutoTalkClient(KEY, base_url=BASE_URL, transport=transport) as client:
        rows.append(
            (
                "AutoTalkClient.send_message",
                _cpu_per_call(lambda i: client.send_message(f"c{i}", "hi"), sends),
            )
        )
    with AutoTalkClient(
        KEY, base_url=BASE_URL, transport=transport, retry_policy=RetryPolicy.never()
    ) as client:
        rows.append(
            (
                "  (no retry policy)",
                _cpu_per_call(lambda i: client.send_message(f"c{i}", "hi"), sends),
            )
        )

    async def run_async() -> None:
        async with httpx.AsyncClient(base_url=BASE_URL, transport=transport) as abare:

            async def abare_send(i: int) -> object:
                response = await abare.post(
                    f"/contacts/c{i}/send_message",
                    json={"message": "hi"},
                    headers={"x-api-key": KEY},
                )
                response.raise_for_status()
                return response.json()

            rows.append(
                ("bare httpx.AsyncClient.post + json()", await _acpu_per_call(abare_send, sends))
            )
        async with AsyncAutoTalkClient(KEY, base_url=BASE_URL, transport=transport) as aclient:
            rows.append(
                (
                    "AsyncAutoTalkClient.send_message",
                    await _acpu_per_call(lambda i: aclient.send_message(f"c{i}", "hi"), sends),
                )
            )

    asyncio.run(run_async())
    for name, seconds in rows:
        print(f"{name:<40} {seconds * 1e6:8.1f} us CPU per send   (n={sends})")
    sync_bare, sync_ours = rows[0][1], rows[1][1]
    async_bare, async_ours = rows[3][1], rows[4][1]
    print(
        f"our client's own CPU per send: sync {(sync_ours - sync_bare) * 1e6:.1f} us "
        f"({sync_ours / sync_bare:.2f}x bare), async {(async_ours - async_bare) * 1e6:.1f} us "
        f"({async_ours / async_bare:.2f}x bare)"
    )


if __name__ == "__main__":
    main()
