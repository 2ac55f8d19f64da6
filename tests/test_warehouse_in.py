"""sync_from_warehouse against the real sandbox, a real Prefect API and real databases.

One scenario per test, each a few flow runs: DuckDB source + SQLite ledger (the defaults), and
PostgreSQL as both source and ledger (AUTOTALK_TEST_POSTGRES_DSN). Rows are ``clients`` keyed
by ``email``; the sandbox's schema requires ``name`` and an E.164 ``phone``.
"""

from __future__ import annotations

import collections
import csv
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.settings import PREFECT_API_URL

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows import sync_from_warehouse
from autotalk_prefect.flows.warehouse_in.engine import claims_ledger
from autotalk_prefect.flows.warehouse_in.mapping import MappingError
from autotalk_prefect.flows.warehouse_in.state import TABLE as STATE
from autotalk_prefect.flows.warehouse_in.state import WarehouseState
from autotalk_prefect.flows.warehouse_in.summary import WarehouseSyncSummary
from autotalk_prefect.ledger.store import TABLE as CLAIMS
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle

duckdb = pytest.importorskip("duckdb")

REPO = Path(__file__).resolve().parents[1]
PG_DSN = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")
N = 200


def _row(i: int, suffix: str = "") -> dict[str, Any]:
    return {
        "email": f"w{i}@warehouse.test",
        "name": f"Customer {i}{suffix}",
        "phone": f"+3460{i:07d}",
        "status": "active" if i % 2 else "lead",
    }


