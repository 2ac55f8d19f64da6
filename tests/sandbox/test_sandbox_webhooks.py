"""Outgoing webhooks delivered to a tiny local receiver: paths, bodies, secret, HMAC, retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from autotalk_prefect.sandbox import SandboxHandle

SECRET = "whsec-test"


class Receiver:
    """Records every POST; answers ``fail_first`` 500s before succeeding."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_first = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "raw": raw}
                )
                status = 500 if receiver.fail_first > 0 else 204
                receiver.fail_first -= 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _events(receiver: Receiver) -> list[tuple[str, dict[str, Any]]]:
    return [(c["path"], json.loads(c["raw"])) for c in receiver.calls]


def test_events_reach_the_receiver_with_the_secret(
    sb: SandboxHandle, api: httpx.Client, receiver: Receiver
) -> None:
    sb.configure_webhook(receiver.url, SECRET)
    created = api.post(
        "/dynadata/type/clients/create", json={"name": "Hook", "phone": "+15550002222"}
    ).json()
    sent = api.post(f"/contacts/{created['_id']}/send_message", json={"message": "hi"}).json()
    reply = sb.simulate_reply(created["_id"], "thanks!")
    assert sb.flush_webhooks(10)

    events = _events(receiver)
    assert [path for path, _ in events] == [
        "/hooks/autotalk/client.created",
        "/hooks/autotalk/conversation.opened",
        "/hooks/autotalk/message.received",
    ]
    bodies = {body["event"]: body for _, body in events}
    assert bodies["client.created"]["client"] == {
        "_id": created["_id"],
        "name": "Hook",
        "phone": "+15550002222",
    }
    assert bodies["conversation.opened"]["conversation"]["_id"] == sent["conversationId"]
    received = bodies["message.received"]
    assert received["message"] == {
        "_id": reply["_id"],
        "conversationId": sent["conversationId"],
        "text": "thanks!",
    }
    assert received["trigger"]["channel"] == sent["channelId"]
    assert len({body["id"] for _, body in events}) == 3
    assert all(body["occurredAt"].endswith("Z") for _, body in events)
    for call in receiver.calls:
        assert call["headers"]["x-autotalk-secret"] == SECRET
        assert "x-autotalk-signature" not in call["headers"]

    deliveries = sb.webhook_deliveries()
    assert [(d["event"], d["statusCode"], d["attempts"], d["delivered"]) for d in deliveries] == [
        ("client.created", 204, 1, True),
        ("conversation.opened", 204, 1, True),
        ("message.received", 204, 1, True),
    ]
    assert SECRET not in str(deliveries)


def test_hmac_signature_verifies(sb: SandboxHandle, api: httpx.Client, receiver: Receiver) -> None:
    sb.configure_webhook(receiver.url, SECRET, events=["message.received"], hmac=True)
    sb.simulate_reply(sb.contact_ids()[0], "signed")
    assert sb.flush_webhooks(10)
    (call,) = receiver.calls  # conversation.opened was not subscribed
    timestamp = call["headers"]["x-autotalk-timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + call["raw"], hashlib.sha256)
    assert call["headers"]["x-autotalk-signature"] == "sha256=" + expected.hexdigest()
    assert json.loads(call["raw"])["message"]["text"] == "signed"


def test_failed_deliveries_are_retried_and_recorded(
    sb: SandboxHandle, api: httpx.Client, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    sb.configure_webhook(receiver.url, SECRET, events=["message.received"])
    sb.simulate_reply(sb.contact_ids()[0], "retry me")
    assert sb.flush_webhooks(10)
    (delivery,) = sb.webhook_deliveries()
    assert (delivery["attempts"], delivery["statusCode"], delivery["delivered"]) == (2, 204, True)

    receiver.fail_first = 10
    sb.simulate_reply(sb.contact_ids()[0], "give up")
    assert sb.flush_webhooks(10)
    last = sb.webhook_deliveries()[-1]
    assert (last["attempts"], last["statusCode"], last["delivered"]) == (3, 500, False)


def test_webhook_admin_api(sb: SandboxHandle, api: httpx.Client, receiver: Receiver) -> None:
    admin = f"{sb.root_url}/_sandbox"
    put = httpx.put(
        f"{admin}/webhook",
        json={"url": receiver.url, "secret": SECRET, "events": ["message.received"], "hmac": True},
    )
    assert put.status_code == 200 and put.json() == {
        "url": receiver.url,
        "events": ["message.received"],
        "hmac": True,
        "delivery": "post",
    }
    assert SECRET not in httpx.get(f"{admin}/webhook").text
    reply = httpx.post(
        f"{admin}/simulate/reply", json={"contactId": sb.contact_ids()[1], "text": "yo"}
    )
    assert reply.status_code == 201
    assert sb.flush_webhooks(10)
    deliveries = httpx.get(f"{admin}/webhook/deliveries").json()
    assert deliveries["total"] == 1 and deliveries["data"][0]["delivered"] is True
    bad = httpx.put(
        f"{admin}/webhook", json={"url": receiver.url, "secret": SECRET, "events": ["x"]}
    )
    assert bad.status_code == 422 and bad.json()["issues"][0]["path"] == "events"
    bad_way = httpx.put(
        f"{admin}/webhook", json={"url": receiver.url, "secret": SECRET, "delivery": "put"}
    )
    assert bad_way.status_code == 422 and bad_way.json()["issues"][0]["path"] == "delivery"
    assert httpx.delete(f"{admin}/webhook").status_code == 200
    sb.simulate_reply(sb.contact_ids()[1], "nobody listens")
    assert sb.flush_webhooks(10) and len(receiver.calls) == 1
