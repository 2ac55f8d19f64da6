"""Each sandbox dialect serves the same data in its own shapes (raw httpx against the server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from autotalk_prefect.cli import app
from autotalk_prefect.sandbox import SandboxConfig, SandboxHandle
from autotalk_prefect.sandbox.dialects import (
    DIALECT_NAMES,
    contract_query,
    decode_cursor,
    encode_cursor,
    get_dialect,
)
from autotalk_prefect.sandbox.problems import ApiProblem
from autotalk_prefect.sandbox.pytest_plugin import SANDBOX_DIALECTS

CLIENTS = "/dynadata/type/clients/list"
SandboxIn = Callable[[str], SandboxHandle]


def _client(sb: SandboxHandle, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=sb.base_url, headers=headers or sb.auth_headers(), timeout=10)


def _id(item: dict[str, Any], dialect: str) -> str:
    return str(item["id"] if dialect == "minimal" else item["_id"])


def read_every_page(client: httpx.Client, path: str, dialect: str, size: int) -> list[str]:
    """Every item id of a listing, paging the way ``dialect`` documents."""
    ids: list[str] = []
    page, skip, cursor = 1, 0, None
    for _ in range(1000):
        if dialect == "contract":
            body = client.get(path, params={"limit": size, "skip": skip}).raise_for_status().json()
            items = body["data"]
            skip += len(items)
            more = bool(items) and skip < body["total"]
        elif dialect == "mongoose":
            params = {"limit": size, "page": page}
            body = client.get(path, params=params).raise_for_status().json()
            items, more = body["docs"], body["hasNextPage"]
            assert body["page"] == page and body["totalDocs"] >= len(items)
            page = body["nextPage"] or page
        elif dialect == "cursor":
            params = {"limit": size, **({"cursor": cursor} if cursor else {})}
            body = client.get(path, params=params).raise_for_status().json()
            items, more, cursor = body["items"], body["has_more"], body["nextCursor"]
            assert (cursor is None) is (not more)
        else:
            params = {"pageSize": size, "page": page}
            items = client.get(path, params=params).raise_for_status().json()
            assert isinstance(items, list)
            more, page = bool(items), page + 1
        ids += [_id(item, dialect) for item in items]
        if not more:
            return ids
    raise AssertionError("the listing never ended")


def test_the_plugin_lists_every_dialect() -> None:
    assert SANDBOX_DIALECTS == DIALECT_NAMES == ("contract", "mongoose", "cursor", "minimal")


def test_an_unknown_dialect_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown sandbox dialect .soap.*mongoose"):
        SandboxConfig(dialect="soap")
    result = CliRunner().invoke(app, ["sandbox", "--dialect", "soap"])
    assert result.exit_code != 0 and "soap" in result.output
    assert "--dialect" in CliRunner().invoke(app, ["sandbox", "--help"]).output


def test_paging_queries_translate_to_skip_and_limit() -> None:
    mongoose, minimal, cursor = (get_dialect(n) for n in ("mongoose", "minimal", "cursor"))
    assert contract_query(mongoose, b"page=3&limit=10&status=open", 100) == (
        b"status=open&limit=10&skip=20"
    )
    # the server caps the page size first: page 2 starts after the capped page
    assert contract_query(minimal, b"page=2&pageSize=500&skip=7", 100) == b"limit=100&skip=100"
    assert contract_query(cursor, b"cursor=" + encode_cursor(40).encode() + b"&skip=3", 100) == (
        b"limit=20&skip=40"
    )
    for bad in (b"page=0", b"page=x", b"limit=-1"):
        with pytest.raises(ApiProblem, match="query parameter"):
            contract_query(mongoose, bad, 100)
    for forged in ("nope", encode_cursor(-1), "eyJvIjoiYSJ9"):
        with pytest.raises(ApiProblem, match="cursor"):
            decode_cursor(forged)


def test_auth_scheme(autotalk_sandbox_each_dialect: SandboxHandle) -> None:
    sb = autotalk_sandbox_each_dialect
    key = sb.api_key
    with _client(sb) as client:
        assert client.get("/self").status_code == 200
    other = {"x-api-key": key} if sb.dialect == "mongoose" else {"authorization": f"Bearer {key}"}
    with _client(sb, **other) as client:
        refused = client.get("/self")
    assert refused.status_code == 401
    if sb.dialect == "mongoose":
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "Bearer" in refused.json()["error"]["message"]


@pytest.mark.parametrize("size", [7, 1000])
def test_paging_reaches_every_item_once(
    autotalk_sandbox_each_dialect: SandboxHandle, autotalk_sandbox_in: SandboxIn, size: int
) -> None:
    sb = autotalk_sandbox_each_dialect
    sb.seed_items("clients", 180)  # 205 contacts: more than one capped (100) page
    with _client(sb) as client:
        ids = read_every_page(client, CLIENTS, sb.dialect, size)
    assert len(ids) == len(set(ids)) == 205
    reference = autotalk_sandbox_in("contract")
    reference.seed_items("clients", 180)
    with _client(reference) as client:
        assert ids == read_every_page(client, CLIENTS, "contract", 100)  # the same data


def test_list_envelopes(autotalk_sandbox_each_dialect: SandboxHandle) -> None:
    sb = autotalk_sandbox_each_dialect
    with _client(sb) as client:
        page = client.get(CLIENTS, params={"limit": 2}).json()
        channels = client.get("/integrations/channels").json()
        skipped = client.get(CLIENTS, params={"limit": 2, "skip": 1}).json()
    expected_keys = {
        "contract": {"data", "total", "limit", "skip"},
        "mongoose": {
            "docs",
            "totalDocs",
            "limit",
            "totalPages",
            "page",
            "pagingCounter",
            "hasPrevPage",
            "hasNextPage",
            "prevPage",
            "nextPage",
        },
        "cursor": {"items", "nextCursor", "has_more"},
    }
    if sb.dialect == "minimal":
        assert isinstance(page, list) and isinstance(channels, list)
    else:
        assert set(page) == expected_keys[sb.dialect]
    if sb.dialect == "mongoose":
        assert page["totalDocs"] == 25 and page["totalPages"] == 13 and page["nextPage"] == 2
        assert set(channels) == {"success", "data"} and channels["success"] is True
    if sb.dialect == "cursor":
        assert channels == {"items": channels["items"], "nextCursor": None, "has_more": False}
    # skip is today's paging only: every other dialect ignores it
    assert (skipped == page) is (sb.dialect != "contract")


def test_single_objects(autotalk_sandbox_each_dialect: SandboxHandle) -> None:
    sb = autotalk_sandbox_each_dialect
    contact = sb.contact_ids()[0]
    with _client(sb) as client:
        item = client.get(f"/dynadata/type/clients/item/{contact}").json()
        company = client.get("/self").json()
    if sb.dialect == "mongoose":
        assert item["success"] is True and item["data"]["_id"] == contact
        assert company["data"]["plan"]
    elif sb.dialect == "minimal":
        assert item["id"] == contact and "_id" not in item
        assert "id" in company and "plan" not in company and "email" not in company
    else:
        assert item["_id"] == contact and company["plan"]


def test_send_answer(autotalk_sandbox_each_dialect: SandboxHandle) -> None:
    sb = autotalk_sandbox_each_dialect
    contact = sb.contact_ids()[0]
    with _client(sb) as client:
        answer = client.post(f"/contacts/{contact}/send_message", json={"message": "hi"})
        conversation = client.get("/conversations", params={"contactId": contact}).json()
    assert [m["message"] for m in sb.sent_messages()] == ["hi"]  # applied once in every dialect
    status = {"contract": 201, "mongoose": 201, "cursor": 202, "minimal": 200}[sb.dialect]
    assert answer.status_code == status
    if sb.dialect == "cursor":
        assert answer.content == b"" and "content-type" not in answer.headers
        return
    body = answer.json()
    message = body["data"] if sb.dialect == "mongoose" else body
    assert message["message"] == "hi" and message["contactId"] == contact
    if sb.dialect == "minimal":
        assert "conversationId" not in message and "channelId" not in message
        assert "id" in message and "_id" not in message
        conversation_id = conversation[0]["id"]
        with _client(sb) as client:
            listed = client.get(f"/conversations/{conversation_id}/messages").json()
        assert [m["message"] for m in listed] == ["hi"] and "conversationId" not in listed[0]
    else:
        assert message["conversationId"]


def test_error_shapes(autotalk_sandbox_each_dialect: SandboxHandle) -> None:
    sb = autotalk_sandbox_each_dialect
    contact = sb.contact_ids()[0]
    with _client(sb) as client:
        invalid = client.post(f"/contacts/{contact}/send_message", json={"message": ""})
        missing = client.get("/dynadata/type/clients/item/nope")
    assert (invalid.status_code, missing.status_code) == (422, 404)
    assert sb.sent_messages() == []
    body, lost = invalid.json(), missing.json()
    if sb.dialect == "contract":
        assert body["issues"][0]["path"] == "message" and lost["error"] == "not_found"
    elif sb.dialect == "mongoose":
        assert body["success"] is False and body["error"]["issues"][0]["path"] == "message"
        assert lost["error"]["code"] == "not_found" and "nope" in lost["error"]["message"]
    elif sb.dialect == "cursor":
        assert body == {
            "success": False,
            "error": {"name": "ZodError", "issues": [
                {"code": "custom", "path": ["message"], "message": body["error"]["issues"][0]["message"]}
            ]},
        }  # fmt: skip
        assert lost["success"] is False and "nope" in lost["error"]["message"]
    else:
        assert invalid.headers["content-type"] == "application/problem+json"
        assert body["status"] == 422 and body["title"] == "Unprocessable Entity"
        assert body["errors"][0]["pointer"] == "#/message" and body["detail"]
        assert lost["status"] == 404 and "nope" in lost["detail"]


def test_nested_issue_paths(autotalk_sandbox_in: SandboxIn) -> None:
    """A dotted contract path (``messages.0.message``) becomes Zod's array and a JSON pointer."""
    answers = {}
    for dialect in ("cursor", "minimal"):
        sb = autotalk_sandbox_in(dialect)
        with _client(sb) as client:
            conversation = client.post("/conversations", json={"contactId": sb.contact_ids()[0]})
            conversation_id = conversation.json()["_id" if dialect == "cursor" else "id"]
            answers[dialect] = client.post(
                f"/conversations/{conversation_id}/messages",
                json={"messages": [{"role": "user", "message": ""}]},
            ).json()
    assert answers["cursor"]["error"]["issues"][0]["path"] == ["messages", 0, "message"]
    assert answers["minimal"]["errors"][0]["pointer"] == "#/messages/0/message"


def test_faults_and_the_admin_api_are_unchanged(
    autotalk_sandbox_each_dialect: SandboxHandle,
) -> None:
    sb = autotalk_sandbox_each_dialect
    sb.set_faults(rate_429=1.0, retry_after_seconds=3)
    with _client(sb) as client:
        limited = client.get("/self")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.headers["x-request-id"]
    sb.clear_faults()
    with httpx.Client(base_url=f"{sb.root_url}/_sandbox", timeout=10) as admin:
        stats = admin.get("/stats").json()
    assert stats["by_status"] == {"429": 1} and stats["faults"] == {"429": 1}
    reply = sb.simulate_reply(sb.contact_ids()[0], "hello")
    assert "_id" in reply  # the state's own shape: dialects are only on the wire


def test_drop_after_processing_still_drops(autotalk_sandbox_each_dialect: SandboxHandle) -> None:
    sb = autotalk_sandbox_each_dialect
    sb.set_faults(drop_after_processing=1.0)
    contact = sb.contact_ids()[0]
    with _client(sb) as client, pytest.raises(httpx.TransportError):
        client.post(f"/contacts/{contact}/send_message", json={"message": "once"})
    assert [m["message"] for m in sb.sent_messages()] == ["once"]