class Warehouse:
    """A customers table in DuckDB or PostgreSQL, and the ledger that goes with it."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.table = f"customers_{uuid.uuid4().hex[:8]}"
        if backend == "duckdb":
            self.path = tmp / "warehouse.duckdb"
            self.url = f"duckdb:///{self.path}"
            self.ledger = str(tmp / "ledger")
        else:
            assert PG_DSN
            self.url = PG_DSN
            self.ledger = PG_DSN
        self.execute(f"CREATE TABLE {self.table} (email TEXT, name TEXT, phone TEXT, status TEXT)")

    def execute(self, sql: str, rows: list[dict[str, Any]] | None = None) -> list[Any]:
        if self.backend == "duckdb":
            with duckdb.connect(str(self.path)) as conn:
                if rows:
                    conn.executemany(sql, [list(r.values()) for r in rows])
                    return []
                cursor = conn.execute(sql)
                return cursor.fetchall() if cursor.description else []
        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg2://"))
        try:
            with engine.begin() as conn:
                if rows:
                    conn.exec_driver_sql(sql.replace("?", "%s"), [tuple(r.values()) for r in rows])
                    return []
                result = conn.execute(sa.text(sql))
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def load(self, rows: list[dict[str, Any]]) -> None:
        self.execute(f"INSERT INTO {self.table} VALUES (?, ?, ?, ?)", rows)

    def results(self) -> list[Any]:
        return self.execute(
            "SELECT key, outcome, error, item_id, flow_run_id FROM autotalk_sync_results "
            "WHERE dynadata_type = 'clients' AND key LIKE '%@warehouse.test' ORDER BY key"
        )

    def drop(self) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.table}")
        if self.backend == "postgresql":
            self.execute("DROP TABLE IF EXISTS autotalk_sync_results")


BACKENDS = [
    "duckdb",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not PG_DSN, reason="AUTOTALK_TEST_POSTGRES_DSN is not set"),
    ),
]


@pytest.fixture
def sandbox(autotalk_sandbox: SandboxHandle) -> SandboxHandle:
    return autotalk_sandbox


@pytest.fixture
def creds(sandbox: SandboxHandle) -> AutoTalkCredentials:
    return sandbox.credentials()


@pytest.fixture
def warehouse_for(tmp_path: Path) -> Iterator[Any]:
    made: list[Warehouse] = []

    def make(backend: str) -> Warehouse:
        made.append(Warehouse(backend, tmp_path))
        _forget(made[-1])
        return made[-1]

    yield make
    for w in made:
        w.drop()
        _forget(w)


def _forget(w: Warehouse) -> None:
    """A shared PostgreSQL ledger: no state or claims of ``clients`` left by an earlier test."""
    if w.backend != "postgresql":
        return
    WarehouseState("clients", w.ledger).forget()
    ledger = claims_ledger("clients", w.ledger)
    with ledger.engine.begin() as conn:
        conn.execute(sa.delete(CLAIMS).where(CLAIMS.c.campaign == ledger.campaign_id))


def _clients(sandbox: SandboxHandle) -> dict[str, list[dict[str, Any]]]:
    """The sandbox's clients by email (only the test's)."""
    state = sandbox.runtime.state
    by_email: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    with state.lock:
        for item in state.items["clients"].values():
            if str(item.get("email", "")).endswith("@warehouse.test"):
                by_email[item["email"]].append(item)
    return by_email


def _requests(sandbox: SandboxHandle) -> int:
    return int(sandbox.stats()["requests"])


def _state_runs(w: Warehouse) -> dict[str, tuple[str, float]]:
    """The state table's (run id, time) per key of the test's rows."""
    state = WarehouseState("clients", w.ledger)
    c = STATE.c
    query = sa.select(c.key, c.run_id, c.updated_at).where(
        c.dynadata_type == "clients", c.key.like("%@warehouse.test")
    )
    with state.engine.connect() as conn:
        return {r.key: (r.run_id, r.updated_at) for r in conn.execute(query)}


def _sync(w: Warehouse, creds: AutoTalkCredentials, **kwargs: Any) -> WarehouseSyncSummary:
    params: dict[str, Any] = {
        "dynadata_type": "clients",
        "key": "email",
        "query": f"SELECT * FROM {w.table}",
        "url": w.url,
        "ledger_storage": w.ledger,
        "credentials": creds,
        "chunk_size": 50,
        **kwargs,
    }
    return sync_from_warehouse(**params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_run_creates_a_rerun_writes_nothing_and_one_percent_changed_updates_those(
    backend: str,
    sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    warehouse_for: Any,
    tmp_path: Path,
) -> None:
    w = warehouse_for(backend)
    w.load([_row(i) for i in range(N)])
    first = _sync(w, creds, results_csv=str(tmp_path / "first.csv"))
    assert (first.rows, first.created, first.failed, first.unknown) == (N, N, 0, 0)
    items = _clients(sandbox)
    assert len(items) == N and all(len(v) == 1 for v in items.values())
    assert items["w7@warehouse.test"][0]["name"] == "Customer 7"
    with open(tmp_path / "first.csv", newline="") as f:
        exported = list(csv.DictReader(f))
    assert len(exported) == N and {r["outcome"] for r in exported} == {"created"}
    assert exported[0]["item_id"] == items[exported[0]["key"]][0]["_id"]

    before = _requests(sandbox)
    recorded = _state_runs(w)
    again = _sync(w, creds)
    assert (again.unchanged, again.created, again.updated) == (N, 0, 0)
    assert _state_runs(w) == recorded  # unchanged rows: the state table is not rewritten
    assert again.writes == 0 and again.matched_existing is None
    assert _requests(sandbox) - before == 2  # the type list and its schema: no write, no list

    changed = [i for i in range(N) if i % 100 == 3]  # 1%
    for i in changed:
        w.execute(f"UPDATE {w.table} SET name = 'Renamed {i}' WHERE email = 'w{i}@warehouse.test'")
    before = _requests(sandbox)
    third = _sync(w, creds)
    assert (third.updated, third.unchanged, third.created) == (len(changed), N - len(changed), 0)
    assert third.api_calls.get("update") == len(changed) and "create" not in third.api_calls
    assert _requests(sandbox) - before == 2 + len(changed)
    items = _clients(sandbox)
    assert {
        i for i in range(N) if items[f"w{i}@warehouse.test"][0]["name"].startswith("Renamed")
    } == set(changed)

    results = w.results()
    assert len(results) == 3 * N  # every row of every run, written back to the source
    outcomes = collections.Counter(r[1] for r in results)
    assert outcomes == {"created": N, "unchanged": 2 * N - len(changed), "updated": len(changed)}


def test_a_type_already_holding_some_keys_gets_no_duplicates(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any
) -> None:
    w = warehouse_for("duckdb")
    w.load([_row(i) for i in range(60)])
    seeded_with_email = sum(
        1 for i in sandbox.runtime.state.items["clients"].values() if i.get("email")
    )
    with creds.get_client() as client:  # adopted late: 20 rows already in AutoTalk, 5 differ
        for i in range(20):
            row = _row(i, " (old)" if i < 5 else "")
            client.create_dynadata_item("clients", row)
    summary = _sync(w, creds)
    assert summary.matched_existing == seeded_with_email + 20 and summary.api_calls["list"] >= 1
    assert (summary.created, summary.updated, summary.unchanged) == (40, 5, 15)
    items = _clients(sandbox)
    assert len(items) == 60 and all(len(v) == 1 for v in items.values())
    assert items["w1@warehouse.test"][0]["name"] == "Customer 1"


def test_a_schema_breaking_row_fails_with_its_reason_and_the_rest_land(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any
) -> None:
    w = warehouse_for("duckdb")
    rows = [_row(i) for i in range(30)]
    rows[4]["phone"] = "555-1234"  # not E.164
    rows[9]["status"] = "vip"  # not in the enum
    w.load(rows)
    summary = _sync(w, creds)
    assert (summary.created, summary.failed) == (28, 2)
    problems = {p.key: p.error or "" for p in summary.problems}
    assert problems["w4@warehouse.test"].startswith("phone: ")
    assert problems["w9@warehouse.test"].startswith("status: ")
    assert len(_clients(sandbox)) == 28
    failed = [r for r in w.results() if r[1] == "failed"]
    assert [r[0] for r in failed] == ["w4@warehouse.test", "w9@warehouse.test"]
    assert failed[0][2].startswith("phone: ")


def test_a_mapping_to_an_unknown_field_stops_before_writing(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any
) -> None:
    w = warehouse_for("duckdb")
    w.load([_row(i) for i in range(5)])
    before = _requests(sandbox)
    mapping = {"email": "email", "name": "name", "phone": "phone", "status": "loyalty_tier"}
    with pytest.raises(
        MappingError, match=r"'loyalty_tier'\] that Dynadata type 'clients' does not have"
    ):
        _sync(w, creds, mapping=mapping)
    assert _requests(sandbox) - before == 2  # the type list and the schema, nothing else
    assert not _clients(sandbox)
    assert WarehouseState("clients", w.ledger).is_empty()


def test_dry_run_reports_counts_and_diffs_and_writes_nothing(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any, tmp_path: Path
) -> None:
    w = warehouse_for("duckdb")
    w.load([_row(i) for i in range(20)])
    _sync(w, creds)
    w.execute(f"UPDATE {w.table} SET name = 'New name' WHERE email = 'w2@warehouse.test'")
    w.load([_row(99)])
    ledger_file = Path(w.ledger) / "ledger.sqlite3"
    before_state = ledger_file.stat().st_mtime_ns
    results_before = len(w.results())
    dry = _sync(w, creds, dry_run=True)
    assert (dry.created, dry.updated, dry.unchanged, dry.writes) == (1, 1, 19, 0)
    update = next(d for d in dry.diffs if d.action == "update")
    assert update.key == "w2@warehouse.test" and update.changes == {
        "name": ["Customer 2", "New name"]
    }
    assert next(d for d in dry.diffs if d.action == "create").key == "w99@warehouse.test"
    assert "w99@warehouse.test" not in _clients(sandbox)
    assert _clients(sandbox)["w2@warehouse.test"][0]["name"] == "Customer 2"
    assert len(w.results()) == results_before
    assert ledger_file.stat().st_mtime_ns == before_state


def test_ambiguous_creates_are_looked_up_never_made_twice(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any
) -> None:
    w = warehouse_for("duckdb")
    w.load([_row(i) for i in range(40)])
    # a third of the creates are applied, then the connection drops with no answer
    sandbox.set_faults(
        FaultConfig(drop_after_processing=0.33, methods=("POST",), path_pattern="/create", seed=3)
    )
    summary = _sync(w, creds)
    sandbox.clear_faults()
    assert summary.created == 40 and summary.api_calls["lookup"] > 0
    items = _clients(sandbox)
    assert len(items) == 40 and all(len(v) == 1 for v in items.values())


def test_two_overlapping_runs_create_each_key_once(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any
) -> None:
    w = warehouse_for("duckdb")
    w.load([_row(i) for i in range(N)])
    sandbox.set_faults(FaultConfig(latency_ms=5, path_pattern="/create"))
    barrier = threading.Barrier(2)
    summaries: list[WarehouseSyncSummary] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            summaries.append(_sync(w, creds, chunk_size=20, max_concurrency=4, write_results=False))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    items = _clients(sandbox)
    assert len(items) == N and all(len(v) == 1 for v in items.values()), "a key was created twice"
    assert sum(s.api_calls.get("create", 0) for s in summaries) == N
    assert sum(s.created for s in summaries) == N
    assert all(s.failed == 0 for s in summaries)
    # a key the other run held is adopted or reported unknown, never created again; a re-run
    # settles every key
    final = _sync(w, creds)
    assert final.unchanged == N and final.writes == 0


def test_a_run_killed_mid_way_then_rerun_leaves_one_item_per_key(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any, tmp_path: Path
) -> None:
    w = warehouse_for("duckdb")
    w.load([_row(i) for i in range(N)])
    sandbox.set_faults(FaultConfig(latency_ms=20, path_pattern="/create"))
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "AUTOTALK_API_KEY": sandbox.api_key,
        "AUTOTALK_BASE_URL": sandbox.base_url,
    }
    code = (
        "from autotalk_prefect.flows import sync_from_warehouse\n"
        f"sync_from_warehouse(dynadata_type='clients', key='email', query='SELECT * FROM {w.table}', "
        f"url={w.url!r}, ledger_storage={w.ledger!r}, chunk_size=50, max_concurrency=8)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while len(_clients(sandbox)) < 60:  # in the middle of the second chunk
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    sandbox.clear_faults()
    created_before = len(_clients(sandbox))
    assert 60 <= created_before < N
    _mark_crashed(
        w.ledger
    )  # what Prefect's zombie detection does with a run whose process vanished
    summary = _sync(w, creds)
    items = _clients(sandbox)
    assert len(items) == N and all(len(v) == 1 for v in items.values()), "a key was created twice"
    assert summary.created + summary.unchanged + summary.updated == N
    assert summary.unknown == 0 and summary.failed == 0
    assert summary.api_calls.get("create", 0) == N - created_before


def _mark_crashed(ledger: str) -> None:
    """The killed run (the one on ``ledger``: other test processes share the Prefect API)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["autotalk-sync-from-warehouse"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
            ),
        )
        runs = [run for run in runs if run.parameters.get("ledger_storage") == ledger]
        assert runs, "the killed run is not in the Prefect API"
        for run in runs:
            client.set_flow_run_state(run.id, Crashed(message="process killed"), force=True)


