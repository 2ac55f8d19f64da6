"""The admin API under /_sandbox/ (no key), and the handle methods that mirror it."""

from __future__ import annotations

import httpx

from autotalk_prefect.sandbox import SandboxHandle


def test_reset_restores_the_seeded_state(
    sb: SandboxHandle, api: httpx.Client, admin: httpx.Client
) -> None:
    seeded = sb.contact_ids()
    api.post(f"/contacts/{seeded[0]}/send_message", json={"message": "x"})
    api.post("/dynadata/type/clients/create", json={"name": "New", "phone": "+15550001111"})
    assert len(sb.contact_ids()) == len(seeded) + 1
    response = admin.post("/reset")
    assert response.status_code == 200 and response.headers["x-request-id"]
    assert sb.contact_ids() == seeded, "same seed, same ids"
    assert sb.sent_messages() == [] and api.get("/conversations").json()["total"] == 0
    assert admin.post("/reset", json={"seed": 5, "contacts": 3}).json()["contacts"] == 3
    assert len(sb.contact_ids()) == 3 and sb.contact_ids() != seeded[:3]
    sb.reset(seed=0, contacts=25)
    assert sb.contact_ids() == seeded


def test_faults_over_http(sb: SandboxHandle, api: httpx.Client, admin: httpx.Client) -> None:
    assert admin.get("/faults").json()["error_rate"] == 0.0
    put = admin.put("/faults", json={"rate_429": 1.0, "retry_after_seconds": 3, "methods": ["GET"]})
    assert put.status_code == 200 and put.json()["methods"] == ["GET"]
    limited = api.get("/self")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    bad = admin.put("/faults", json={"error_rate": 2})
    assert bad.status_code == 422 and "error_rate" in bad.json()["message"]
    unknown = admin.put("/faults", json={"nope": 1})
    assert unknown.status_code == 422 and "nope" in unknown.json()["message"]
    assert admin.delete("/faults").status_code == 200
    assert api.get("/self").status_code == 200


def test_messages_log_in_order(sb: SandboxHandle, api: httpx.Client, admin: httpx.Client) -> None:
    a, b = sb.contact_ids()[:2]
    for contact, text in ((a, "1"), (b, "2"), (a, "3")):
        api.post(f"/contacts/{contact}/send_message", json={"message": text})
    log = admin.get("/messages").json()
    assert [m["message"] for m in log["data"]] == ["1", "2", "3"] and log["total"] == 3
    assert [
        m["message"] for m in admin.get("/messages", params={"contactId": a}).json()["data"]
    ] == ["1", "3"]
    assert log["data"] == sb.sent_messages()
    assert [m["message"] for m in sb.sent_messages(b)] == ["2"]
    sb.simulate_reply(a, "an inbound reply is not a sent message")
    assert [m["message"] for m in sb.sent_messages(a)] == ["1", "3"]
    assert admin.get("/messages", params={"contactId": "nobody"}).json() == {"data": [], "total": 0}


def test_seed_and_contacts(sb: SandboxHandle, api: httpx.Client, admin: httpx.Client) -> None:
    response = admin.post(
        "/seed", json={"type": "orders", "count": 3, "fields": {"status": "paid"}}
    )
    assert response.status_code == 201
    ids = response.json()["ids"]
    for item_id in ids:
        assert api.get(f"/dynadata/type/orders/item/{item_id}").json()["status"] == "paid"
    assert admin.post("/seed", json={"type": "nope"}).status_code == 404
    invalid = admin.post("/seed", json={"type": "orders", "fields": {"status": "lost"}})
    assert invalid.status_code == 422 and invalid.json()["issues"][0]["path"] == "status"
    assert admin.post("/seed", json={"count": 1}).status_code == 422
    assert admin.get("/contacts").json()["data"] == sb.contact_ids()
    new = sb.seed_items("clients", 2, language="pt")
    assert sb.contact_ids()[-2:] == new


def test_simulate_reply(sb: SandboxHandle, api: httpx.Client, admin: httpx.Client) -> None:
    contact = sb.contact_ids()[4]
    response = admin.post("/simulate/reply", json={"contactId": contact, "text": "STOP"})
    assert response.status_code == 201
    message = response.json()
    assert (message["role"], message["direction"], message["status"]) == (
        "user",
        "inbound",
        "received",
    )
    listed = api.get(f"/conversations/{message['conversationId']}/messages").json()["data"]
    assert [m["message"] for m in listed] == ["STOP"]
    assert sb.sent_messages() == [], "inbound messages are not sends"
    again = sb.simulate_reply(contact, "really")
    assert again["conversationId"] == message["conversationId"]
    assert (
        admin.post("/simulate/reply", json={"contactId": "0" * 24, "text": "x"}).status_code == 404
    )
    assert admin.post("/simulate/reply", json={"contactId": contact}).status_code == 422


def test_stats(sb: SandboxHandle, api: httpx.Client, admin: httpx.Client) -> None:
    api.get("/self")
    api.get("/nope")
    httpx.get(f"{sb.base_url}/self")
    stats = admin.get("/stats").json()
    assert stats["requests"] == 3 and stats["unauthorized"] == 1
    assert stats["by_status"] == {"200": 1, "401": 1, "404": 1}
    (key,) = stats["keys"].values()
    assert key["requests"] == 2 and sum(key["per_second"].values()) == 2
    assert key["max_per_second"] >= 1
    assert sb.api_key not in str(stats)
