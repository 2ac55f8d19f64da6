"""``autotalk-prefect doctor`` names each sandbox dialect's traits, and never prints the key."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from autotalk_prefect.api.models import Company, DynadataItem, Message
from autotalk_prefect.cli import app
from autotalk_prefect.cli.doctor import compare_fields, list_items, page_style, unwrap_object
from autotalk_prefect.sandbox import SandboxHandle
from autotalk_prefect.sandbox.pytest_plugin import SANDBOX_DIALECTS

SandboxIn = Callable[[str], SandboxHandle]
EXPECTED = {  # dialect -> auth scheme, list envelope, page style, single objects, id field
    "contract": ("x-api-key", "data", "skip/limit", None, "_id"),
    "mongoose": ("bearer", "docs", "page-number", "data", "_id"),
    "cursor": ("x-api-key", "items", "cursor", None, "_id"),
    "minimal": ("x-api-key", "bare array", "page-number", None, "id"),
}


def _doctor(sb: SandboxHandle, *args: str, key: str | None = None) -> Any:
    command = ["doctor", "--api-key", key or sb.api_key, "--base-url", sb.base_url, *args]
    return CliRunner().invoke(app, command)


def test_page_style_from_sample_answers() -> None:
    a, b = [{"_id": "a"}, {"_id": "b"}], [{"_id": "c"}, {"_id": "d"}]
    assert page_style({"data": a, "total": 4, "limit": 2, "skip": 0}, None, None) == "skip/limit"
    assert page_style({"docs": a, "totalDocs": 4, "hasNextPage": True}, None, None) == (
        "page-number"
    )
    assert page_style({"items": a, "nextCursor": "x", "has_more": True}, None, None) == "cursor"
    assert page_style(a, b, a) == "skip/limit"  # a bare array read by behaviour
    assert page_style(a, a, b) == "page-number"
    assert page_style(a, a, a).startswith("unknown")
    assert page_style([], [], []).startswith("unknown")


def test_shapes_from_sample_answers() -> None:
    assert list_items([1]) == ("bare array", [1])
    assert list_items({"results": [1]}) == ("results", [1])
    assert list_items({"what": 1})[0] == "unknown"
    assert unwrap_object({"success": True, "data": {"_id": "x"}}) == ("data", {"_id": "x"})
    assert unwrap_object({"_id": "x", "data": {"a": 1}}) == (None, {"_id": "x", "data": {"a": 1}})
    fields = compare_fields(Message, {"id": "m", "message": "hi", "color": "red"})
    assert fields["missing"] == [] and fields["extra"] == ["color"]
    assert "conversationId" in fields["missing_optional"]  # optional since the client is tolerant
    assert "mediaUrl" in fields["missing_optional"]
    assert compare_fields(Company, {"_id": "c", "name": "n"})["missing"] == []
    by_message_id = compare_fields(Message, {"messageId": "m", "message": "hi"})
    assert "_id" not in by_message_id["missing_optional"] and by_message_id["extra"] == []
    assert "_id" in compare_fields(Company, {"messageId": "m", "name": "n"})["missing_optional"]
    assert compare_fields(DynadataItem, {"_id": "i", "x": 1}, extra_expected=True)["extra"] == []


@pytest.mark.parametrize("dialect", SANDBOX_DIALECTS)
def test_doctor_names_each_dialect(autotalk_sandbox_in: SandboxIn, dialect: str) -> None:
    sb = autotalk_sandbox_in(dialect)
    sb.simulate_reply(sb.contact_ids()[0], "hello")  # a conversation with a message to read
    result = _doctor(sb, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    traits = (
        report["auth_scheme"],
        report["list_envelope"],
        report["page_style"],
        report["single_object_envelope"],
        report["id_field"],
    )
    assert traits == EXPECTED[dialect]
    endpoints = {e["name"]: e for e in report["endpoints"]}
    assert set(endpoints) == {"get_self", "list_dynadata_types", "list_channels",
                              "list_assistants", "list_conversations", "list_messages",
                              "list_dynadata_items"}  # fmt: skip
    assert all(e["ok"] and e["latency_ms"] is not None for e in endpoints.values())
    messages = endpoints["list_messages"]
    assert messages["missing"] == []  # nothing the library needs is missing, in any dialect
    dropped = "conversationId" in messages["missing_optional"]
    assert dropped is (dialect == "minimal")
    text = _doctor(sb)
    assert text.exit_code == 0 and f"page style: {EXPECTED[dialect][2]}" in text.output


def test_doctor_never_prints_the_key(autotalk_sandbox_in: SandboxIn) -> None:
    sb = autotalk_sandbox_in("mongoose")  # the key travels as x-api-key, then as a Bearer token
    for args in ((), ("--json",)):
        good = _doctor(sb, *args)
        assert good.exit_code == 0 and sb.api_key not in good.output
    wrong = "sk-doctor-wrong-4f1c9a"
    refused = _doctor(sb, "--json", key=wrong)
    assert refused.exit_code == 1 and wrong not in refused.output
    report = json.loads(refused.output)
    assert report["auth_scheme"] is None and report["auth_tried"] == ["x-api-key", "bearer"]
    assert "401" in report["endpoints"][0]["error"]


def test_doctor_without_a_key_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTALK_API_KEY", raising=False)
    monkeypatch.chdir("/")  # no .env to read
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 2 and "AUTOTALK_API_KEY" in result.output
