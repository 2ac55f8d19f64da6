"""`contract diff`: each difference planted in a copy of our own contract is reported, and
our own document against itself reports none."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autotalk_prefect.api.contract import contract_text, load_contract
from autotalk_prefect.api.contract_diff import (
    ContractDiff,
    Difference,
    SpecError,
    diff_contracts,
    parse_spec,
)
from autotalk_prefect.cli import app

SEND = "POST /v1/contacts/{}/send_message"
SELF = "GET /v1/self"
LIST_ITEMS = "GET /v1/dynadata/type/{}/list"


def planted(change: Callable[[dict[str, Any]], None]) -> ContractDiff:
    spec = load_contract()
    change(spec)
    return diff_contracts(spec)


def found(result: ContractDiff, kind: str, where: str) -> list[Difference]:
    return [d for d in result.differences if d.kind == kind and d.where == where]


def verdict(result: ContractDiff, pointer: str) -> str:
    [item] = [a for a in result.assumptions if a.pointer == pointer]
    return item.verdict


def test_our_own_document_has_no_differences() -> None:
    result = diff_contracts(load_contract())
    assert result.differences == []
    assert not result.breaking
    assert result.by_verdict("refuted") == []
    assert len(result.by_verdict("confirmed")) > 40
    assert result.to_text().startswith("no differences\n")


def test_another_base_path_with_the_same_operations_is_no_difference() -> None:
    def move(spec: dict[str, Any]) -> None:
        spec["servers"] = [{"url": "https://api.autotalk.io"}]
        spec["paths"] = {"/v1" + path: item for path, item in spec["paths"].items()}
        item = spec["paths"].pop("/v1/contacts/{contactId}/send_message")
        spec["paths"]["/v1/contacts/{id}/send_message"] = item  # another parameter name

    assert planted(move).differences == []


def test_a_missing_operation_breaks_and_an_extra_one_does_not() -> None:
    def change(spec: dict[str, Any]) -> None:
        del spec["paths"]["/self"]
        spec["paths"]["/contacts"] = {"get": {"summary": "List contacts", "responses": {}}}

    result = planted(change)
    [missing] = found(result, "operation-missing", SELF)
    assert missing.breaking and "get_self" in missing.detail
    [extra] = found(result, "operation-extra", "GET /v1/contacts")
    assert not extra.breaking and "List contacts" in extra.detail
    assert result.breaking


def test_a_required_request_field_we_do_not_send_breaks() -> None:
    def change(spec: dict[str, Any]) -> None:
        schema = spec["components"]["schemas"]["SendMessageRequest"]
        schema["required"] = [*schema["required"], "channelId", "priority"]
        schema["properties"]["priority"] = {"type": "integer"}

    result = planted(change)
    details = {d.detail for d in found(result, "request-field", SEND)}
    assert details == {
        "requires 'channelId' (we may leave it out)",
        "requires 'priority' (we never send it)",
    }
    assert all(d.breaking for d in found(result, "request-field", SEND))
    pointer = "/components/schemas/SendMessageRequest/properties/channelId"
    assert verdict(result, pointer) == "confirmed"


def test_a_required_query_parameter_breaks_and_another_page_style_is_reported() -> None:
    def change(spec: dict[str, Any]) -> None:
        operation = spec["paths"]["/dynadata/type/{type}/list"]["get"]
        operation["parameters"] = [
            {"$ref": "#/components/parameters/Limit"},
            {"name": "page", "in": "query", "required": False, "schema": {"type": "integer"}},
            {"name": "tenant", "in": "query", "required": True, "schema": {"type": "string"}},
            *operation["parameters"][2:],
        ]

    result = planted(change)
    [required] = found(result, "query-param", LIST_ITEMS)
    assert required.breaking and "'tenant'" in required.detail
    [paging] = found(result, "pagination", LIST_ITEMS)
    assert not paging.breaking
    assert "['limit', 'page']" in paging.detail and "['limit', 'skip']" in paging.detail
    # Skip is still used by the two conversation listings in the planted document
    assert verdict(result, "/components/parameters/Skip") == "confirmed"


def test_cursor_paging_everywhere_refutes_our_skip() -> None:
    def change(spec: dict[str, Any]) -> None:
        spec["components"]["parameters"]["Skip"] = {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
        }

    result = planted(change)
    assert verdict(result, "/components/parameters/Skip") == "refuted"
    assert len([d for d in result.differences if d.kind == "pagination"]) == 3
    assert not result.breaking, "another page style is the client's job (AUTOTALK_PAGE_STYLE)"


@pytest.mark.parametrize(
    ("scheme", "breaking"),
    [
        ({"type": "http", "scheme": "bearer"}, False),
        ({"type": "apiKey", "in": "header", "name": "X-Token"}, True),
        ({"type": "oauth2", "flows": {}}, True),
    ],
)
def test_auth_schemes(scheme: dict[str, Any], breaking: bool) -> None:
    def change(spec: dict[str, Any]) -> None:
        spec["components"]["securitySchemes"] = {"Their": scheme}
        spec["security"] = [{"Their": []}]

    result = planted(change)
    differences = [d for d in result.differences if d.kind == "auth"]
    assert differences[0].where == "securitySchemes" or differences[0].breaking
    assert any("apiKey header x-api-key" in d.detail for d in differences)
    assert result.breaking is breaking


def test_an_alternative_we_can_do_is_enough() -> None:
    def change(spec: dict[str, Any]) -> None:
        schemes = spec["components"]["securitySchemes"]
        schemes["Token"] = {"type": "apiKey", "in": "header", "name": "X-Token"}
        spec["security"] = [{"Token": []}, {"ApiKeyAuth": []}]

    result = planted(change)
    [difference] = [d for d in result.differences if d.kind == "auth"]
    assert not difference.breaking and "apiKey header x-token" in difference.detail


def test_response_fields_and_status_differences_refute_assumptions() -> None:
    def change(spec: dict[str, Any]) -> None:
        message = spec["components"]["schemas"]["Message"]
        del message["properties"]["status"]
        message["properties"]["deliveryState"] = {"type": "string"}
        responses = spec["paths"]["/contacts/{contactId}/send_message"]["post"]["responses"]
        responses["200"] = responses.pop("201")

    result = planted(change)
    [fields] = found(result, "response-fields", SEND)
    assert "not in theirs: status" in fields.detail
    assert "only in theirs: deliveryState" in fields.detail
    assert not fields.breaking
    [status] = found(result, "response-status", SEND)
    assert status.detail == "answers 200, we expect 201"
    pointer = "/paths/~1contacts~1{contactId}~1send_message/post/responses/201"
    assert verdict(result, pointer) == "refuted"
    assert not result.breaking


def test_a_request_body_with_other_required_fields_refutes_the_assumed_body() -> None:
    def change(spec: dict[str, Any]) -> None:
        schema = spec["components"]["schemas"]["CreateConversationRequest"]
        schema["properties"]["channelId"] = {"type": "string"}
        schema["required"] = ["contactId", "channelId"]

    result = planted(change)
    assert verdict(result, "/paths/~1conversations/post/requestBody") == "refuted"
    assert found(result, "request-field", "POST /v1/conversations")[0].breaking


def test_parse_spec_takes_yaml_and_json_and_refuses_others() -> None:
    assert parse_spec(contract_text())["paths"]
    assert parse_spec(json.dumps(load_contract()))["paths"]
    for bad, needle in [("[1, 2]", "no 'paths'"), ("a: [", "neither JSON nor YAML")]:
        with pytest.raises(SpecError, match=needle):
            parse_spec(bad)


@pytest.mark.parametrize(
    "spec",
    [
        {"paths": {"/self": {"get": {"responses": ["a"]}}}, "components": {"securitySchemes": [1]}},
        {
            "paths": {"/self": {"get": {"responses": {"200": {"content": ["x"]}}}}},
            "components": "x",
        },
    ],
)
def test_a_misshapen_document_is_one_clear_error(spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="not shaped like OpenAPI 3"):
        diff_contracts(spec)


# ---- the command ---------------------------------------------------------------------------


def write_spec(tmp_path: Path, spec: dict[str, Any], name: str = "autotalk.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(spec) if name.endswith(".json") else yaml.safe_dump(spec))
    return path


def test_command_exit_codes_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    own = runner.invoke(app, ["contract", "diff", str(write_spec(tmp_path, load_contract()))])
    assert own.exit_code == 0, own.output
    assert own.output.startswith("no differences")

    broken = load_contract()
    del broken["paths"]["/self"]
    path = write_spec(tmp_path, broken, "broken.yaml")
    text = runner.invoke(app, ["contract", "diff", str(path)])
    assert text.exit_code == 1
    assert f"BREAKING  operation-missing  {SELF}" in text.output
    as_json = runner.invoke(app, ["contract", "diff", str(path), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert report["breaking"] is True
    assert report["differences"][0]["kind"] == "operation-missing"
    assert set(report["assumed"]) == {"confirmed", "refuted", "not_covered"}


def test_command_refuses_bad_input_with_one_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["contract", "diff", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    (tmp_path / "list.json").write_text("[]")
    not_openapi = runner.invoke(app, ["contract", "diff", str(tmp_path / "list.json")])
    assert not_openapi.exit_code == 2 and "not an OpenAPI document" in not_openapi.output


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(directory))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_command_fetches_a_url(tmp_path: Path) -> None:
    changed = load_contract()
    changed["components"]["securitySchemes"]["ApiKeyAuth"]["name"] = "X-Token"
    write_spec(tmp_path, changed, "openapi.json")
    runner = CliRunner()
    with serve_directory(tmp_path) as url:
        fetched = runner.invoke(app, ["contract", "diff", f"{url}/openapi.json"])
        absent = runner.invoke(app, ["contract", "diff", f"{url}/missing.json"])
    assert fetched.exit_code == 1, fetched.output
    assert "BREAKING  auth" in fetched.output
    assert absent.exit_code == 2 and "HTTP 404" in absent.output
