"""The sandbox honours the contract: every answer it gives is one the document describes.

Two layers. First, a representative request per operation (success, and the 401/404/409/422
cases, plus every fault status) whose answer must carry a documented status, the documented
headers and a body valid against that status's schema. Second, schemathesis generates requests
from the document itself (positive data, a few examples per operation, real ids mixed in) and
checks that the sandbox never errors and that every answer conforms.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from autotalk_prefect.api.contract import json_schema, load_contract, operation_index
from autotalk_prefect.sandbox import FaultConfig, SandboxConfig, SandboxHandle, run_sandbox, sign

API_KEY = "sk-test"
UNKNOWN_ID = "0" * 24
DOC = load_contract()
OPERATIONS = operation_index()


READ_ONLY_KEY = "sk-readonly"


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxHandle]:
    config = SandboxConfig(api_key=API_KEY, seed=0, read_only_api_keys=(READ_ONLY_KEY,))
    with run_sandbox(config=config) as handle:
        yield handle


@pytest.fixture
def api(sb: SandboxHandle) -> Iterator[httpx.Client]:
    sb.reset()
    sb.clear_faults()
    with httpx.Client(base_url=sb.base_url, headers={"x-api-key": API_KEY}, timeout=10) as client:
        yield client


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def conforms(operation_id: str, response: httpx.Response) -> Any:
    """Assert that ``response`` is an answer the contract documents for the operation; return its body."""
    op = OPERATIONS[operation_id]
    where = f"{op.method} {op.path} -> {response.status_code}"
    responses = DOC["paths"][op.path][op.method.lower()]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{where}: undocumented status; body {response.text[:300]}"
    documented = _resolve(responses[status])
    for name, header in documented.get("headers", {}).items():
        header = _resolve(header)
        if header.get("required"):
            assert response.headers.get(name), f"{where}: required header {name} missing"
        if name in response.headers and "pattern" in header.get("schema", {}):
            value = response.headers[name]
            assert jsonschema.Draft202012Validator(header["schema"]).is_valid(value), (
                f"{where}: header {name}={value!r} breaks {header['schema']}"
            )
    content = documented.get("content", {})
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type in content, f"{where}: content-type {media_type!r} not in {sorted(content)}"
    if media_type != "application/json":
        return response.text
    body = response.json()
    errors = sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}"
        for e in jsonschema.Draft202012Validator(
            json_schema(content[media_type]["schema"])
        ).iter_errors(body)
    )
    assert errors == [], f"{where}: body breaks the contract: {errors}; body {str(body)[:300]}"
    return body


def _path(operation_id: str, **params: str) -> str:
    return OPERATIONS[operation_id].path.format(**params)


def _seed_fields(api: httpx.Client, type_name: str) -> dict[str, Any]:
    """A valid document of ``type_name``: a seeded one's own fields, without id and timestamps."""
    page = api.get(_path("list_dynadata_items", type=type_name), params={"limit": 1}).json()
    assert page["data"], f"the sandbox seeds no {type_name}"
    return {k: v for k, v in page["data"][0].items() if k not in ("_id", "createdAt", "updatedAt")}


def _breaking_value(api: httpx.Client, type_name: str) -> dict[str, Any]:
    """One field set to a value the type's JSON Schema rejects (a number where a string goes)."""
    schema = api.get(_path("get_dynadata_schema", type=type_name)).json()
    for name, prop in schema.get("properties", {}).items():
        if prop.get("type") == "string":
            return {name: 12345}
    pytest.fail(f"{type_name}'s schema has no string property to break")


def _function(api: httpx.Client, type_name: str, scope: str) -> str:
    types = api.get(_path("list_dynadata_types")).json()["data"]
    for entry in types:
        if entry["name"] == type_name:
            for fn in entry.get("functions", []):
                if fn.get("scope", "type") == scope:
                    return str(fn["name"])
    pytest.fail(f"no {scope}-scope function on {type_name}")


def _request(
    api: httpx.Client, operation_id: str, ids: dict[str, str], **kwargs: Any
) -> httpx.Response:
    op = OPERATIONS[operation_id]
    if "requestBody" not in DOC["paths"][op.path][op.method.lower()]:
        kwargs.pop("json", None)
    return api.request(op.method, _path(operation_id, **ids), **kwargs)


