"""sync_from_warehouse vs a raw asyncio + httpx loop of creates: same rows, same sandbox.

    .venv/bin/python bench/warehouse_in.py [--rows 100000] [--concurrency 16] [--rss-rows 1000000]

The sandbox runs in its own process; each side runs in a fresh child process (so its peak RSS
is its own). Rows are ``clients`` (email key, name, phone, status) in a DuckDB file.

1. first load: the raw loop (reads the DuckDB table in batches, POSTs a create per row with
   ``--concurrency`` in flight) and, on a reset sandbox, the flow (Prefect's ephemeral API,
   chunk tasks, claims and state in a SQLite ledger, results written back to DuckDB). Rows per
   second of both and the ratio flow / raw.
2. re-run with 1% of the rows changed: its time as a share of the first load, and the API
   requests it made (the sandbox's own count).
3. peak RSS of the flow at ``--rows`` (the first load and the re-run) and, with ``--rss-rows``,
   of a re-run over that many rows whose state is recorded beforehand (every row read, mapped,
   hashed and compared, results written back; the 1% updated), so memory is shown flat
   without creating a million items first.
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
KEY = "sk-bench-warehouse"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_table(path: Path, rows: int) -> None:
    import duckdb

    with duckdb.connect(str(path)) as conn:
        conn.execute("DROP TABLE IF EXISTS customers")
        conn.execute(
            "CREATE TABLE customers AS SELECT 'c' || range || '@bench.test' AS email, "
            "'Customer ' || range AS name, '+3460' || lpad(range::VARCHAR, 7, '0') AS phone, "
            "CASE WHEN range % 2 = 0 THEN 'lead' ELSE 'active' END AS status "
            f"FROM range({rows})"
        )


def change_one_percent(path: Path) -> int:
    import duckdb

    with duckdb.connect(str(path)) as conn:
        conn.execute("UPDATE customers SET name = name || ' (moved)' WHERE hash(email) % 100 = 7")
        row = conn.execute("SELECT count(*) FROM customers WHERE name LIKE '%(moved)'").fetchone()
        return int(row[0]) if row else 0


# ---- the sides, each in a child process -----------------------------------------------------


async def _raw(root: str, db: str, concurrency: int) -> int:
    import duckdb

    limits = httpx.Limits(max_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    created = 0
    async with httpx.AsyncClient(
        base_url=f"{root}/v1", headers={"x-api-key": KEY}, limits=limits, timeout=120
    ) as http:

        async def create(row: dict[str, str]) -> None:
            nonlocal created
            async with semaphore:
                for attempt in range(3):  # a pooled connection the server closed: once more
                    try:
                        response = await http.post("/dynadata/type/clients/create", json=row)
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                response.raise_for_status()
                created += 1

        with duckdb.connect(db, read_only=True) as conn:
            cursor = conn.execute("SELECT * FROM customers")
            columns = [d[0] for d in cursor.description or []]
            while batch := cursor.fetchmany(2000):
                await asyncio.gather(*(create(dict(zip(columns, r, strict=True))) for r in batch))
    return created


def _flow(root: str, db: str, ledger: str, concurrency: int) -> dict[str, object]:
    from pydantic import SecretStr

    from autotalk_prefect.credentials import AutoTalkCredentials
    from autotalk_prefect.demo.prefect_api import ephemeral_prefect_api, prepare_environment

    home = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
    prepare_environment(home)
    with ephemeral_prefect_api():
        from autotalk_prefect.flows import sync_from_warehouse

        creds = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=f"{root}/v1")
        started = time.perf_counter()
        summary = sync_from_warehouse(
            dynadata_type="clients",
            key="email",
            query="SELECT * FROM customers",
            url=f"duckdb:///{db}",
            ledger_storage=ledger,
            credentials=creds,
            max_concurrency=concurrency,
        )
        elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "rss_mb": _peak_rss_mb(),
        "counts": summary.counts(),
        "calls": summary.api_calls,
    }


def _child(args: argparse.Namespace) -> None:
    if args.child == "raw":
        started = time.perf_counter()
        created = asyncio.run(_raw(args.root, args.db, args.concurrency))
        print(json.dumps({"created": created, "seconds": time.perf_counter() - started,
                          "rss_mb": _peak_rss_mb()}))  # fmt: skip
        return
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        figures = _flow(args.root, args.db, args.ledger, args.concurrency)
    print(json.dumps(figures))


def _run_child(side: str, root: str, db: Path, ledger: str, concurrency: int) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", side, "--root", root, "--db", str(db),
               "--ledger", ledger, "--concurrency", str(concurrency)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _requests(root: str) -> int:
    return int(httpx.get(f"{root}/_sandbox/stats", timeout=60).json()["requests"])


def _reset(root: str) -> None:
    httpx.post(f"{root}/_sandbox/reset", timeout=300).raise_for_status()


def _seed_state(db: Path, ledger: str) -> None:
    """Record every row of the table as already sent (the state a first load would leave)."""
    import duckdb

    sys.path.insert(0, str(REPO))
    from autotalk_prefect.flows.warehouse_in.mapping import RowMapper, TypeSchema, document_hash
    from autotalk_prefect.flows.warehouse_in.state import StateRow, WarehouseState
    from autotalk_prefect.sandbox.schemas import CLIENTS_SCHEMA

    mapper = RowMapper(TypeSchema("clients", CLIENTS_SCHEMA), "email")
    state = WarehouseState("clients", ledger)
    with duckdb.connect(str(db), read_only=True) as conn:
        cursor = conn.execute("SELECT * FROM customers")
        columns = [d[0] for d in cursor.description or []]
        while batch := cursor.fetchmany(10_000):
            docs = [mapper.document(dict(zip(columns, r, strict=True))) for r in batch]
            state.record(
                [StateRow(d["email"], "0" * 24, document_hash(d)) for d in docs], "bench-seed"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rss-rows", type=int, default=0, help="Also a re-run over N rows.")
    parser.add_argument("--child", choices=["raw", "flow"])
    parser.add_argument("--root")
    parser.add_argument("--db")
    parser.add_argument("--ledger")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-warehouse-"))
    db = work / "warehouse.duckdb"
    make_table(db, args.rows)
    sandbox, root = start_sandbox(KEY, 25)
    try:
        raw = _run_child("raw", root, db, "", args.concurrency)
        _reset(root)
        ledger = str(work / "ledger")
        first = _run_child("flow", root, db, ledger, args.concurrency)
        changed = change_one_percent(db)
        before = _requests(root)
        rerun = _run_child("flow", root, db, ledger, args.concurrency)
        rerun_requests = _requests(root) - before
        big = None
        if args.rss_rows:
            big_db, big_ledger = work / "big.duckdb", str(work / "big-ledger")
            make_table(big_db, args.rss_rows)
            _seed_state(big_db, big_ledger)
            change_one_percent(big_db)
            _reset(root)
            big = _run_child("flow", root, big_db, big_ledger, args.concurrency)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    raw_rate = float(raw["created"]) / float(raw["seconds"])  # type: ignore[arg-type]
    flow_rate = args.rows / float(first["seconds"])  # type: ignore[arg-type]
    print(f"first load of {args.rows:,} rows, concurrency {args.concurrency}:")
    print(f"  raw httpx loop: {raw_rate:,.0f} creates/s ({float(raw['seconds']):.1f} s)")  # type: ignore[arg-type]
    print(f"  sync_from_warehouse: {flow_rate:,.0f} rows/s ({float(first['seconds']):.1f} s), "  # type: ignore[arg-type]
          f"ratio {flow_rate / raw_rate:.2f}; {first['counts']}; peak RSS {first['rss_mb']:.0f} MB")  # fmt: skip
    share = float(rerun["seconds"]) / float(first["seconds"])  # type: ignore[arg-type]
    print(f"re-run with {changed:,} rows changed ({changed / args.rows:.1%}): "
          f"{float(rerun['seconds']):.1f} s = {share:.1%} of the first load; "  # type: ignore[arg-type]
          f"{rerun_requests} API requests ({rerun['calls']}); {rerun['counts']}; "
          f"peak RSS {rerun['rss_mb']:.0f} MB")  # fmt: skip
    if big is not None:
        print(f"re-run over {args.rss_rows:,} rows (state recorded, 1% changed): "
              f"{float(big['seconds']):.1f} s, {big['counts']}; peak RSS {big['rss_mb']:.0f} MB")  # type: ignore[arg-type]  # fmt: skip
    os.environ.get("CI")  # nothing else: figures go to bench/README.md by hand


if __name__ == "__main__":
    main()
