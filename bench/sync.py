"""The warehouse sync flow vs. a raw paginated httpx loop with plain DuckDB inserts.

The parent process serves the sandbox and seeds ``orders``; every measured run is its own
subprocess, so its peak RSS (``ru_maxrss``) is its alone. For each size (10k, then 100k items):

- ``flow``: ``sync_to_warehouse(types=["orders"])`` (dlt, merge by ``_id``) into a DuckDB file,
  on a temporary Prefect API started before the clock starts;
- ``raw``: ``httpx.Client`` pages through ``GET /dynadata/type/orders/list`` (limit 100) and
  ``executemany``-inserts each page into a table of the same DuckDB file (one transaction per
  page; no merge, no schema handling: the floor a hand-written loop can reach).

Prints rows/s both ways, the ratio, and peak RSS per size. Usage:

    .venv/bin/python bench/sync.py [--sizes 10000 100000] [--kinds raw flow]

``--sizes 10000 100000 300000 --kinds flow`` shows where the flow's memory levels off.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TYPE = "orders"
RAW_COLUMNS = ("_id", "clientId", "number", "items", "currency", "status", "notes")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---- children ----------------------------------------------------------------------------------


def child_flow(base_url: str, api_key: str, workdir: Path) -> dict[str, Any]:
    from prefect.testing.utilities import prefect_test_harness

    from autotalk_prefect.credentials import AutoTalkCredentials
    from autotalk_prefect.flows.sync.flow import sync_to_warehouse

    creds = AutoTalkCredentials(api_key=api_key, base_url=base_url)
    with prefect_test_harness(server_startup_timeout=120):  # server is a separate process
        start = time.perf_counter()
        summary = sync_to_warehouse(
            credentials=creds,
            types=[TYPE],
            destination_credentials=str(workdir / "warehouse.duckdb"),
            pipelines_dir=str(workdir / "pipelines"),
        )
        seconds = time.perf_counter() - start
    return {"rows": summary.rows(TYPE), "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def child_raw(base_url: str, api_key: str, workdir: Path) -> dict[str, Any]:
    import duckdb
    import httpx

    con = duckdb.connect(str(workdir / "warehouse.duckdb"))
    con.execute(
        "create table if not exists raw_orders (_id varchar, client_id varchar, number varchar, "
        "items json, currency varchar, status varchar, notes varchar, created_at varchar, "
        "updated_at varchar)"
    )
    insert = "insert into raw_orders values (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    rows = 0
    start = time.perf_counter()
    with httpx.Client(base_url=base_url, headers={"x-api-key": api_key}, timeout=30) as http:
        skip = 0
        while True:
            response = http.get(f"/dynadata/type/{TYPE}/list", params={"limit": 100, "skip": skip})
            response.raise_for_status()
            page = response.json()
            items = page["data"]
            if not items:
                break
            values = [
                (
                    *(json.dumps(i[c]) if c == "items" else i.get(c) for c in RAW_COLUMNS),
                    i.get("createdAt"),
                    i.get("updatedAt"),
                )
                for i in items
            ]
            con.begin()
            con.executemany(insert, values)
            con.commit()
            rows += len(items)
            skip += len(items)
            if skip >= page["total"]:
                break
    seconds = time.perf_counter() - start
    con.close()
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


# ---- parent ------------------------------------------------------------------------------------


def _run_child(kind: str, base_url: str, api_key: str, workdir: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
        "BENCH_API_KEY": api_key,  # env, not argv: keys stay out of `ps`
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--base-url", base_url, "--workdir", workdir],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--kinds", choices=["raw", "flow"], nargs="+", default=["raw", "flow"])
    parser.add_argument("--child", choices=["flow", "raw"])
    parser.add_argument("--base-url")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.child:
        run = child_flow if args.child == "flow" else child_raw
        print(json.dumps(run(args.base_url, os.environ["BENCH_API_KEY"], args.workdir)))
        return

    from autotalk_prefect.sandbox import run_sandbox

    results: dict[int, dict[str, dict[str, Any]]] = {}
    with run_sandbox(contacts=25) as sb, tempfile.TemporaryDirectory() as tmp:
        for size in sorted(args.sizes):
            have = len(sb.runtime.state.item_order[TYPE])
            if size > have:
                sb.seed_items(TYPE, size - have)
            total = len(sb.runtime.state.item_order[TYPE])
            workdir = Path(tmp) / str(size)
            workdir.mkdir()
            results[size] = {}
            for kind in args.kinds:
                result = _run_child(kind, sb.base_url, sb.api_key, workdir)
                if result["rows"] != total:
                    raise SystemExit(f"{kind} at {size}: {result['rows']} rows, expected {total}")
                result["rows_per_s"] = result["rows"] / result["seconds"]
                results[size][kind] = result
                print(
                    f"{kind:<5} {total:>7} rows  {result['seconds']:7.1f} s  "
                    f"{result['rows_per_s']:8.0f} rows/s  peak RSS {result['peak_rss_mb']:6.0f} MB",
                    flush=True,
                )
            if len(results[size]) == 2:
                ratio = results[size]["raw"]["rows_per_s"] / results[size]["flow"]["rows_per_s"]
                print(
                    f"size {total}: raw/flow time ratio {ratio:.2f} (flow within 2x: {ratio <= 2})"
                )
    for small, large in itertools.pairwise(sorted(results)):
        for kind in args.kinds:
            grow = results[large][kind]["peak_rss_mb"] - results[small][kind]["peak_rss_mb"]
            target = (
                f" (target < 50 MB: {grow < 50})"
                if (kind, small, large) == ("flow", 10_000, 100_000)
                else ""
            )
            print(f"{kind}: peak RSS {small} -> {large} items: {grow:+.0f} MB{target}")


if __name__ == "__main__":
    main()