# ---- layer 1: representative requests --------------------------------------------------------


def _any_params(sb: SandboxHandle) -> dict[str, str]:
    return {
        "contactId": sb.contact_ids()[0],
        "id": UNKNOWN_ID,
        "type": "clients",
        "_id": sb.contact_ids()[0],
        "functionName": "count",
    }


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_every_operation_refuses_a_missing_or_wrong_key(
    sb: SandboxHandle, api: httpx.Client, operation_id: str
) -> None:
    params = _any_params(sb)
    for headers in ({}, {"x-api-key": "sk-wrong"}):
        api.headers.pop("x-api-key", None)
        response = _request(api, operation_id, params, json={"message": "hi"}, headers=headers)
        assert response.status_code == 401, response.text
        body = conforms(operation_id, response)
        assert body["error"] == "unauthorized"
        assert API_KEY not in response.text


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_a_read_only_key_reads_but_never_writes(
    sb: SandboxHandle, api: httpx.Client, operation_id: str
) -> None:
    api.headers["x-api-key"] = READ_ONLY_KEY
    response = _request(api, operation_id, _any_params(sb), json={"message": "hi"})
    conforms(operation_id, response)
    if OPERATIONS[operation_id].method == "GET":
        assert response.status_code != 403, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"limit": "0"}, 400),
        ({"limit": "-1"}, 400),
        ({"limit": "ten"}, 400),
        ({"skip": "-1"}, 400),
        ({"limit": "1000"}, 200),
        ({"updatedSince": "not a date"}, 400),
    ],
)
def test_paging_parameters_at_and_past_the_edges(
    api: httpx.Client, query: dict[str, str], status: int
) -> None:
    for operation_id in ("list_conversations", "list_dynadata_items"):
        response = _request(api, operation_id, {"type": "clients"}, params=query)
        assert response.status_code == status, (operation_id, query, response.text)
        body = conforms(operation_id, response)
        if status == 200:
            assert body["limit"] <= 100, "the server caps the page at 100"


def test_company_channels_assistants_types(api: httpx.Client) -> None:
    company = conforms("get_self", api.get(_path("get_self")))
    assert company["name"]
    for operation_id in ("list_channels", "list_assistants", "list_dynadata_types"):
        listing = conforms(operation_id, _request(api, operation_id, {}))
        assert listing["total"] == len(listing["data"]) >= 1, operation_id
    names = {t["name"] for t in api.get(_path("list_dynadata_types")).json()["data"]}
    assert {"clients", "orders", "tickets"} <= names


