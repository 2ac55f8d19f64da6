"""The sandbox's 18 endpoints over real HTTP: happy paths, error paths, paging, filters, schemas."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from autotalk_prefect.sandbox import SandboxHandle

UNKNOWN = "0" * 24
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


def _order(sb: SandboxHandle, api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {
        "clientId": sb.contact_ids()[0],
        "items": [
            {"sku": "A", "quantity": 2, "unitPrice": 5.25},
            {"sku": "B", "quantity": 1, "unitPrice": 1},
        ],
        **fields,
    }
    response = api.post("/dynadata/type/orders/create", json=body)
    assert response.status_code == 201, response.text
    return response.json()


# ---- auth, ids, headers ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "sk-wrong"}, {"x-api-key": ""}])
def test_missing_or_wrong_key_is_401_with_an_error_body(
    sb: SandboxHandle, api: httpx.Client, headers: dict[str, str]
) -> None:
    response = httpx.get(f"{sb.base_url}/self", headers=headers)
    _error(response, 401, "unauthorized")
    assert "sk-test" not in response.text


def test_every_answer_has_a_unique_request_id(api: httpx.Client) -> None:
    ids = {api.get("/self").headers["x-request-id"] for _ in range(3)}
    ids.add(api.get("/no/such/path").headers["x-request-id"])
    assert len(ids) == 4


def test_unknown_path_and_method(api: httpx.Client) -> None:
    _error(api.get("/nope"), 404, "not_found")
    _error(api.delete("/self"), 405, "method_not_allowed")


def test_company_channels_assistants(api: httpx.Client) -> None:
    company = api.get("/self").json()
    assert OBJECT_ID.match(company["_id"]) and company["name"]
    assert TIMESTAMP.match(company["createdAt"])
    for path in ("/integrations/channels", "/assistants"):
        listing = api.get(path).json()
        assert listing["total"] == len(listing["data"]) >= 1
        assert all(OBJECT_ID.match(x["_id"]) for x in listing["data"])
    channels = api.get("/integrations/channels").json()["data"]
    assert {c["type"] for c in channels} >= {"whatsapp", "webchat"}


# ---- messages and conversations --------------------------------------------------------------


def test_send_message_records_it_in_the_open_conversation(
    sb: SandboxHandle, api: httpx.Client
) -> None:
    contact = sb.contact_ids()[3]
    first = api.post(f"/contacts/{contact}/send_message", json={"message": "Hello"})
    assert first.status_code == 201
    sent = first.json()
    assert (sent["status"], sent["direction"], sent["role"]) == ("sent", "outbound", "agent")
    assert sent["contactId"] == contact and OBJECT_ID.match(sent["_id"])
    assert TIMESTAMP.match(sent["createdAt"])
    second = api.post(
        f"/contacts/{contact}/send_message",
        json={"message": "Photo", "mediaUrl": "https://example.com/a.png"},
    ).json()
    assert second["conversationId"] == sent["conversationId"], "same open conversation"
    assert second["mediaUrl"] == "https://example.com/a.png"

    listing = api.get("/conversations", params={"contactId": contact}).json()
    assert [c["_id"] for c in listing["data"]] == [sent["conversationId"]]
    messages = api.get(f"/conversations/{sent['conversationId']}/messages").json()
    assert [m["message"] for m in messages["data"]] == ["Hello", "Photo"]
    assert [m["message"] for m in sb.sent_messages()] == ["Hello", "Photo"]


def test_send_message_errors(sb: SandboxHandle, api: httpx.Client) -> None:
    contact = sb.contact_ids()[0]
    _error(api.post(f"/contacts/{UNKNOWN}/send_message", json={"message": "x"}), 404, "not_found")
    body = _error(api.post(f"/contacts/{contact}/send_message", json={}), 422, "validation_failed")
    assert [i["path"] for i in body["issues"]] == ["message"]
    body = _error(
        api.post(f"/contacts/{contact}/send_message", json={"message": ""}),
        422,
        "validation_failed",
    )
    assert body["issues"][0]["path"] == "message"
    _error(
        api.post(
            f"/contacts/{contact}/send_message",
            content=b"{oops",
            headers={"content-type": "application/json"},
        ),
        400,
        "bad_request",
    )
    _error(api.post(f"/contacts/{contact}/send_message", json=["x"]), 400, "bad_request")
    _error(
        api.post(f"/contacts/{contact}/send_message", json={"message": "x", "channelId": UNKNOWN}),
        404,
        "not_found",
    )
    other = api.post("/conversations", json={"contactId": sb.contact_ids()[1]}).json()
    body = _error(
        api.post(
            f"/contacts/{contact}/send_message",
            json={"message": "x", "conversationId": other["_id"]},
        ),
        422,
        "validation_failed",
    )
    assert body["issues"][0]["path"] == "conversationId"
    assert sb.sent_messages() == []


def test_create_conversation_and_process_messages(sb: SandboxHandle, api: httpx.Client) -> None:
    channels = {c["type"]: c for c in api.get("/integrations/channels").json()["data"]}
    contact = sb.contact_ids()[2]
    with_assistant = api.post(
        "/conversations",
        json={"contactId": contact, "channelId": channels["whatsapp"]["_id"], "subject": "Order"},
    )
    assert with_assistant.status_code == 201
    conversation = with_assistant.json()
    assert conversation["assistantId"] and conversation["status"] == "open"
    result = api.post(
        f"/conversations/{conversation['_id']}/messages",
        json={"messages": [{"role": "user", "message": "Where is my order?"}]},
    ).json()
    assert result["conversationId"] == conversation["_id"]
    assert [m["role"] for m in result["messages"]] == ["user", "assistant"]
    assert "Where is my order?" in result["messages"][1]["message"]
    again = api.post(
        f"/conversations/{conversation['_id']}/messages",
        json={"messages": [{"role": "user", "message": "Where is my order?"}]},
    ).json()
    assert again["messages"][1]["message"] == result["messages"][1]["message"], "deterministic"

    plain = api.post(
        "/conversations", json={"contactId": contact, "channelId": channels["webchat"]["_id"]}
    ).json()
    result = api.post(
        f"/conversations/{plain['_id']}/messages",
        json={"messages": [{"role": "agent", "message": "a"}, {"message": "b"}]},
    ).json()
    assert [(m["role"], m["direction"]) for m in result["messages"]] == [
        ("agent", "outbound"),
        ("user", "inbound"),
    ], "no assistant attached, no reply"


def test_conversation_errors(sb: SandboxHandle, api: httpx.Client) -> None:
    body = _error(api.post("/conversations", json={}), 422, "validation_failed")
    assert body["issues"][0]["path"] == "contactId"
    _error(api.post("/conversations", json={"contactId": UNKNOWN}), 404, "not_found")
    contact = sb.contact_ids()[0]
    _error(
        api.post("/conversations", json={"contactId": contact, "assistantId": UNKNOWN}),
        404,
        "not_found",
    )
    _error(
        api.post(f"/conversations/{UNKNOWN}/messages", json={"messages": [{"message": "x"}]}),
        404,
        "not_found",
    )
    conversation = api.post("/conversations", json={"contactId": contact}).json()["_id"]
    for bad, path in (
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "boss", "message": "x"}]}, "messages.0.role"),
    ):
        body = _error(
            api.post(f"/conversations/{conversation}/messages", json=bad), 422, "validation_failed"
        )
        assert body["issues"][0]["path"] == path
    _error(api.get(f"/conversations/{UNKNOWN}/messages"), 404, "not_found")


def test_conversation_filters(sb: SandboxHandle, api: httpx.Client) -> None:
    a, b = sb.contact_ids()[:2]
    api.post(f"/contacts/{a}/send_message", json={"message": "1"})
    cursor = api.get("/conversations").json()["data"][0]["updatedAt"]
    api.post(f"/contacts/{b}/send_message", json={"message": "2"})
    assert api.get("/conversations").json()["total"] == 2
    assert api.get("/conversations", params={"contactId": b}).json()["total"] == 1
    assert api.get("/conversations", params={"status": "open"}).json()["total"] == 2
    assert api.get("/conversations", params={"status": "closed"}).json()["total"] == 0
    since = api.get("/conversations", params={"updatedSince": cursor}).json()
    assert since["total"] >= 1 and all(c["updatedAt"] >= cursor for c in since["data"])
    later = api.get("/conversations", params={"updatedSince": "2999-01-01T00:00:00+00:00"}).json()
    assert later["total"] == 0
    _error(api.get("/conversations", params={"status": "weird"}), 400, "bad_request")
    _error(api.get("/conversations", params={"updatedSince": "yesterday"}), 400, "bad_request")


# ---- pagination ------------------------------------------------------------------------------


def test_pagination_default_cap_and_slices(sb: SandboxHandle, api: httpx.Client) -> None:
    sb.seed_items("clients", 175)
    total = 25 + 175
    first = api.get("/dynadata/type/clients/list").json()
    assert (len(first["data"]), first["total"], first["limit"], first["skip"]) == (20, total, 20, 0)
    capped = api.get("/dynadata/type/clients/list", params={"limit": 1000}).json()
    assert capped["limit"] == 100 and len(capped["data"]) == 100
    seen: list[str] = []
    skip = 0
    while True:
        page = api.get("/dynadata/type/clients/list", params={"limit": 33, "skip": skip}).json()
        if not page["data"]:
            break
        seen += [item["_id"] for item in page["data"]]
        skip += len(page["data"])
    assert seen == sb.contact_ids() and len(set(seen)) == total
    for params in ({"limit": 0}, {"limit": "x"}, {"skip": -1}):
        _error(api.get("/dynadata/type/clients/list", params=params), 400, "bad_request")


def test_message_pagination(sb: SandboxHandle, api: httpx.Client) -> None:
    contact = sb.contact_ids()[0]
    for n in range(25):
        conversation = api.post(
            f"/contacts/{contact}/send_message", json={"message": f"m{n}"}
        ).json()["conversationId"]
    page = api.get(
        f"/conversations/{conversation}/messages", params={"limit": 10, "skip": 20}
    ).json()
    assert [m["message"] for m in page["data"]] == [f"m{n}" for n in range(20, 25)]
    assert page["total"] == 25


# ---- dynadata ----------------------------------------------------------------------------------


def test_types_list_schemas_and_functions(api: httpx.Client) -> None:
    types = {t["name"]: t for t in api.get("/dynadata/types").json()["data"]}
    assert {"clients", "orders", "tickets"} <= set(types)
    assert types["clients"]["builtIn"] is True
    scopes = {(t, f["name"]): f["scope"] for t, info in types.items() for f in info["functions"]}
    assert scopes[("clients", "count")] == "type" and scopes[("orders", "total")] == "item"
    assert scopes[("tickets", "close")] == "item"
    for name in ("clients", "orders", "tickets"):
        schema = api.get(f"/dynadata/type/{name}/schema").json()
        assert schema["type"] == "object" and schema["required"]
        zod = api.get(f"/dynadata/type/{name}/schema/zod").json()
        assert zod["type"] == name and "z.object(" in zod["zod"]
        for field in schema["properties"]:
            assert f'"{field}":' in zod["zod"]
    _error(api.get("/dynadata/type/nope/schema"), 404, "not_found")
    _error(api.get("/dynadata/type/nope/schema/zod"), 404, "not_found")


def test_item_create_get_update_validate(sb: SandboxHandle, api: httpx.Client) -> None:
    created = api.post(
        "/dynadata/type/clients/create", json={"name": "Zed", "phone": "+15551234567"}
    )
    assert created.status_code == 201
    item = created.json()
    assert OBJECT_ID.match(item["_id"]) and item["status"] == "lead", "schema default applied"
    assert item["createdAt"] == item["updatedAt"] and TIMESTAMP.match(item["createdAt"])
    assert api.get(f"/dynadata/type/clients/item/{item['_id']}").json() == item
    assert item["_id"] in sb.contact_ids()

    updated = api.put(
        "/dynadata/type/clients/update", json={"_id": item["_id"], "status": "active"}
    ).json()
    assert updated["name"] == "Zed" and updated["status"] == "active", "fields merged"
    assert updated["createdAt"] == item["createdAt"] and updated["updatedAt"] >= item["updatedAt"]

    own_id = "a" * 24
    assert (
        api.post(
            "/dynadata/type/tickets/create",
            json={"_id": own_id, "clientId": item["_id"], "subject": "Hi"},
        ).json()["_id"]
        == own_id
    )
    duplicate = api.post(
        "/dynadata/type/tickets/create",
        json={"_id": own_id, "clientId": item["_id"], "subject": "x"},
    )
    _error(duplicate, 409, "conflict")

    valid = api.post("/dynadata/type/clients/validate", json={"name": "A", "phone": "+15550000000"})
    assert valid.json() == {"valid": True, "errors": []}
    invalid = api.post("/dynadata/type/clients/validate", json={"name": "A", "phone": "12"})
    assert invalid.status_code == 200
    assert invalid.json()["valid"] is False and invalid.json()["errors"][0]["path"] == "phone"


@pytest.mark.parametrize(
    ("type_name", "body", "paths"),
    [
        ("clients", {"phone": "+15551234567"}, ["name"]),
        ("clients", {"name": "A", "phone": "+15551234567", "status": "vip"}, ["status"]),
        ("clients", {"name": "A", "phone": "+15551234567", "shoeSize": 42}, ["shoeSize"]),
        (
            "orders",
            {"clientId": UNKNOWN, "items": [{"sku": "A", "quantity": 0, "unitPrice": 1}]},
            ["items.0.quantity"],
        ),
        ("tickets", {"clientId": "short"}, ["clientId", "subject"]),
    ],
)
def test_schema_enforced_on_create_naming_the_field(
    api: httpx.Client, type_name: str, body: dict[str, Any], paths: list[str]
) -> None:
    response = api.post(f"/dynadata/type/{type_name}/create", json=body)
    issues = _error(response, 422, "validation_failed")["issues"]
    assert sorted(i["path"] for i in issues) == sorted(paths)
    assert all(i["message"] for i in issues)


def test_update_validates_the_merged_item(sb: SandboxHandle, api: httpx.Client) -> None:
    contact = sb.contact_ids()[0]
    before = api.get(f"/dynadata/type/clients/item/{contact}").json()
    body = _error(
        api.put("/dynadata/type/clients/update", json={"_id": contact, "email": 7}),
        422,
        "validation_failed",
    )
    assert body["issues"][0]["path"] == "email"
    assert api.get(f"/dynadata/type/clients/item/{contact}").json() == before, "not stored"
    _error(api.put("/dynadata/type/clients/update", json={"_id": UNKNOWN}), 404, "not_found")
    _error(api.put("/dynadata/type/clients/update", json={"name": "x"}), 422, "validation_failed")
    _error(api.put("/dynadata/type/nope/update", json={"_id": contact}), 404, "not_found")


def test_item_errors(api: httpx.Client) -> None:
    _error(api.get("/dynadata/type/nope/list"), 404, "not_found")
    _error(api.get("/dynadata/type/clients/item/" + UNKNOWN), 404, "not_found")
    _error(api.get("/dynadata/type/nope/item/" + UNKNOWN), 404, "not_found")
    _error(api.post("/dynadata/type/nope/create", json={}), 404, "not_found")
    _error(api.post("/dynadata/type/nope/validate", json={}), 404, "not_found")
    _error(api.post("/dynadata/type/clients/create", content=b"nope"), 400, "bad_request")


def test_list_filters(sb: SandboxHandle, api: httpx.Client) -> None:
    vip = sb.seed_items("clients", 3, status="blocked", tags=["vip", "zz-filter"])
    page = api.get("/dynadata/type/clients/list", params={"status": "blocked"}).json()
    assert [i["_id"] for i in page["data"]] == vip and page["total"] == 3
    tagged = api.get("/dynadata/type/clients/list", params={"tags": "zz-filter"}).json()
    assert tagged["total"] == 3
    assert api.get("/dynadata/type/clients/list", params={"nosuchfield": "1"}).json()["total"] == 0
    cursor = api.get(f"/dynadata/type/clients/item/{vip[0]}").json()["updatedAt"]
    api.put("/dynadata/type/clients/update", json={"_id": sb.contact_ids()[0], "notes": "touched"})
    since = api.get(
        "/dynadata/type/clients/list", params={"updatedSince": cursor, "limit": 100}
    ).json()
    ids = {i["_id"] for i in since["data"]}
    assert set(vip) | {sb.contact_ids()[0]} <= ids
    assert all(i["updatedAt"] >= cursor for i in since["data"])
    order = _order(sb, api)
    by_number = api.get("/dynadata/type/orders/list", params={"clientId": order["clientId"]}).json()
    assert order["_id"] in {o["_id"] for o in by_number["data"]}


def test_functions_run_for_real(sb: SandboxHandle, api: httpx.Client) -> None:
    count = api.post("/dynadata/type/clients/executeFunction/count", json={"args": {}}).json()
    assert count == {"result": 25}
    by_status = api.post("/dynadata/type/clients/executeFunction/countByStatus", json={}).json()
    assert sum(by_status["result"].values()) == 25
    active = api.post(
        "/dynadata/type/clients/executeFunction/count", json={"args": {"status": "active"}}
    ).json()["result"]
    assert active == by_status["result"].get("active", 0)

    order = _order(sb, api)
    total = api.post(f"/dynadata/type/orders/item/{order['_id']}/executeFunction/total").json()
    assert total == {"result": 11.5}
    ticket = api.post(
        "/dynadata/type/tickets/create", json={"clientId": order["clientId"], "subject": "Late"}
    ).json()
    closed = api.post(
        f"/dynadata/type/tickets/item/{ticket['_id']}/executeFunction/close",
        json={"args": {"resolution": "refunded"}},
    )
    assert closed.status_code == 200
    stored = api.get(f"/dynadata/type/tickets/item/{ticket['_id']}").json()
    assert (stored["status"], stored["resolution"]) == ("closed", "refunded")
    tags = api.post(
        f"/dynadata/type/clients/item/{order['clientId']}/executeFunction/addTag",
        json={"args": {"tag": "returning"}},
    ).json()["result"]
    assert "returning" in tags


def test_function_errors(sb: SandboxHandle, api: httpx.Client) -> None:
    _error(api.post("/dynadata/type/clients/executeFunction/nope", json={}), 404, "not_found")
    _error(api.post("/dynadata/type/nope/executeFunction/count", json={}), 404, "not_found")
    _error(
        api.post(f"/dynadata/type/orders/item/{UNKNOWN}/executeFunction/total", json={}),
        404,
        "not_found",
    )
    order = _order(sb, api, status="delivered")
    _error(
        api.post(f"/dynadata/type/orders/item/{order['_id']}/executeFunction/count", json={}),
        404,
        "not_found",
    )
    body = _error(
        api.post("/dynadata/type/clients/executeFunction/findByPhone", json={"args": {}}),
        422,
        "validation_failed",
    )
    assert body["issues"][0]["path"] == "args.phone"
    _error(
        api.post("/dynadata/type/clients/executeFunction/count", json={"args": [1]}),
        422,
        "validation_failed",
    )
    _error(
        api.post(f"/dynadata/type/orders/item/{order['_id']}/executeFunction/cancel", json={}),
        422,
        "validation_failed",
    )


# ---- determinism and concurrency -------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data() -> None:
    from autotalk_prefect.sandbox import create_app

    def snapshot(seed: int) -> list[dict[str, Any]]:
        state = create_app(seed=seed, contacts=5).runtime.state
        return [
            {k: v for k, v in state.get_item("clients", i).items() if not k.endswith("At")}
            for i in state.contact_ids()
        ]

    assert snapshot(1) == snapshot(1)
    assert snapshot(1) != snapshot(2)


def test_concurrent_sends_are_all_recorded_once(sb: SandboxHandle, api: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    contacts = sb.contact_ids()[:4]

    def send(n: int) -> str:
        with httpx.Client(base_url=sb.base_url, headers={"x-api-key": sb.api_key}) as client:
            response = client.post(
                f"/contacts/{contacts[n % 4]}/send_message", json={"message": f"m{n}"}
            )
            assert response.status_code == 201, response.text
            return str(response.json()["_id"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(send, range(80)))
    assert len(set(ids)) == 80
    assert sorted(m["_id"] for m in sb.sent_messages()) == sorted(ids)
    conversations = api.get("/conversations", params={"limit": 100}).json()
    assert conversations["total"] == 4, "one open conversation per contact, even under races"


@pytest.mark.parametrize("seed", [1, 7])
def test_every_generated_item_is_valid_against_its_schema(seed: int) -> None:
    """Seeding checks only the first generated item of a batch: the generator must never
    produce an item its type's schema refuses."""
    import random

    from autotalk_prefect.sandbox.schemas import apply_defaults, validation_issues, validator_for
    from autotalk_prefect.sandbox.seed import generate_item
    from autotalk_prefect.sandbox.state import TYPES, SandboxState

    state = SandboxState(seed=seed, contacts=50)
    rng = random.Random(seed)
    for type_name in TYPES:
        info = state.type_info(type_name)
        validator = validator_for(info.schema)
        for _ in range(400):
            doc = apply_defaults(info.schema, generate_item(state, type_name, rng))
            assert validation_issues(validator, doc) == [], (type_name, doc)
