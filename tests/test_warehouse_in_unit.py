"""sync_from_warehouse's pieces, cheap: values and hashes, mapping checks, row validation,
reading SQL sources in chunks, and the change-detection state table (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import sqlite3
import uuid
from pathlib import Path

import pytest

from autotalk_prefect.flows.warehouse_in import results
from autotalk_prefect.flows.warehouse_in.engine import (
    RowResult,
    read_chunk_results,
    write_chunk_results,
)
from autotalk_prefect.flows.warehouse_in.mapping import (
    MappingError,
    RowMapper,
    TypeSchema,
    document_hash,
    json_value,
)
from autotalk_prefect.flows.warehouse_in.results import ResultsFile
from autotalk_prefect.flows.warehouse_in.source import (
    check_query,
    check_url,
    chunks_of,
    iter_query,
    iter_rows,
)
from autotalk_prefect.flows.warehouse_in.state import StateRow, WarehouseState

PG_DSN = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "phone"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "phone": {"type": "string", "pattern": "^\\+[1-9][0-9]{6,14}$"},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "integer"},
    },
}


def _schema() -> TypeSchema:
    return TypeSchema("clients", SCHEMA)


# ---- values and hashes -----------------------------------------------------------------------


def test_warehouse_values_become_json() -> None:
    assert json_value(decimal.Decimal("3")) == 3
    assert json_value(decimal.Decimal("2.5")) == 2.5
    assert json_value(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)) == (
        "2026-01-02T03:04:05Z"
    )
    assert json_value(dt.date(2026, 1, 2)) == "2026-01-02"
    assert json_value(float("nan")) is None
    u = uuid.uuid4()
    assert json_value({"a": [u, (1, 2)]}) == {"a": [str(u), [1, 2]]}
    with pytest.raises(TypeError, match="binary"):
        json_value(b"\x00")


def test_the_hash_ignores_key_order_and_sees_every_value() -> None:
    a = {"name": "Ana", "phone": "+34600000001", "tags": ["x"]}
    b = {"tags": ["x"], "phone": "+34600000001", "name": "Ana"}
    assert document_hash(a) == document_hash(b)
    assert document_hash(a) != document_hash({**a, "name": "Ana "})
    assert document_hash(a) != document_hash({**a, "tags": ["x", "y"]})
    assert document_hash({"n": 1}) != document_hash({"n": "1"})


# ---- mapping ---------------------------------------------------------------------------------


def test_identity_mapping_documents_drop_nulls_and_decode_json_text() -> None:
    mapper = RowMapper(_schema(), "email")
    columns = ["name", "phone", "email", "tags", "score"]
    mapper.check(columns)
    row = {"name": "Ana", "phone": "+34600000001", "email": "a@x.io", "tags": '["vip"]'}
    doc = mapper.document({**row, "score": 3.0})
    assert doc == {**row, "tags": ["vip"], "score": 3}
    assert mapper.document({**row, "score": None}).get("score", "absent") == "absent"
    assert mapper.key_of(doc) == "a@x.io"
    assert mapper.key_of({"email": "  "}) is None
    assert RowMapper(_schema(), "score").key_of({"score": 7}) == "7"


def test_explicit_mapping_renames_columns() -> None:
    mapper = RowMapper(
        _schema(), "email", {"full_name": "name", "mobile": "phone", "mail": "email"}
    )
    mapper.check(["full_name", "mobile", "mail", "ignored"])
    doc = mapper.document(
        {"full_name": "Bo", "mobile": "+34600000002", "mail": "b@x.io", "ignored": 1}
    )
    assert doc == {"name": "Bo", "phone": "+34600000002", "email": "b@x.io"}


@pytest.mark.parametrize(
    ("mapping", "columns", "message"),
    [
        ({"n": "name", "p": "phone", "e": "email", "x": "nickname"}, ["n", "p", "e", "x"],
         r"field\(s\) \['nickname'\] that Dynadata type 'clients' does not have"),
        ({"n": "name", "e": "email"}, ["n", "e"], r"misses required field\(s\) \['phone'\]"),
        ({"n": "name", "p": "phone", "e": "email"}, ["n", "p"], r"column\(s\) \['e'\]"),
        ({"n": "name", "p": "phone"}, ["n", "p"], r"key field 'email' is not among"),
        ({"n": "name", "p": "phone", "e": "email", "i": "_id"}, ["n", "p", "e", "i"],
         r"set by AutoTalk"),
    ],
)  # fmt: skip
def test_a_mapping_that_cannot_fit_stops_with_one_line(
    mapping: dict[str, str], columns: list[str], message: str
) -> None:
    with pytest.raises(MappingError, match=message) as caught:
        RowMapper(_schema(), "email", mapping).check(columns)
    assert "\n" not in str(caught.value)


def test_mapping_arguments_are_checked() -> None:
    with pytest.raises(MappingError, match="key must name"):
        RowMapper(_schema(), "")
    with pytest.raises(MappingError, match="non-empty"):
        RowMapper(_schema(), "email", {})
    with pytest.raises(MappingError, match="several columns"):
        RowMapper(_schema(), "email", {"a": "name", "b": "name"})


def test_row_validation_names_the_field_and_the_reason() -> None:
    schema = _schema()
    assert schema.issues({"name": "Ana", "phone": "+34600000001"}) == []
    issues = schema.issues({"name": "", "phone": "12", "score": "x"})
    assert any(i.startswith("name: ") for i in issues)
    assert any(i.startswith("phone: ") and "does not match" in i for i in issues)
    assert any(i.startswith("score: ") and "integer" in i for i in issues)
    assert schema.issues({"name": "Ana"}) == ["phone: is required"]


# ---- sources ---------------------------------------------------------------------------------


def test_url_and_query_checks() -> None:
    with pytest.raises(ValueError, match="SQLAlchemy URL"):
        check_url("not a url")
    with pytest.raises(ValueError, match="SELECT"):
        check_query("  ")
    assert check_query("analytics.customers") == "SELECT * FROM analytics.customers"
    assert check_query("select 1;") == "select 1"


def test_sqlite_and_duckdb_sources_stream_in_chunks(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(25)])
    chunks = list(
        chunks_of(iter_query(f"sqlite:///{db}", "SELECT * FROM t ORDER BY id", batch=4), 10)
    )
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert chunks[2][-1] == {"id": 24, "name": "n24"}
    with pytest.raises(ValueError, match="the query failed"):
        list(iter_query(f"sqlite:///{db}", "SELECT * FROM missing"))

    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE t AS SELECT range AS id, 'n' || range AS name FROM range(7)")
    rows = list(iter_query(f"duckdb:///{path}", "t", batch=3))
    assert [r["id"] for r in rows] == list(range(7))
    with pytest.raises(ValueError, match="does not exist"):
        list(iter_query(f"duckdb:///{tmp_path / 'none.duckdb'}", "t"))


def test_iterable_sources_take_dicts_and_pages() -> None:
    assert list(iter_rows([{"a": 1}, [{"a": 2}, {"a": 3}]])) == [{"a": 1}, {"a": 2}, {"a": 3}]
    with pytest.raises(TypeError, match="row 2: expected a dict"):
        list(iter_rows([{"a": 1}, 5]))
    with pytest.raises(TypeError, match="iterable of dicts"):
        list(iter_rows({"a": 1}))


# ---- the state table -------------------------------------------------------------------------


def _state_urls(tmp_path: Path) -> list[str]:
    urls = [f"sqlite:///{tmp_path / 'ledger.sqlite3'}"]
    if PG_DSN:
        urls.append(PG_DSN)
    return urls


def test_state_records_and_reads_per_type(tmp_path: Path) -> None:
    for url in _state_urls(tmp_path):
        kind = f"t{uuid.uuid4().hex[:8]}"
        state, other = WarehouseState(kind, url), WarehouseState(f"{kind}x", url)
        assert state.is_empty()
        state.record([StateRow("a", "id-a", "h1"), StateRow("b", "id-b", "h2")], "run1")
        other.record([StateRow("a", "other", "h9")])
        state.record([StateRow("a", "id-a", "h3")], "run2")
        known = state.known(["a", "b", "c"])
        assert {k: (v.item_id, v.hash) for k, v in known.items()} == {
            "a": ("id-a", "h3"),
            "b": ("id-b", "h2"),
        }
        assert state.count() == 2 and not state.is_empty()
        assert other.known(["a"])["a"].item_id == "other"
        many = [StateRow(f"k{i}", f"i{i}", "h") for i in range(1200)]
        state.record(many)
        assert len(state.known(r.key for r in many)) == 1200
        assert state.forget() == 1202 and state.is_empty()
        other.forget()


def test_a_url_can_come_from_a_secret_block(tmp_path: Path) -> None:
    from prefect.blocks.system import Secret

    from autotalk_prefect.flows.warehouse_in.source import resolve_url

    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    Secret(value=url).save("warehouse-in-test-url", overwrite=True)
    assert resolve_url("secret/warehouse-in-test-url") == url
    with pytest.raises(ValueError, match="no Secret block named 'missing-one'"):
        resolve_url("secret/missing-one")


def test_a_chunks_results_file_round_trips_and_is_appended_then_removed(tmp_path: Path) -> None:
    rows = [
        RowResult(key="a@x.io", item_id="it-1", outcome="created"),
        RowResult(key="b,with comma", outcome="failed", error='phone: "bad"\nsecond line'),
        RowResult(key="c@x.io", outcome="unknown", error="timed out"),
    ]
    chunk = tmp_path / "chunk-0000001.csv"
    write_chunk_results(chunk, rows)
    assert list(read_chunk_results(chunk)) == rows
    results = ResultsFile(tmp_path / "results.csv", "clients", "run-1")
    results.add_chunk(chunk)
    results.close()
    assert not chunk.exists() and results.rows == 3
    lines = (tmp_path / "results.csv").read_text(encoding="utf-8")
    assert lines.startswith("key,item_id,outcome,error,dynadata_type,flow_run_id,synced_at")
    assert "a@x.io,it-1,created,,clients,run-1," in lines


def test_duckdb_write_back_goes_in_slices_and_keeps_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    duckdb = pytest.importorskip("duckdb")

    path = tmp_path / "results.csv"
    file = ResultsFile(path, "clients", "run-1")
    file.add(RowResult(key=f"k{i}", outcome="failed", error="two\nlines") for i in range(25))
    file.close()
    database = tmp_path / "w.duckdb"
    monkeypatch.setattr(results, "DUCKDB_SLICE_ROWS", 10)
    assert results.write_back(f"duckdb:///{database}", path) == 25
    with duckdb.connect(str(database)) as conn:
        rows = conn.execute("SELECT key, error FROM autotalk_sync_results ORDER BY key").fetchall()
    assert len(rows) == 25 and {e for _, e in rows} == {"two\nlines"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "w.duckdb"]


def test_duckdb_write_back_keeps_long_errors_within_its_memory_limit(tmp_path: Path) -> None:
    """A slice of rows that all failed with a long error is more text than DuckDB's memory
    limit for the write-back: it still lands (read_csv's buffer is sized to the limit)."""
    duckdb = pytest.importorskip("duckdb")

    path = tmp_path / "results.csv"
    file = ResultsFile(path, "clients", "run-1")
    error = "phone: " + "x" * 1993
    rows = results.DUCKDB_SLICE_ROWS + 5
    file.add(RowResult(key=f"k{i}", outcome="failed", error=error) for i in range(rows))
    file.close()
    database = tmp_path / "w.duckdb"
    assert results.write_back(f"duckdb:///{database}", path) == rows
    with duckdb.connect(str(database)) as conn:
        found = conn.execute("SELECT count(*), min(length(error)) FROM autotalk_sync_results")
        assert found.fetchone() == (rows, 2000)
