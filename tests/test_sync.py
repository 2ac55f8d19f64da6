"""sync_to_warehouse against the real sandbox (loopback), DuckDB and the Prefect harness."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.sync.flow import SyncSummary, _artifact_key, sync_to_warehouse
from autotalk_prefect.sandbox import SandboxHandle
from autotalk_prefect.sandbox import state as sandbox_state

TYPE = "orders"
SEEDED = 5000


@pytest.fixture
def creds(autotalk_sandbox: SandboxHandle) -> AutoTalkCredentials:
    return AutoTalkCredentials(api_key=autotalk_sandbox.api_key, base_url=autotalk_sandbox.base_url)


@pytest.fixture
def warehouse(tmp_path: Path) -> dict[str, Any]:
    """Where one test's runs write: a DuckDB file and a dlt working directory."""
    return {
        "destination_credentials": str(tmp_path / "wh" / "warehouse.duckdb"),
        "pipelines_dir": str(tmp_path / "pipelines"),
    }


def run(creds: AutoTalkCredentials, warehouse: dict[str, Any], **params: Any) -> SyncSummary:
    return sync_to_warehouse(credentials=creds, **warehouse, **params)


def query(warehouse: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(warehouse["destination_credentials"], read_only=True) as con:
        return con.sql(sql).fetchall()


def columns(warehouse: dict[str, Any], table: str) -> set[str]:
    rows = query(
        warehouse,
        "select column_name from information_schema.columns "
        f"where table_schema = 'autotalk' and table_name = '{table}'",
    )
    return {name for (name,) in rows}


def api_state(creds: AutoTalkCredentials, type_name: str) -> dict[str, tuple[str, str | None]]:
    """Every item of a type as the API has it now: _id -> (status, notes)."""
    with creds.get_client() as client:
        return {
            item.id: (item.data["status"], item.data.get("notes"))
            for item in client.list_dynadata_items(type_name, page_size=100)
        }


def requests_made(sandbox: SandboxHandle) -> int:
    return int(sandbox.stats()["requests"])


@pytest.mark.floor
def test_first_run_loads_all_then_incremental_leaves_exactly_the_current_state(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse: dict[str, Any]
) -> None:
    autotalk_sandbox.seed_items(TYPE, SEEDED)
    total = len(api_state(creds, TYPE))
    assert total >= SEEDED

    before = requests_made(autotalk_sandbox)
    first = run(creds, warehouse, types=[TYPE])
    first_requests = requests_made(autotalk_sandbox) - before

    assert first.rows(TYPE) == total
    assert query(warehouse, f"select count(*), count(distinct _id) from autotalk.{TYPE}") == [
        (total, total)
    ]
    assert first.tables_by_name()[TYPE].pages_read >= total // 100

    # Change 10 items, add 5.
    with creds.get_client() as client:
        ids = [item.id for item in client.list_dynadata_items(TYPE, page_size=100)]
        changed = ids[100:110]
        for item_id in changed:
            client.update_dynadata_item(
                TYPE, item_id, {"status": "cancelled", "notes": f"changed {item_id}"}
            )
        template = client.get_dynadata_item(TYPE, ids[0]).data
        added = [
            client.create_dynadata_item(TYPE, {**template, "notes": f"new {n}"}).id
            for n in range(5)
        ]

    before = requests_made(autotalk_sandbox)
    second = run(creds, warehouse, types=[TYPE])
    second_requests = requests_made(autotalk_sandbox) - before

    # Only what changed (plus rows on the cursor boundary) was read and loaded.
    assert 15 <= second.rows(TYPE) < total
    assert second.tables_by_name()[TYPE].pages_read < first.tables_by_name()[TYPE].pages_read
    assert second_requests < first_requests / 2

    # The table is exactly the API's current state: no duplicate _id, changed values present.
    expected = api_state(creds, TYPE)
    assert len(expected) == total + 5
    loaded = {
        row[0]: (row[1], row[2])
        for row in query(warehouse, f"select _id, status, notes from autotalk.{TYPE}")
    }
    assert query(warehouse, f"select count(*) - count(distinct _id) from autotalk.{TYPE}") == [(0,)]
    assert loaded == expected
    assert all(loaded[i] == ("cancelled", f"changed {i}") for i in changed)
    assert all(i in loaded for i in added)


def test_every_resource_lands_with_messages_per_conversation(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse: dict[str, Any]
) -> None:
    contacts = autotalk_sandbox.contact_ids()
    with creds.get_client() as client:
        for n, contact in enumerate(contacts[:3]):
            client.send_message(contact, f"hello {n}")
        client.send_message(contacts[0], "second message")
        conversations = {c.id: c for c in client.list_conversations()}
        messages = {m.id for cid in conversations for m in client.list_messages(cid)}
        channels = {c.id for c in client.list_channels()}
        assistants = {a.id for a in client.list_assistants()}
        types = [t.name for t in client.list_dynadata_types()]

    summary = run(creds, warehouse)  # types=None: every Dynadata type

    assert summary.rows("conversations") == len(conversations) == 3
    assert {r[0] for r in query(warehouse, "select _id from autotalk.conversations")} == set(
        conversations
    )
    assert {r[0] for r in query(warehouse, "select _id from autotalk.messages")} == messages
    assert {r[0] for r in query(warehouse, "select _id from autotalk.channels")} == channels
    assert {r[0] for r in query(warehouse, "select _id from autotalk.assistants")} == assistants
    for type_name in types:
        assert summary.rows(type_name) == len(api_state_ids(creds, type_name)) > 0
    # JSON Schema hints: types and descriptions, before any row needs them.
    assert query(
        warehouse,
        "select data_type from information_schema.columns where table_schema = 'autotalk' "
        "and table_name = 'orders' and column_name = 'items'",
    ) == [("JSON",)]
    assert "updated_at" in columns(warehouse, "orders")

    # A new message moves its conversation's updatedAt: the next run reads that conversation's
    # messages only, and merges them.
    with creds.get_client() as client:
        client.send_message(contacts[1], "later")
        messages = {m.id for cid in conversations for m in client.list_messages(cid)}
    again = run(creds, warehouse)
    assert 1 <= again.rows("messages") < len(messages)
    assert query(warehouse, "select count(*), count(distinct _id) from autotalk.messages") == [
        (len(messages), len(messages))
    ]
    assert {r[0] for r in query(warehouse, "select _id from autotalk.messages")} == messages
    # Replace tables stay whole: no duplicates after a second run.
    assert query(warehouse, "select count(*) from autotalk.channels") == [(len(channels),)]


def api_state_ids(creds: AutoTalkCredentials, type_name: str) -> set[str]:
    with creds.get_client() as client:
        return {item.id for item in client.list_dynadata_items(type_name)}


@pytest.fixture
def orders_with_gift_wrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The company adds a ``giftWrap`` field to its orders type (schema edit, test-scoped)."""
    info = sandbox_state.TYPES[TYPE]
    gift_wrap = {"type": "boolean", "description": "Wrap as a gift."}
    schema = {**info.schema, "properties": {**info.schema["properties"], "giftWrap": gift_wrap}}
    monkeypatch.setitem(sandbox_state.TYPES, TYPE, dataclasses.replace(info, schema=schema))
    yield


def test_schema_drift_new_fields_become_new_columns(
    autotalk_sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    warehouse: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    contact = autotalk_sandbox.contact_ids()[0]
    with creds.get_client() as client:
        client.send_message(contact, "no subject yet")
    run(creds, warehouse, types=[TYPE])
    assert "gift_wrap" not in columns(warehouse, TYPE)
    assert "subject" not in columns(warehouse, "conversations")

    request.getfixturevalue("orders_with_gift_wrap")
    with creds.get_client() as client:
        order = next(client.list_dynadata_items(TYPE))
        client.update_dynadata_item(TYPE, order.id, {"giftWrap": True})
        client.create_conversation(contactId=contact, subject="Where is my order?")
    summary = run(creds, warehouse, types=[TYPE])

    assert summary.rows(TYPE) >= 1
    assert "gift_wrap" in columns(warehouse, TYPE)
    assert query(warehouse, f"select _id from autotalk.{TYPE} where gift_wrap") == [(order.id,)]
    assert query(
        warehouse, f"select count(*) from autotalk.{TYPE} where gift_wrap is null"
    ) == query(warehouse, f"select count(*) - 1 from autotalk.{TYPE}")
    # A field outside any schema (conversations have none) is inferred from the data.
    assert "subject" in columns(warehouse, "conversations")
    assert query(
        warehouse, "select subject from autotalk.conversations where subject is not null"
    ) == [("Where is my order?",)]


def test_full_refresh_reloads_everything_and_drops_what_the_api_no_longer_has(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse: dict[str, Any]
) -> None:
    autotalk_sandbox.seed_items("tickets", 250)
    total = len(api_state_ids(creds, "tickets"))
    first = run(creds, warehouse, types=["tickets"])
    assert first.rows("tickets") == total
    with duckdb.connect(warehouse["destination_credentials"]) as con:
        con.execute(
            "insert into autotalk.tickets (_id, subject, _dlt_load_id, _dlt_id) "
            "values ('gone', 'deleted upstream', 'x', 'x')"
        )

    incremental = run(creds, warehouse, types=["tickets"])
    assert incremental.rows("tickets") < total
    assert query(warehouse, "select count(*) from autotalk.tickets where _id = 'gone'") == [(1,)]

    refreshed = run(creds, warehouse, types=["tickets"], full_refresh=True)
    assert refreshed.full_refresh is True
    assert refreshed.rows("tickets") == total
    assert refreshed.tables_by_name()["tickets"].pages_read == (
        first.tables_by_name()["tickets"].pages_read
    )
    assert query(warehouse, "select count(*), count(distinct _id) from autotalk.tickets") == [
        (total, total)
    ]


def test_flow_run_has_a_table_artifact_and_no_secret_anywhere(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, warehouse: dict[str, Any]
) -> None:
    state = sync_to_warehouse(
        credentials=creds, types=["tickets"], pipeline_name="Secret Check", **warehouse,
        return_state=True,
    )  # fmt: skip
    summary = state.result()
    flow_run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    assert len(artifacts) == 1
    artifact = artifacts[0]
    assert artifact.type == "table"
    assert artifact.key == _artifact_key("Secret Check") == "autotalk-sync-secret-check"
    rows = {row["table"]: row for row in _table_rows(artifact.data)}
    assert rows["tickets"]["rows_loaded"] == summary.rows("tickets") > 0
    assert set(rows) >= {"tickets", "conversations", "channels", "assistants"}

    key = autotalk_sandbox.api_key
    assert key not in repr(summary) + summary.model_dump_json()
    assert key not in str(artifact.data) + str(artifact.description)
    written = [p for p in Path(warehouse["pipelines_dir"]).rglob("*") if p.is_file()] + [
        Path(warehouse["destination_credentials"])
    ]
    assert len(written) > 3
    for path in written:
        assert key.encode() not in path.read_bytes(), path


def _table_rows(data: Any) -> list[dict[str, Any]]:
    import json

    parsed = json.loads(data) if isinstance(data, str) else data
    return list(parsed)


def test_bad_inputs_name_what_was_wrong(
    creds: AutoTalkCredentials, warehouse: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"unknown Dynadata type.*'nope'.*clients"):
        run(creds, warehouse, types=["orders", "nope"])
    with pytest.raises(ValueError, match="unknown destination 'warehouse9000'"):
        sync_to_warehouse(credentials=creds, destination="warehouse9000", types=[])
    with pytest.raises(ValueError, match="types must be a list of Dynadata type names"):
        run(creds, warehouse, types=["orders", ""])
    with pytest.raises(ValueError, match="dataset_name must be a non-empty string"):
        run(creds, warehouse, dataset_name=" ")