def test_messages_and_conversations(sb: SandboxHandle, api: httpx.Client) -> None:
    contact = sb.contact_ids()[0]
    sent = conforms(
        "send_message",
        api.post(_path("send_message", contactId=contact), json={"message": "Your order shipped"}),
    )
    assert sent["status"] == "sent" and sent["message"] == "Your order shipped"
    conversation_id = sent["conversationId"]
    for body, status in (({"message": ""}, 422), ({}, 422)):
        response = api.post(_path("send_message", contactId=contact), json=body)
        assert response.status_code == status, (body, response.text)
        assert conforms("send_message", response)["issues"], "a 422 names the fields"
    not_json = api.post(
        _path("send_message", contactId=contact),
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 400
    conforms("send_message", not_json)
    missing = api.post(_path("send_message", contactId=UNKNOWN_ID), json={"message": "hi"})
    assert missing.status_code == 404
    conforms("send_message", missing)

    page = conforms(
        "list_conversations", api.get(_path("list_conversations"), params={"contactId": contact})
    )
    assert conversation_id in {c["_id"] for c in page["data"]}
    one = conforms("list_conversations", api.get(_path("list_conversations"), params={"limit": 1}))
    assert len(one["data"]) <= 1 and one["limit"] == 1

    created = api.post(_path("create_conversation"), json={"contactId": sb.contact_ids()[1]})
    assert created.status_code == 201
    conforms("create_conversation", created)
    for body, status in (({}, 422), ({"contactId": UNKNOWN_ID}, 404)):
        response = api.post(_path("create_conversation"), json=body)
        assert response.status_code == status, (body, response.text)
        conforms("create_conversation", response)

    processed = conforms(
        "process_messages",
        api.post(
            _path("process_messages", id=conversation_id),
            json={"messages": [{"role": "user", "message": "Where is it?"}]},
        ),
    )
    assert processed["conversationId"] == conversation_id and processed["messages"]
    for params, body, status in (
        ({"id": UNKNOWN_ID}, {"messages": [{"message": "x"}]}, 404),
        ({"id": conversation_id}, {"messages": []}, 422),
    ):
        response = api.post(_path("process_messages", **params), json=body)
        assert response.status_code == status, (body, response.text)
        conforms("process_messages", response)

    messages = conforms("list_messages", api.get(_path("list_messages", id=conversation_id)))
    assert messages["total"] >= 2
    missing = api.get(_path("list_messages", id=UNKNOWN_ID))
    assert missing.status_code == 404
    conforms("list_messages", missing)


def test_dynadata_items(sb: SandboxHandle, api: httpx.Client) -> None:
    page = conforms("list_dynadata_items", api.get(_path("list_dynadata_items", type="clients")))
    assert page["total"] >= len(page["data"]) >= 1
    for operation_id, params in (
        ("list_dynadata_items", {"type": "nosuchtype"}),
        ("get_dynadata_item", {"type": "clients", "_id": UNKNOWN_ID}),
        ("get_dynadata_item", {"type": "nosuchtype", "_id": UNKNOWN_ID}),
        ("get_dynadata_schema", {"type": "nosuchtype"}),
        ("get_dynadata_zod_schema", {"type": "nosuchtype"}),
    ):
        response = _request(api, operation_id, params)
        assert response.status_code == 404, (operation_id, params, response.text)
        assert conforms(operation_id, response)["error"] == "not_found"

    contact = sb.contact_ids()[0]
    item = conforms(
        "get_dynadata_item", api.get(_path("get_dynadata_item", type="clients", _id=contact))
    )
    assert item["_id"] == contact

    fields = _seed_fields(api, "clients")
    created = api.post(_path("create_dynadata_item", type="clients"), json=fields)
    assert created.status_code == 201, created.text
    new = conforms("create_dynadata_item", created)
    duplicate = api.post(
        _path("create_dynadata_item", type="clients"), json=fields | {"_id": new["_id"]}
    )
    assert duplicate.status_code == 409, duplicate.text
    conforms("create_dynadata_item", duplicate)
    broken = _breaking_value(api, "clients")
    invalid = api.post(_path("create_dynadata_item", type="clients"), json=fields | broken)
    assert invalid.status_code == 422, invalid.text
    issues = conforms("create_dynadata_item", invalid)["issues"]
    assert any(next(iter(broken)) in issue["path"] for issue in issues), issues
    unknown_type = api.post(_path("create_dynadata_item", type="nosuchtype"), json=fields)
    assert unknown_type.status_code == 404
    conforms("create_dynadata_item", unknown_type)

    updated = api.put(_path("update_dynadata_item", type="clients"), json={"_id": new["_id"]})
    conforms("update_dynadata_item", updated)
    assert updated.status_code == 200
    for body, status in (
        ({"_id": UNKNOWN_ID}, 404),
        ({"_id": new["_id"], **broken}, 422),
        (["not", "an", "object"], 400),
    ):
        response = api.put(_path("update_dynadata_item", type="clients"), json=body)
        assert response.status_code == status, (body, response.text)
        conforms("update_dynadata_item", response)

    valid = conforms(
        "validate_dynadata_item",
        api.post(_path("validate_dynadata_item", type="clients"), json=fields),
    )
    assert valid == valid | {"valid": True, "errors": []}
    invalid_result = api.post(_path("validate_dynadata_item", type="clients"), json=fields | broken)
    assert invalid_result.status_code == 200
    assert conforms("validate_dynadata_item", invalid_result)["valid"] is False


def test_dynadata_schemas_and_functions(sb: SandboxHandle, api: httpx.Client) -> None:
    schema = conforms("get_dynadata_schema", api.get(_path("get_dynadata_schema", type="orders")))
    assert schema.get("type") == "object" and schema.get("properties")
    zod = conforms(
        "get_dynadata_zod_schema", api.get(_path("get_dynadata_zod_schema", type="orders"))
    )
    source = zod["zod"] if isinstance(zod, dict) else zod
    assert "z.object(" in source

    type_fn = _function(api, "clients", "type")
    result = conforms(
        "execute_dynadata_function",
        api.post(
            _path("execute_dynadata_function", type="clients", functionName=type_fn),
            json={"args": {}},
        ),
    )
    assert "result" in result
    missing = api.post(
        _path("execute_dynadata_function", type="clients", functionName="noSuchFunction"),
        json={"args": {}},
    )
    assert missing.status_code == 404
    conforms("execute_dynadata_function", missing)

    item_fn = _function(api, "orders", "item")
    order = api.get(_path("list_dynadata_items", type="orders"), params={"limit": 1}).json()["data"]
    order_id = order[0]["_id"] if order else sb.seed_items("orders", 1)[0]
    result = conforms(
        "execute_dynadata_item_function",
        api.post(
            _path(
                "execute_dynadata_item_function", type="orders", _id=order_id, functionName=item_fn
            ),
            json={"args": {}},
        ),
    )
    assert "result" in result
    missing = api.post(
        _path(
            "execute_dynadata_item_function", type="orders", _id=UNKNOWN_ID, functionName=item_fn
        ),
        json={"args": {}},
    )
    assert missing.status_code == 404
    conforms("execute_dynadata_item_function", missing)


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        (FaultConfig(rate_429=1.0, retry_after_seconds=2.0), 429),
        (FaultConfig(error_rate=1.0, error_statuses=(500,)), 500),
        (FaultConfig(error_rate=1.0, error_statuses=(502,)), 502),
        (FaultConfig(error_rate=1.0, error_statuses=(503,), retry_after_on_503=True), 503),
        (FaultConfig(error_rate=1.0, error_statuses=(504,)), 504),
    ],
)
def test_injected_faults_answer_like_the_contract(
    sb: SandboxHandle, api: httpx.Client, faults: FaultConfig, status: int
) -> None:
    sb.set_faults(faults)
    try:
        for operation_id in ("get_self", "list_conversations", "send_message"):
            params = _any_params(sb)
            response = _request(api, operation_id, params, json={"message": "hi"})
            assert response.status_code == status, (operation_id, response.text)
            conforms(operation_id, response)
            if status in (429, 503):
                assert float(response.headers["retry-after"]) > 0
    finally:
        sb.clear_faults()


