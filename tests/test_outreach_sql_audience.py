"""A campaign whose audience is a SQL query: each row's contact messaged once, with the row's
variables, and no record fetched per contact (real sandbox, real Prefect API, DuckDB)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from pydantic import ValidationError

from autotalk_prefect.flows.outreach.engine import Audience
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.sandbox import SandboxHandle

duckdb = pytest.importorskip("duckdb")


def _warehouse(tmp_path: Path, contacts: list[str]) -> str:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA marts")
        conn.execute("CREATE TABLE marts.churn (contact_id TEXT, first_name TEXT, score DOUBLE)")
        rows = [(c, f"Name{i}", round(0.5 + i / 100, 2)) for i, c in enumerate(contacts)]
        conn.executemany("INSERT INTO marts.churn VALUES (?, ?, ?)", rows)
    return f"duckdb:///{path}"


def test_a_sql_audience_messages_each_row_once_with_its_variables(
    autotalk_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    contacts = autotalk_sandbox.contact_ids()[:20]
    url = _warehouse(tmp_path, contacts)
    audience = {
        "query": "SELECT contact_id, first_name, score FROM marts.churn WHERE score >= 0.6",
        "url": url,
    }
    before = int(autotalk_sandbox.stats()["requests"])
    summary = outreach_campaign(
        campaign_id="churn-save",
        message_template="Hi {{ first_name }}, your score is {{ score }}",
        audience=audience,
        ledger_storage=str(tmp_path / "ledger"),
        credentials=autotalk_sandbox.credentials(),
        chunk_size=4,
    )
    wanted = contacts[10:]  # score >= 0.6
    assert (summary.total, summary.sent, summary.failed) == (len(wanted), len(wanted), 0)
    sent = autotalk_sandbox.sent_messages()
    by_contact = collections.Counter(m["contactId"] for m in sent)
    assert set(by_contact) == set(wanted) and set(by_contact.values()) == {1}
    texts = {m["contactId"]: m["message"] for m in sent}
    assert texts[contacts[12]] == "Hi Name12, your score is 0.62"
    # one request per send: no record read per contact, no type listing
    assert int(autotalk_sandbox.stats()["requests"]) - before == len(wanted)

    again = outreach_campaign(
        campaign_id="churn-save",
        message_template="Hi {{ first_name }}, your score is {{ score }}",
        audience=audience,
        ledger_storage=str(tmp_path / "ledger"),
        credentials=autotalk_sandbox.credentials(),
    )
    assert (again.sent, again.skipped_already_sent) == (0, len(wanted))
    assert len(autotalk_sandbox.sent_messages()) == len(wanted)


def test_a_wrong_contact_column_stops_before_any_send(
    autotalk_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    url = _warehouse(tmp_path, autotalk_sandbox.contact_ids()[:3])
    with pytest.raises(ValueError, match=r"contact_column 'customer' is not a column"):
        outreach_campaign(
            campaign_id="churn-wrong",
            message_template="Hi",
            audience={
                "query": "SELECT * FROM marts.churn",
                "url": url,
                "contact_column": "customer",
            },
            ledger_storage=str(tmp_path / "ledger"),
            credentials=autotalk_sandbox.credentials(),
        )
    assert autotalk_sandbox.sent_messages() == []


def test_audience_sources_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="either query or contact_ids"):
        Audience(query="SELECT 1", contact_ids=["a"])
    with pytest.raises(ValidationError, match="url is set without a query"):
        Audience(url="duckdb:///x.duckdb")
    assert Audience(query="SELECT 1").contact_column == "contact_id"
