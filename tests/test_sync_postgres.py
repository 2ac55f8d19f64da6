"""sync_to_warehouse into a real PostgreSQL: runs only where AUTOTALK_TEST_POSTGRES_DSN is set.

The DSN names a database the test may create and drop schemas in, e.g.
``postgresql://postgres:postgres@127.0.0.1:25432/postgres`` (dlt insists on a password, even
for a trust-auth server; see docs/sync.md for starting one).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.sync.flow import sync_to_warehouse
from autotalk_prefect.sandbox import SandboxHandle

DSN = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")

pytestmark = pytest.mark.skipif(
    not DSN, reason="set AUTOTALK_TEST_POSTGRES_DSN to run against a PostgreSQL server"
)


@pytest.fixture
def dataset() -> Iterator[str]:
    """A fresh schema per test, dropped afterwards (with dlt's staging schema)."""
    import psycopg2

    name = f"autotalk_test_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg2.connect(DSN) as con, con.cursor() as cur:
        cur.execute(f"drop schema if exists {name} cascade")
        cur.execute(f"drop schema if exists {name}_staging cascade")


def fetch(sql: str) -> list[tuple[object, ...]]:
    import psycopg2

    with psycopg2.connect(DSN) as con, con.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_incremental_merge_into_postgres(
    autotalk_sandbox: SandboxHandle, dataset: str, tmp_path: Path
) -> None:
    creds = AutoTalkCredentials(
        api_key=autotalk_sandbox.api_key, base_url=autotalk_sandbox.base_url
    )
    autotalk_sandbox.seed_items("orders", 1000)
    params = {
        "destination": "postgres",
        "destination_credentials": DSN,
        "dataset_name": dataset,
        "types": ["orders"],
        "pipeline_name": dataset,
        "pipelines_dir": str(tmp_path),
        "credentials": creds,
    }
    first = sync_to_warehouse(**params)
    with creds.get_client() as client:
        ids = [item.id for item in client.list_dynadata_items("orders", page_size=100)]
        for item_id in ids[:10]:
            client.update_dynadata_item("orders", item_id, {"status": "cancelled"})
    second = sync_to_warehouse(**params)

    assert first.rows("orders") == len(ids)
    assert 10 <= second.rows("orders") < len(ids)
    assert fetch(f"select count(*), count(distinct _id) from {dataset}.orders") == [
        (len(ids), len(ids))
    ]
    cancelled = {
        row[0] for row in fetch(f"select _id from {dataset}.orders where status = 'cancelled'")
    }
    assert set(ids[:10]) <= cancelled
    assert fetch(
        "select data_type from information_schema.columns where table_schema = "
        f"'{dataset}' and table_name = 'orders' and column_name = 'items'"
    ) == [("jsonb",)]
