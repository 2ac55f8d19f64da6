"""Warehouse sync pieces without a full sync: schema hints, names, inputs, destinations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from prefect.blocks.system import Secret

from autotalk_prefect.credentials import AutoTalkCredentials, MissingCredentialsError
from autotalk_prefect.flows.sync.flow import (
    DUCKDB_MAX_QUERY_BYTES,
    build_destination,
    sync_to_warehouse,
)
from autotalk_prefect.flows.sync.source import (
    autotalk_source,
    columns_from_json_schema,
    dynadata_table_name,
)
from autotalk_prefect.sandbox import SandboxHandle


def test_json_schema_types_become_column_hints() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Full name."},
            "count": {"type": "integer"},
            "price": {"type": "number"},
            "vip": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object"},
            "due": {"type": "string", "format": "date"},
            "seen": {"type": "string", "format": "date-time"},
            "email": {"type": "string", "format": "email"},
            "maybe": {"type": ["integer", "null"]},
            "either": {"type": ["integer", "string"]},
            "anything": {},
        },
    }
    columns = columns_from_json_schema(schema)
    types = {name: column["data_type"] for name, column in columns.items()}
    assert types == {
        "name": "text",
        "count": "bigint",
        "price": "double",
        "vip": "bool",
        "tags": "json",
        "meta": "json",
        "due": "date",
        "seen": "timestamp",
        "email": "text",
        "maybe": "bigint",
        "_id": "text",
        "createdAt": "timestamp",
        "updatedAt": "timestamp",
    }  # "either" and "anything" are left to dlt's inference
    assert columns["name"]["description"] == "Full name."
    assert columns["_id"]["nullable"] is False
    assert all(c["nullable"] for n, c in columns.items() if n != "_id")


@pytest.mark.parametrize("schema", [None, {}, {"properties": "not a mapping"}])
def test_a_missing_or_odd_schema_still_gives_the_id_and_timestamps(schema: Any) -> None:
    assert set(columns_from_json_schema(schema)) == {"_id", "createdAt", "updatedAt"}


def test_a_type_named_like_a_fixed_resource_gets_a_prefixed_table() -> None:
    assert dynadata_table_name("orders") == "orders"
    assert dynadata_table_name("messages") == "dynadata_messages"
    assert dynadata_table_name("conversations") == "dynadata_conversations"


def test_source_resources_and_hints(autotalk_sandbox: SandboxHandle) -> None:
    creds = AutoTalkCredentials(
        api_key=autotalk_sandbox.api_key, base_url=autotalk_sandbox.base_url
    )
    source = autotalk_source(creds, types=["orders", "orders"])
    assert list(source.resources) == [
        "orders",
        "conversations",
        "messages",
        "channels",
        "assistants",
    ]
    orders = source.resources["orders"]
    assert orders.write_disposition == "merge"
    assert orders.compute_table_schema()["columns"]["_id"]["primary_key"] is True
    assert source.resources["channels"].write_disposition == "replace"
    assert source.resources["messages"].write_disposition == "merge"
    assert source.max_table_nesting == 0
    with pytest.raises(ValueError, match="page_size must be between 1 and 1000, got 0"):
        autotalk_source(creds, page_size=0)
    with pytest.raises(TypeError, match="types must be a list of type names"):
        autotalk_source(creds, types="orders")  # type: ignore[arg-type]


def test_without_credentials_or_environment_the_error_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AUTOTALK_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(MissingCredentialsError, match="AUTOTALK_API_KEY"):
        autotalk_source()


def test_duckdb_destination_defaults_and_creates_its_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    dest = build_destination("duckdb")
    assert (tmp_path / ".autotalk").is_dir()
    assert dest.capabilities().max_query_length == DUCKDB_MAX_QUERY_BYTES
    build_destination("duckdb", str(tmp_path / "a" / "b" / "w.duckdb"))
    assert (tmp_path / "a" / "b").is_dir()


def test_duckdb_destination_caps_duckdb_memory(tmp_path: Path) -> None:
    """The cap reaches a real DuckDB connection opened the way dlt opens it."""
    dest = build_destination("duckdb", str(tmp_path / "w.duckdb"), duckdb_memory_limit="96MB")
    pipeline = dlt.pipeline("memcap", pipelines_dir=str(tmp_path / "p"), destination=dest)
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select name, value from duckdb_settings() where name in "
            "('memory_limit', 'threads', 'preserve_insertion_order')"
        )
    settings = dict(rows or [])
    assert settings["threads"] == "1"
    assert settings["preserve_insertion_order"] == "false"
    assert settings["memory_limit"].startswith(("91.5 MiB", "96.0 MB", "91"))


@pytest.mark.parametrize("bad", ["", "lots", "64", "-1MB", 64, None])
def test_a_bad_duckdb_memory_limit_is_refused_by_name(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duckdb_memory_limit must be a size like '64MB'"):
        build_destination("duckdb", str(tmp_path / "w.duckdb"), duckdb_memory_limit=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "w.duckdb").exists()


def test_other_destinations_come_from_dlt_by_name() -> None:
    dest = build_destination("postgres", "postgresql://loader:pw@127.0.0.1:5432/dwh")
    assert dest.destination_type == "dlt.destinations.postgres"
    with pytest.raises(ValueError, match=r"unknown destination 'nosuch'.*postgres"):
        build_destination("nosuch")
    with pytest.raises(ValueError, match="destination must be a non-empty string"):
        build_destination("")


def test_destination_credentials_from_a_prefect_secret_block(
    autotalk_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    path = tmp_path / "from-secret.duckdb"
    Secret(value=str(path)).save("autotalk-sync-test-warehouse", overwrite=True)
    creds = AutoTalkCredentials(
        api_key=autotalk_sandbox.api_key, base_url=autotalk_sandbox.base_url
    )
    summary = sync_to_warehouse(
        credentials=creds,
        types=[],
        destination_secret="autotalk-sync-test-warehouse",
        pipelines_dir=str(tmp_path / "pipelines"),
    )
    assert summary.rows("channels") == 2
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.sql("select count(*) from autotalk.channels").fetchall() == [(2,)]


def test_deployment_runs_on_an_interval_and_references_the_credentials_block() -> None:
    from prefect.client.orchestration import get_client
    from prefect.flows import load_flow_from_entrypoint

    from deployments.sync import ENTRYPOINT, build_deployment

    AutoTalkCredentials(api_key="sk-deploy-secret", base_url="http://127.0.0.1:9/v1").save(
        "autotalk-sync-deploy-test", overwrite=True
    )
    deployment = build_deployment(
        every_minutes=30,
        types=["orders"],
        destination_secret="warehouse-dsn",
        credentials_block="autotalk-sync-deploy-test",
    )
    # the flow's own module (the package's), which the entrypoint file imports
    assert deployment.entrypoint.endswith(":" + ENTRYPOINT.split(":")[-1])
    assert load_flow_from_entrypoint(deployment.entrypoint).name == sync_to_warehouse.name
    assert deployment.schedules[0].schedule.interval.total_seconds() == 30 * 60
    assert deployment.concurrency_limit == 1
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert stored.parameters["types"] == ["orders"]
    assert stored.parameters["destination_secret"] == "warehouse-dsn"
    assert "block_document_id" in str(stored.parameters["credentials"])
    assert "sk-deploy-secret" not in str(stored.parameters)
    with pytest.raises(ValueError, match="every_minutes must be positive, got 0"):
        build_deployment(every_minutes=0)


def test_entrypoint_loads_with_real_parameter_types() -> None:
    import inspect

    from prefect.flows import load_flow_from_entrypoint

    loaded = load_flow_from_entrypoint("flows/sync.py:sync_to_warehouse")
    annotations = [p.annotation for p in inspect.signature(loaded.fn).parameters.values()]
    assert annotations and not any(isinstance(a, str) for a in annotations)
    properties = loaded.parameters.model_dump()["properties"]
    assert {"destination", "types", "full_refresh", "credentials"} <= set(properties)


def test_without_the_dlt_extra_the_sync_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, autotalk_sandbox: SandboxHandle
) -> None:
    """dlt is an optional extra: a missing one is named, before the flow reads anything."""
    monkeypatch.setitem(sys.modules, "dlt", None)  # `import dlt` now raises ImportError
    monkeypatch.delitem(sys.modules, "autotalk_prefect.flows.sync.source")
    before = autotalk_sandbox.stats()["requests"]
    with pytest.raises(ImportError, match=r"pip install 'autotalk-prefect\[dlt\]'"):
        build_destination("duckdb")
    creds = AutoTalkCredentials(
        api_key=autotalk_sandbox.api_key, base_url=autotalk_sandbox.base_url
    )
    with pytest.raises(ImportError, match=r"pip install 'autotalk-prefect\[dlt\]'"):
        sync_to_warehouse(credentials=creds)
    assert autotalk_sandbox.stats()["requests"] == before
