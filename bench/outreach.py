"""Outreach flow vs a raw asyncio + httpx loop: same sends, same concurrency, same sandbox.

    .venv/bin/python bench/outreach.py [--sizes 1000 10000] [--concurrency 16]

The sandbox runs in its own process (so it does not share a GIL with either side); each side runs
in a fresh child process so its peak RSS is its own. The flow side includes everything a user
pays for: Prefect's ephemeral API, task runs per chunk, the ledger (fsync'd) and artifacts.
Prints messages/second for both, the ratio (flow / raw) and the flow's peak RSS.

    .venv/bin/python bench/outreach.py --plan-rows 1000000 [--ledger URL]

inserts that many claims straight into a claim ledger (a SQLite file by default, or the
PostgreSQL at ``--ledger``), then times planning one 1,000-contact chunk against it (the one
``WHERE contact_id IN (...)`` query the flow makes per chunk) and the memory it takes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-bench-outreach"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the two sides, each run in a child process -------------------------------------------------


async def _raw(root: str, concurrency: int) -> int:
    headers = {"x-api-key": KEY}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"{root}/v1", headers=headers, limits=limits) as http:
        ids: list[str] = []
        while True:
            page = (
                await http.get(
                    "/dynadata/type/clients/list", params={"limit": 100, "skip": len(ids)}
                )
            ).json()["data"]
            if not page:
                break
            ids += [item["_id"] for item in page]
        semaphore = asyncio.Semaphore(concurrency)

        async def send(contact_id: str) -> None:
            async with semaphore:
                response = await http.post(
                    f"/contacts/{contact_id}/send_message", json={"message": f"Hi {contact_id}"}
                )
                response.raise_for_status()

        await asyncio.gather(*(send(c) for c in ids))
        return len(ids)


def _with_consent(ledger_dir: Path) -> dict[str, object]:
    """Consent checks on, as a real campaign has them: an opt-out list of 1,000 entries (none of
    them in the audience, so every contact is still sent and both sides send the same) and a
    frequency cap (counted across campaigns for every contact)."""
    from autotalk_prefect.ledger.optouts import Identity, OptOutList

    OptOutList(str(ledger_dir)).add_many(
        [
            (Identity.of(f"stranger-{n}", f"+3460{n:07d}", f"s{n}@example.com"), "bench", "b")
            for n in range(1000)
        ]
    )
    return {"frequency_cap": {"messages": 5, "hours": 24}}


def _flow(root: str, concurrency: int, consent: bool = True) -> int:
    from pydantic import SecretStr

    from autotalk_prefect.credentials import AutoTalkCredentials
    from autotalk_prefect.demo.prefect_api import ephemeral_prefect_api, prepare_environment

    home = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
    prepare_environment(home)
    with ephemeral_prefect_api():
        sys.path.insert(0, str(REPO))
        from autotalk_prefect.flows.outreach.flow import outreach_campaign

        creds = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=f"{root}/v1")
        extra = _with_consent(home / "ledger") if consent else {}
        started = time.perf_counter()
        summary = outreach_campaign(
            campaign_id=f"bench-{os.getpid()}",
            message_template="Hi {{ name }}",
            ledger_storage=str(home / "ledger"),
            max_concurrency=concurrency,
            credentials=creds,
            **extra,  # type: ignore[arg-type]
        )
        elapsed = time.perf_counter() - started
        print(json.dumps({"seconds": elapsed, "rss_mb": _peak_rss_mb()}), file=sys.stderr)
        return int(summary.sent)


def _child(side: str, root: str, concurrency: int, consent: bool = True) -> None:
    if side == "raw":
        started = time.perf_counter()
        sent = asyncio.run(_raw(root, concurrency))
        elapsed = time.perf_counter() - started
        print(json.dumps({"sent": sent, "seconds": elapsed, "rss_mb": _peak_rss_mb()}))
    else:
        # the flow's own wall time excludes the API's start (the raw loop has no API to start)
        import contextlib
        import io

        capture = io.StringIO()
        with contextlib.redirect_stderr(capture):
            sent = _flow(root, concurrency, consent)
        figures = json.loads(capture.getvalue().strip().splitlines()[-1])
        print(json.dumps({"sent": sent, **figures}))


def _measure(side: str, root: str, concurrency: int, consent: bool = True) -> dict[str, float]:
    httpx.post(f"{root}/_sandbox/reset", timeout=300).raise_for_status()  # 100k contacts: ~5 s
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            side,
            "--root",
            root,
            "--concurrency",
            str(concurrency),
            "--consent" if consent else "--no-consent",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{side} side failed: {done.stderr.strip()[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    sent_log = httpx.get(f"{root}/_sandbox/messages", timeout=60).json()
    count = len(sent_log["data"] if isinstance(sent_log, dict) else sent_log)
    assert count == figures["sent"], f"{side}: sandbox saw {count}, side reports {figures['sent']}"
    return figures


def _plan_bench(rows: int, url: str | None, chunk: int = 1000) -> None:
    """Time one chunk's planning against a ledger holding ``rows`` claims."""
    import random
    import uuid

    import sqlalchemy as sa

    sys.path.insert(0, str(REPO))
    from autotalk_prefect.flows.outreach.engine import Plan
    from autotalk_prefect.ledger.store import TABLE, ClaimLedger

    home = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    campaign = f"plan-{os.getpid()}"
    ledger = ClaimLedger(campaign, url or str(home))
    started = time.perf_counter()
    now = time.time()
    with ledger.engine.begin() as conn:
        for start in range(0, rows, 10_000):
            conn.execute(
                sa.insert(TABLE),
                [
                    {
                        "campaign": campaign,
                        "key": f"contact-{i:08d}",
                        "state": "sent",
                        "attempt": uuid.uuid4().hex,
                        "attempts": 1,
                        "run_id": "earlier",
                        "message_id": f"m{i}",
                        "text": "Hi there",
                        "claimed_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(rows, start + 10_000))
                ],
            )
    inserted = time.perf_counter() - started
    if ledger.engine.dialect.name == "postgresql":  # as autovacuum would soon after a bulk load
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE autotalk_ledger")
    rng = random.Random(1)
    # half the chunk already in the ledger, half new contacts
    ids = [f"contact-{rng.randrange(rows):08d}" for _ in range(chunk // 2)]
    ids += [f"new-{i}" for i in range(chunk - len(ids))]
    rss_before = _peak_rss_mb()
    times = []
    for _ in range(5):
        plan = Plan(ledger, "bench-run", resend_unknown=False)
        t0 = time.perf_counter()
        wanted = plan.chunk([(i, {}) for i in ids])
        times.append(time.perf_counter() - t0)
    print(
        f"ledger of {rows:,} claims ({ledger.engine.dialect.name}): inserted in {inserted:.1f} s; "
        f"planning one {chunk}-contact chunk: best {min(times) * 1000:.1f} ms, worst "
        f"{max(times) * 1000:.1f} ms; {len(wanted)} to send, {plan.skipped_sent} already sent; "
        f"peak RSS {_peak_rss_mb():.0f} MB (+{_peak_rss_mb() - rss_before:.1f} MB while planning)"
    )
    if url:
        with ledger.engine.begin() as conn:
            conn.execute(sa.delete(TABLE).where(TABLE.c.campaign == campaign))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds; best kept.")
    parser.add_argument("--child", choices=["raw", "flow"])
    parser.add_argument("--root")
    parser.add_argument("--plan-rows", type=int, help="Only time planning against N claims.")
    parser.add_argument(
        "--consent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="The flow runs with opt-out and frequency-cap checks on (default) or off.",
    )
    parser.add_argument("--ledger", help="Ledger URL for --plan-rows (default: a SQLite file).")
    args = parser.parse_args()
    if args.plan_rows:
        _plan_bench(args.plan_rows, args.ledger)
        return
    if args.child:
        _child(args.child, args.root, args.concurrency, args.consent)
        return
    print(f"{'contacts':>8} {'raw msg/s':>10} {'flow msg/s':>11} {'ratio':>6} {'flow RSS MB':>12}")
    for size in args.sizes:
        sandbox, root = start_sandbox(KEY, size)
        try:  # alternate the two sides and keep each one's best: the machine is shared
            rounds = [
                (
                    _measure("raw", root, args.concurrency),
                    _measure("flow", root, args.concurrency, args.consent),
                )
                for _ in range(args.rounds)
            ]
            raw = min((r for r, _ in rounds), key=lambda f: f["seconds"])
            flow = min((f for _, f in rounds), key=lambda f: f["seconds"])
            flow["rss_mb"] = max(f["rss_mb"] for _, f in rounds)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=10)
        raw_rate = raw["sent"] / raw["seconds"]
        flow_rate = flow["sent"] / flow["seconds"]
        print(
            f"{size:>8} {raw_rate:>10.0f} {flow_rate:>11.0f} {flow_rate / raw_rate:>6.2f} "
            f"{flow['rss_mb']:>12.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
