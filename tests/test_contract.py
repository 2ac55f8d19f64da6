"""The contract document: valid OpenAPI 3.0, exactly AutoTalk's 18 endpoints, honest about assumptions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator
from pydantic import BaseModel

from autotalk_prefect.api import models
from autotalk_prefect.api.contract import json_schema, load_contract, operation_index

DOCS = Path(__file__).resolve().parents[1] / "docs" / "contract.md"

# The endpoint table of AutoTalk's documentation (shared/AUTOTALK_API.md), with the client
# method name each maps to. The contract must hold exactly these, no more and no less.
DOCUMENTED: dict[str, tuple[str, str]] = {
    "get_self": ("GET", "/self"),
    "send_message": ("POST", "/contacts/{contactId}/send_message"),
    "list_conversations": ("GET", "/conversations"),
    "create_conversation": ("POST", "/conversations"),
    "process_messages": ("POST", "/conversations/{id}/messages"),
    "list_messages": ("GET", "/conversations/{id}/messages"),
    "list_dynadata_types": ("GET", "/dynadata/types"),
    "list_dynadata_items": ("GET", "/dynadata/type/{type}/list"),
    "get_dynadata_item": ("GET", "/dynadata/type/{type}/item/{_id}"),
    "create_dynadata_item": ("POST", "/dynadata/type/{type}/create"),
    "update_dynadata_item": ("PUT", "/dynadata/type/{type}/update"),
    "validate_dynadata_item": ("POST", "/dynadata/type/{type}/validate"),
    "get_dynadata_schema": ("GET", "/dynadata/type/{type}/schema"),
    "get_dynadata_zod_schema": ("GET", "/dynadata/type/{type}/schema/zod"),
    "execute_dynadata_function": ("POST", "/dynadata/type/{type}/executeFunction/{functionName}"),
    "execute_dynadata_item_function": (
        "POST",
        "/dynadata/type/{type}/item/{_id}/executeFunction/{functionName}",
    ),
    "list_channels": ("GET", "/integrations/channels"),
    "list_assistants": ("GET", "/assistants"),
}
LIST_OPERATIONS = ("list_conversations", "list_messages", "list_dynadata_items")
NOT_IDEMPOTENT = {
    "send_message",
    "create_conversation",
    "process_messages",
    "create_dynadata_item",
    "execute_dynadata_function",
    "execute_dynadata_item_function",
}
# Wire model -> contract schema. The schema must name every model field, and require at least
# what the model requires (responses) or exactly that (request bodies: the server must accept
# what the client sends).
RESPONSE_MODELS: dict[str, type[BaseModel]] = {
    "Company": models.Company,
    "Message": models.Message,
    "Conversation": models.Conversation,
    "ProcessMessagesResult": models.ProcessMessagesResult,
    "DynadataFunction": models.DynadataFunction,
    "DynadataType": models.DynadataType,
    "DynadataItem": models.DynadataItem,
    "ValidationIssue": models.ValidationIssue,
    "ValidationResult": models.ValidationResult,
    "FunctionResult": models.FunctionResult,
    "Channel": models.Channel,
    "Assistant": models.Assistant,
    "Error": models.ErrorBody,
    "ConversationPage": models.Page,
    "MessagePage": models.Page,
    "DynadataItemPage": models.Page,
}
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "SendMessageRequest": models.SendMessageRequest,
    "CreateConversationRequest": models.CreateConversationRequest,
    "InboundMessage": models.InboundMessage,
    "ProcessMessagesRequest": models.ProcessMessagesRequest,
    "ExecuteFunctionRequest": models.ExecuteFunctionRequest,
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_contract()


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in ("get", "put", "post", "delete", "patch"):
            if method in item:
                yield method.upper(), path, item, item[method]


def _walk(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}/{i}")


def _model_fields(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """(all wire names, required wire names) of a pydantic model."""
    names = {field.alias or name for name, field in model.model_fields.items()}
    required = {
        field.alias or name for name, field in model.model_fields.items() if field.is_required()
    }
    return names, required


def test_document_validates_as_openapi_30(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.0.")
    errors = [error.message for error in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []
    assert [server["url"] for server in doc["servers"]] == ["https://api.autotalk.io/v1"]


def test_exactly_the_documented_endpoints(doc: dict[str, Any]) -> None:
    found = {(method, path) for method, path, _, _ in _operations(doc)}
    assert found == set(DOCUMENTED.values())
    assert len(found) == 18


def test_operation_ids_are_the_client_method_names(doc: dict[str, Any]) -> None:
    found = {op.get("operationId"): (method, path) for method, path, _, op in _operations(doc)}
    assert found == DOCUMENTED
    index = operation_index()
    assert {name: (op.method, op.path) for name, op in index.items()} == DOCUMENTED
    assert {name for name, op in index.items() if not op.idempotent} == NOT_IDEMPOTENT


def test_docs_endpoint_table_matches_the_document(doc: dict[str, Any]) -> None:
    """docs/contract.md is the human summary: its endpoint table lists the same 18 endpoints."""
    rows = re.findall(r"^\| (GET|POST|PUT|DELETE|PATCH) \| `([^`]+)` \|", DOCS.read_text(), re.M)

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    assert len(rows) == 18
    assert {(m, shape(p)) for m, p in rows} == {(m, shape(p)) for m, p in DOCUMENTED.values()}


def test_api_key_security_applies_to_every_operation(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    api_key = [
        name
        for name, s in schemes.items()
        if s == s | {"type": "apiKey", "in": "header", "name": "x-api-key"}
    ]
    assert api_key, "no apiKey scheme on the x-api-key header"
    assert {"ApiKeyAuth": []} in doc["security"]
    for method, path, _, op in _operations(doc):
        effective = op.get("security", doc["security"])
        assert any(api_key[0] in requirement for requirement in effective), (method, path)


def test_every_operation_documents_its_errors(doc: dict[str, Any]) -> None:
    error_schema = doc["components"]["schemas"]["Error"]
    for method, path, _, op in _operations(doc):
        responses = op["responses"]
        where = f"{method} {path}"
        assert {"401", "403", "429", "500", "502", "503", "504"} <= set(responses), where
        assert any(code.startswith("2") for code in responses), where
        if "{" in path:
            assert "404" in responses, where
        if "requestBody" in op:
            assert "400" in responses, where
        for code, response in responses.items():
            response = _resolve(doc, response)
            headers = response.get("headers", {})
            assert "x-request-id" in headers, f"{where} {code}: no x-request-id header"
            if code[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert _resolve(doc, schema) is error_schema, f"{where} {code}: not the Error body"
        retry_after = _resolve(doc, _resolve(doc, responses["429"])["headers"]["Retry-After"])
        assert retry_after["required"] is True, where


def test_every_assumption_is_marked_and_explained(doc: dict[str, Any]) -> None:
    marked = []
    for where, node in _walk(doc):
        if "x-assumed" not in node:
            continue
        assert node["x-assumed"] is True, f"{where}: x-assumed must be true (or absent)"
        description = node.get("description")
        assert isinstance(description, str) and description.strip(), f"{where}: no description"
        marked.append(where)
    # The parts AutoTalk does not publish are all marked (spot checks of each kind).
    for expected in (
        "#/components/schemas/Error",
        "#/components/responses/Unauthorized",
        "#/components/responses/RateLimited",
        "#/components/headers/RequestId",
        "#/components/headers/RetryAfter",
        "#/components/parameters/Limit",
        "#/components/parameters/Skip",
        "#/components/parameters/UpdatedSince",
        "#/components/schemas/ConversationPage",
        "#/components/schemas/ZodSchema",
        "#/components/schemas/SendMessageRequest/properties/channelId",
        "#/x-autotalk-webhooks",
    ):
        assert expected in marked, f"{expected} is assumed but not marked"
    # ... and what AutoTalk documents is not: the send_message `message` field.
    send = doc["components"]["schemas"]["SendMessageRequest"]
    assert "x-assumed" not in send["properties"]["message"]
    assert send["required"] == ["message"]


def test_list_endpoints_page_with_limit_and_skip(doc: dict[str, Any]) -> None:
    index = operation_index()
    for name in LIST_OPERATIONS:
        op = index[name]
        item = doc["paths"][op.path]
        operation = item[op.method.lower()]
        params = [_resolve(doc, p) for p in item.get("parameters", []) + operation["parameters"]]
        by_name = {p["name"]: p for p in params if p["in"] == "query"}
        assert by_name["limit"]["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 20,
        }
        assert by_name["skip"]["schema"] == {"type": "integer", "minimum": 0, "default": 0}
        page = _resolve(doc, operation["responses"]["200"]["content"]["application/json"]["schema"])
        assert set(page["required"]) == {"data", "total", "limit", "skip"}, name
    conversations = doc["paths"]["/conversations"]["get"]["parameters"]
    names = {_resolve(doc, p)["name"] for p in conversations}
    assert {"contactId", "status", "updatedSince"} <= names


@pytest.mark.parametrize("schema_name", sorted(RESPONSE_MODELS))
def test_response_schemas_follow_the_wire_models(doc: dict[str, Any], schema_name: str) -> None:
    schema = doc["components"]["schemas"][schema_name]
    names, required = _model_fields(RESPONSE_MODELS[schema_name])
    assert names <= set(schema["properties"]), names - set(schema["properties"])
    assert required <= set(schema.get("required", [])), required - set(schema.get("required", []))
    assert schema.get("additionalProperties") is True, "unknown fields must be allowed (kept)"


@pytest.mark.parametrize("schema_name", sorted(REQUEST_MODELS))
def test_request_schemas_follow_the_wire_models(doc: dict[str, Any], schema_name: str) -> None:
    schema = doc["components"]["schemas"][schema_name]
    names, required = _model_fields(REQUEST_MODELS[schema_name])
    assert names == set(schema["properties"])
    assert required == set(schema.get("required", []))


def test_converted_schemas_accept_model_output_and_reject_broken_bodies() -> None:
    message = models.Message(_id="a" * 24, conversationId="b" * 24, message="hi", status="sent")
    validator = jsonschema.Draft202012Validator(json_schema("MessagePage"))
    good = {
        "data": [message.to_wire() | {"subject": None, "extra": 1}],
        "total": 1,
        "limit": 20,
        "skip": 0,
    }
    assert list(validator.iter_errors(good)) == []
    bad = {"data": [{"conversationId": "b" * 24}], "total": "1", "limit": 20}
    problems = sorted(error.message for error in validator.iter_errors(bad))
    assert problems == [
        "'1' is not of type 'integer'",
        "'_id' is a required property",
        "'skip' is a required property",
    ]
    item = jsonschema.Draft202012Validator(json_schema("DynadataItem"))
    assert item.is_valid({"_id": "x1", "name": "Ada", "tags": ["vip"], "nested": {"a": 1}})
    with pytest.raises(KeyError, match="NoSuchSchema"):
        json_schema("NoSuchSchema")


def test_webhook_recipe_matches_docs(doc: dict[str, Any]) -> None:
    hooks = doc["x-autotalk-webhooks"]
    assert set(hooks["events"]) == {"message.received", "client.created", "conversation.opened"}
    for event in hooks["events"]:
        post = hooks[event]["post"]
        headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
        # the secret travels in this header or, where a workflow step cannot set headers, in
        # the path (/autotalk/<secret>/<event>): the header itself is optional
        assert headers["x-autotalk-secret"]["required"] is False
        assert {"x-autotalk-timestamp", "x-autotalk-signature"} <= set(headers)
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        one = {"$ref": "#/components/schemas/WebhookEvent"}
        assert schema["oneOf"][0] == one  # one event, or an array of them
        assert schema["oneOf"][1]["type"] == "array" and schema["oneOf"][1]["items"] == one
        get = hooks[event]["get"]  # the fields in the query string, the secret never there
        assert "query string" in get["description"] and "400" in get["responses"]
    example = re.search(r"```json\n(.*?)```", DOCS.read_text(), re.S)
    assert example is not None, "docs/contract.md lost its webhook body example"
    body = json.loads(example.group(1))
    validator = jsonschema.Draft202012Validator(json_schema("WebhookEvent"))
    assert list(validator.iter_errors(body)) == []
    # AutoTalk documents no event-id placeholder: a body without one is still an event
    assert validator.is_valid({k: v for k, v in body.items() if k != "id"})
    assert not validator.is_valid({"event": "not.an.event"})


def test_load_contract_returns_a_private_copy() -> None:
    first = load_contract()
    first["paths"].clear()
    assert len(load_contract()["paths"]) == 16  # 18 operations on 16 paths


def test_both_clients_have_one_method_per_operation() -> None:
    from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient

    for client in (AutoTalkClient, AsyncAutoTalkClient):
        missing = [name for name in DOCUMENTED if not callable(getattr(client, name, None))]
        assert missing == [], f"{client.__name__} lacks {missing}"
