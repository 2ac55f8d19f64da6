"""Raw throughput of the AutoTalk sandbox, next to a bare uvicorn "hello" app in the same run.

Each server runs in its own process on 127.0.0.1 (the same uvicorn HTTP implementation for both),
and an httpx AsyncClient drives it at concurrency 1 and 16. Printed: requests/second for
GET list (20 items), POST send_message, and GET hello, plus the sandbox/hello ratio, so a slow or
busy machine shows up in both numbers. ``--in-process`` also measures ``run_sandbox()`` (server
thread in the client's process, as tests and the demo use it).

    .venv/bin/python bench/sandbox_throughput.py [--requests 2000] [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

API_KEY = "sk-bench"
HELLO_SERVER = r"""
import socket, sys, uvicorn
from autotalk_prefect.serving import _http_implementation

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"17")]})
    await send({"type": "http.response.body", "body": b'{"hello":"world"}'})

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                              http=_http_implementation(), backlog=2048)).run(sockets=[sock])
"""
SANDBOX_SERVER = (
    "from autotalk_prefect.cli import app; import sys; "
    "sys.argv = ['autotalk-prefect', 'sandbox', '--port', '0', '--api-key', "
    f"'{API_KEY}', '--contacts', '200']; app()"
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to price a request on a busy machine."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server_process(code: str) -> Iterator[tuple[str, int]]:
    """Run ``code`` in a child Python; yield the URL it prints first and its pid."""
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        url = line.split(": ", 1)[-1]
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"server did not start: {line!r}")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Result:
    """One measurement: throughput, and the server's CPU per request when it is a child process."""

    rps: float
    cpu_us: float | None


async def _measure(
    make_request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    concurrency: int,
    total: int,
    pid: int | None,
) -> Result:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        limits=limits, headers={"x-api-key": API_KEY}, timeout=30
    ) as client:
        counter = itertools.count()

        async def worker(budget: int) -> None:
            for _ in range(budget):
                response = await make_request(client, next(counter))
                response.raise_for_status()

        per_worker = max(1, total // concurrency)
        await asyncio.gather(*(worker(min(50, per_worker)) for _ in range(concurrency)))  # warm-up
        cpu_before = cpu_seconds(pid) if pid else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        done = per_worker * concurrency
        cpu = (cpu_seconds(pid) - cpu_before) / done * 1e6 if pid else None
        return Result(done / elapsed, cpu)


def measure(
    base: str, hello: str, contacts: list[str], total: int, pids: dict[str, int | None]
) -> dict[tuple[str, int], Result]:
    """One ``Result`` per (scenario, concurrency); ``pids`` names the server process per scenario."""
    scenarios: dict[str, Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]] = {
        "GET list": lambda c, i: c.get(f"{base}/dynadata/type/clients/list", params={"limit": 20}),
        "send_message": lambda c, i: c.post(
            f"{base}/contacts/{contacts[i % len(contacts)]}/send_message", json={"message": f"m{i}"}
        ),
        "GET hello": lambda c, i: c.get(hello),
    }
    results = {}
    for concurrency in (1, 16):
        for name, request in scenarios.items():
            pid = pids["hello" if name == "GET hello" else "sandbox"]
            results[(name, concurrency)] = asyncio.run(_measure(request, concurrency, total, pid))
    return results


def report(title: str, results: dict[tuple[str, int], Result]) -> None:
    print(f"\n{title}")
    print(f"{'scenario':<14}{'conc':>5}{'req/s':>9}{'vs hello':>10}{'server CPU/req':>16}")
    for (name, concurrency), result in results.items():
        hello = results[("GET hello", concurrency)].rps
        cpu = f"{result.cpu_us:.0f} us" if result.cpu_us is not None else "-"
        print(f"{name:<14}{concurrency:>5}{result.rps:>9.0f}{result.rps / hello:>10.2f}{cpu:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--in-process", action="store_true", help="also measure run_sandbox()")
    args = parser.parse_args()
    from autotalk_prefect.serving import _http_implementation

    print(f"uvicorn http implementation: {_http_implementation()}; {args.requests} requests each")
    with (
        server_process(HELLO_SERVER) as (hello, hello_pid),
        server_process(SANDBOX_SERVER) as (base, sandbox_pid),
    ):
        contacts = httpx.get(base.replace("/v1", "/_sandbox/contacts")).json()["data"]
        pids: dict[str, int | None] = {"hello": hello_pid, "sandbox": sandbox_pid}
        report("sandbox in its own process", measure(base, hello, contacts, args.requests, pids))
        if args.in_process:
            from autotalk_prefect.sandbox import run_sandbox

            with run_sandbox(api_key=API_KEY, contacts=200) as sb:
                report(
                    "run_sandbox() thread in the client's process",
                    measure(
                        sb.base_url,
                        hello,
                        sb.contact_ids(),
                        args.requests,
                        {"hello": hello_pid, "sandbox": None},
                    ),
                )


if __name__ == "__main__":
    main()
