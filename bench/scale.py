"""Outreach in one process vs. fanned out over Dask processes, I/O-bound like the real API.

    .venv/bin/python bench/scale.py [--sends 10000] [--latency-ms 50] [--concurrency 16]

The sandbox runs in its own process and answers every API request after ``--latency-ms``. Each
configuration runs ``outreach_campaign`` in a fresh child process with its own Prefect API
(started before the clock):

* ``threads xC``: the default task runner, one chunk in flight, ``max_concurrency=C``;
* ``threads x2C``: the same with twice the concurrency (what one process does with more sockets);
* ``dask 2x C``: ``task_runner="dask"``, a LocalCluster of 2 processes, ``parallel_chunks=2``,
  ``max_concurrency=2C`` (C per process).

Reported: wall-clock messages/second of the whole flow run (Dask's cluster start included), the
sandbox's median per-second send count while sending (steady state), and ratios to ``threads xC``.
The sandbox's message log is checked to hold every contact exactly once per run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-bench-scale"


# ---- one configuration, in a child process ------------------------------------------------------


def _child(root: str, params: dict[str, Any]) -> None:
    import contextlib
    import io

    from autotalk_prefect.demo.prefect_api import ephemeral_prefect_api, prepare_environment

    home = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    prepare_environment(home)
    from pydantic import SecretStr

    from autotalk_prefect.credentials import AutoTalkCredentials

    with ephemeral_prefect_api(), contextlib.redirect_stderr(io.StringIO()):
        sys.path.insert(0, str(REPO))
        from autotalk_prefect.flows.outreach.flow import outreach_campaign

        started = time.perf_counter()
        summary = outreach_campaign(
            campaign_id=f"bench-scale-{os.getpid()}",
            message_template="Hi {{ name }}",
            ledger_storage=str(home / "ledger"),
            credentials=AutoTalkCredentials(api_key=SecretStr(KEY), base_url=f"{root}/v1"),
            **params,
        )
        seconds = time.perf_counter() - started
    print(json.dumps({"sent": summary.sent, "failed": summary.failed, "seconds": seconds}))


def _measure(root: str, params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    httpx.post(f"{root}/_sandbox/reset", timeout=60).raise_for_status()
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(params), "--root", root],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{params}: child failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  child {params}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    messages = httpx.get(f"{root}/_sandbox/messages", timeout=120).json()
    messages = messages["data"] if isinstance(messages, dict) else messages
    contacts = [m["contactId"] for m in messages]
    assert len(contacts) == len(set(contacts)) == figures["sent"], (len(contacts), figures)
    stats = httpx.get(f"{root}/_sandbox/stats", timeout=60).json()
    (per_key,) = stats["keys"].values()
    counts = list(per_key["per_second"].values())[1:-1]  # drop the partial first/last second
    figures["steady"] = statistics.median(counts) if counts else float("nan")
    return figures


CONFIGS = {
    "threads xC": lambda c: {"max_concurrency": c},
    "threads x2C": lambda c: {"max_concurrency": 2 * c},
    "dask 2x C": lambda c: {"max_concurrency": 2 * c, "parallel_chunks": 2, "task_runner": "dask"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--concurrency", type=int, default=16, help="C: sends in flight per process"
    )
    parser.add_argument("--rounds", type=int, default=1, help="Alternating rounds; best kept.")
    parser.add_argument("--child")
    parser.add_argument("--root")
    args = parser.parse_args()
    if args.child:
        _child(args.root, json.loads(args.child))
        return
    sandbox, root = start_sandbox(KEY, args.sends, "--latency-ms", str(args.latency_ms))
    best: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(args.rounds):
            for name, make in CONFIGS.items():
                figures = _measure(root, make(args.concurrency))
                if name not in best or figures["seconds"] < best[name]["seconds"]:
                    best[name] = figures
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    base = best["threads xC"]["sent"] / best["threads xC"]["seconds"]
    print(
        f"{args.sends} sends, {args.latency_ms:g} ms latency, C={args.concurrency}\n"
        f"{'config':<12} {'seconds':>8} {'msg/s':>7} {'ratio':>6} {'steady msg/s':>13}"
    )
    for name, figures in best.items():
        rate = figures["sent"] / figures["seconds"]
        print(
            f"{name:<12} {figures['seconds']:>8.1f} {rate:>7.0f} {rate / base:>6.2f} "
            f"{figures['steady']:>13.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