def test_the_rate_limit_answers_like_the_contract(sb: SandboxHandle, api: httpx.Client) -> None:
    sb.set_faults(FaultConfig(rate_limit_rps=0.5))
    try:
        responses = [api.get(_path("get_self")) for _ in range(4)]
    finally:
        sb.clear_faults()
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    for response in responses:
        conforms("get_self", response)
    assert all(float(r.headers["retry-after"]) > 0 for r in limited)


# ---- layer 2: schemathesis, requests generated from the document ------------------------------

SCHEMA = schemathesis.openapi.from_dict(load_contract())
SCHEMA.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE], max_examples=12)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _real_path_parameters(
    sb: SandboxHandle, api: httpx.Client, operation_id: str
) -> dict[str, str]:
    """Path parameters naming things that exist, so generated requests reach the success paths."""
    path = OPERATIONS[operation_id].path
    params: dict[str, str] = {}
    if "{contactId}" in path:
        params["contactId"] = sb.contact_ids()[0]
    if "{id}" in path:
        sent = api.post(
            _path("send_message", contactId=sb.contact_ids()[0]), json={"message": "seed"}
        )
        params["id"] = sent.json()["conversationId"]
    if "{type}" in path:
        params["type"] = "orders" if "{_id}" in path else "clients"
    if "{_id}" in path:
        params["_id"] = api.get(_path("list_dynadata_items", type=params["type"])).json()["data"][
            0
        ]["_id"]
    if "{functionName}" in path:
        params["functionName"] = _function(
            api, params["type"], "item" if "{_id}" in path else "type"
        )
    return params


