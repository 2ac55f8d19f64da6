"""What the client costs on top of bare httpx, against the sandbox on loopback.

Runs N ``GET /self`` calls three ways (bare ``httpx.Client``, ``AutoTalkClient``,
``AsyncAutoTalkClient`` with bounded concurrency) and one full listing of M items, and prints
the per-call times. The difference between the first two is the client's own overhead
(auth hook, retry policy, error mapping, model parsing). Usage:

    .venv/bin/python bench/client_overhead.py [--calls 500] [--items 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import httpx

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.sandbox import run_sandbox


def _timed(fn: Callable[[], object], calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1e3
    p95 = ordered[int(len(ordered) * 0.95) - 1] * 1e3
    print(f"{name:<34} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms   n={len(samples)}")


async def _async_throughput(base_url: str, key: str, calls: int, concurrency: int) -> float:
    async with AsyncAutoTalkClient(key, base_url, max_connections=concurrency) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                await client.get_self()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with run_sandbox() as sb:
        with httpx.Client(base_url=sb.base_url, headers={"x-api-key": sb.api_key}) as raw:
            raw.get("/self")  # warm the connection
            _report(
                "bare httpx GET /self (json only)",
                _timed(lambda: raw.get("/self").json(), args.calls),
            )
        with AutoTalkClient(sb.api_key, sb.base_url) as client:
            client.get_self()
            _report("AutoTalkClient.get_self", _timed(client.get_self, args.calls))

            sb.seed_items(
                "tickets", max(0, args.items - len(list(client.list_dynadata_items("tickets"))))
            )
            start = time.perf_counter()
            count = sum(1 for _ in client.list_dynadata_items("tickets"))
            elapsed = time.perf_counter() - start
            print(
                f"{'list_dynadata_items (pages of 100)':<34} {count} items in {elapsed:.3f} s "
                f"({count / elapsed:,.0f} items/s)"
            )
        rate = asyncio.run(_async_throughput(sb.base_url, sb.api_key, args.calls, args.concurrency))
        print(
            f"{'AsyncAutoTalkClient.get_self':<34} {rate:,.0f} calls/s at concurrency {args.concurrency}"
        )


if __name__ == "__main__":
    main()