def test_rows_from_a_generator_are_upserted_and_kept_out_of_the_stored_parameters(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    consumed: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(30):
            consumed.append(i)
            yield {
                "mail": f"w{i}@warehouse.test",
                "full_name": f"Gen {i}",
                "mobile": f"+3461{i:07d}",
            }

    summary = sync_from_warehouse(
        dynadata_type="clients",
        key="email",
        rows=rows(),
        mapping={"mail": "email", "full_name": "name", "mobile": "phone"},
        ledger_storage=str(tmp_path / "ledger"),
        credentials=creds,
        results_csv=str(tmp_path / "results.csv"),
        chunk_size=10,
    )
    assert (summary.created, summary.rows, len(consumed)) == (30, 30, 30)
    assert summary.results_table is None  # no source database: the CSV only
    assert (tmp_path / "results.csv").read_text().count("created") == 30
    assert _clients(sandbox)["w3@warehouse.test"][0]["name"] == "Gen 3"
    with get_client(sync_client=True) as client:  # this test's run (the API is shared)
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["autotalk-sync-from-warehouse"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=50,
        )
    results = str(tmp_path / "results.csv")
    stored = next(r for r in runs if r.parameters.get("results_csv") == results).parameters
    assert stored["rows"] == "<generator>"


def test_a_missing_global_rate_limit_stops_before_writing(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse_for: Any
) -> None:
    from autotalk_prefect.ratelimit import GlobalRateLimitError

    w = warehouse_for("duckdb")
    w.load([_row(i) for i in range(3)])
    with pytest.raises(GlobalRateLimitError, match="does not exist"):
        _sync(w, creds, global_rate_limit_name="no-such-limit-warehouse")
    assert not _clients(sandbox)