def _real_body_ids(sb: SandboxHandle, api: httpx.Client, operation_id: str) -> dict[str, str]:
    """Ids inside request bodies that name things that exist (the rest of the body is generated)."""
    if operation_id == "create_conversation":
        return {"contactId": sb.contact_ids()[2]}
    if operation_id == "update_dynadata_item":
        return {"_id": sb.contact_ids()[3]}
    return {}


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_generated_requests_get_contract_answers(
    sb: SandboxHandle, api: httpx.Client, operation_id: str
) -> None:
    op = OPERATIONS[operation_id]
    operation = SCHEMA[op.path][op.method]
    real = _real_path_parameters(sb, api, operation_id)
    body_ids = _real_body_ids(sb, api, operation_id)
    cases = st.one_of(
        operation.as_strategy(),
        operation.as_strategy(path_parameters=real) if real else st.nothing(),
    )
    statuses: list[int] = []

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, use_real_ids=st.booleans())
    def run(case: schemathesis.Case, use_real_ids: bool) -> None:
        if use_real_ids and body_ids and isinstance(case.body, dict):
            case.body = {**case.body, **body_ids}
        response = case.call_and_validate(
            base_url=sb.base_url, headers={"x-api-key": API_KEY}, checks=CHECKS, timeout=10
        )
        statuses.append(response.status_code)

    run()
    assert statuses, f"{operation_id}: no request was generated"


# ---- webhooks: what the sandbox POSTs follows the x-autotalk-webhooks recipe ---------------------


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, raw))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_deliveries_follow_the_recipe(
    sb: SandboxHandle,
    api: httpx.Client,
    receiver: tuple[str, list[tuple[str, dict[str, str], bytes]]],
) -> None:
    url, received = receiver
    hooks = DOC["x-autotalk-webhooks"]
    secret = "whsec-contract"
    sb.configure_webhook(url, secret, hmac=True)
    try:
        fields = _seed_fields(api, "clients")
        created = api.post(_path("create_dynadata_item", type="clients"), json=fields).json()
        api.post(_path("send_message", contactId=created["_id"]), json={"message": "Welcome"})
        sb.simulate_reply(created["_id"], "Thanks!")
        assert sb.flush_webhooks(timeout=10)
    finally:
        sb.clear_webhook()

    event_schema = jsonschema.Draft202012Validator(json_schema("WebhookEvent"))
    seen = set()
    for path, headers, raw in received:
        event = json.loads(raw)
        assert list(event_schema.iter_errors(event)) == [], event
        assert path == urlsplit(hooks["url"].format(event=event["event"])).path
        for parameter in hooks[event["event"]]["post"]["parameters"]:
            assert parameter["name"] in headers, f"{event['event']}: no {parameter['name']}"
            value = headers[parameter["name"]]
            assert jsonschema.Draft202012Validator(parameter["schema"]).is_valid(value)
        assert headers["x-autotalk-secret"] == secret
        timestamp = headers[hooks["signature"]["timestampHeader"]]
        expected = (
            "sha256="
            + hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        )
        assert headers[hooks["signature"]["header"]] == expected == sign(secret, timestamp, raw)
        seen.add(event["event"])
    assert seen == set(hooks["events"])


# ---- the checkers themselves bite ------------------------------------------------------------


def _fake(status: int, body: Any, headers: dict[str, str]) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1:9/v1/self")
    response = httpx.Response(status, json=body, headers=headers, request=request)
    response.read()
    response.elapsed = timedelta(0)
    return response


@pytest.mark.parametrize(
    ("status", "body", "headers", "problem"),
    [
        (200, {"name": "Acme"}, {"x-request-id": "r1"}, "_id"),
        (200, {"_id": "a" * 24, "name": "Acme"}, {}, "x-request-id"),
        (418, {"error": "teapot", "message": "no"}, {"x-request-id": "r1"}, "undocumented"),
        (401, {"detail": "Not authenticated"}, {"x-request-id": "r1"}, "error"),
        (429, {"error": "rate_limited", "message": "slow"}, {"x-request-id": "r1"}, "Retry-After"),
    ],
)
def test_conformance_checks_catch_a_broken_answer(
    status: int, body: Any, headers: dict[str, str], problem: str
) -> None:
    response = _fake(status, body, headers)
    with pytest.raises(AssertionError, match=problem):
        conforms("get_self", response)
    if status != 418:  # schemathesis only judges the statuses the document declares
        with pytest.raises(FailureGroup):
            SCHEMA["/self"]["GET"].Case().validate_response(response, checks=CHECKS[1:])
    good = _fake(200, {"_id": "a" * 24, "name": "Acme"}, {"x-request-id": "r1"})
    assert conforms("get_self", good)["name"] == "Acme"
