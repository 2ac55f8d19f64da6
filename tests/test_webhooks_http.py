"""The receiver over real loopback HTTP (uvicorn) with events checked in the real Prefect API."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prefect.events import Event
from prefect.events.filters import EventFilter, EventIDFilter, EventResourceFilter
from prefect.events.schemas.events import ReceivedEvent
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr
from typer.testing import CliRunner

from autotalk_prefect.webhooks import (
    EventEmitter,
    PrefectApiEmitter,
    WebhookSettings,
    create_webhook_app,
    sign,
)

SECRET = "whsec-http-5c1d2e3f4a"
WAIT_S = 300.0  # the event persister flushes every few seconds; a bound against a hang, not a speed


class RecordingEmitter:
    """Passes events on to ``inner`` (the real Prefect emitter by default) and records them."""

    def __init__(self, inner: EventEmitter | None = None, fail_first: int = 0) -> None:
        self.inner = inner or PrefectApiEmitter()
        self.fail_first = fail_first
        self.events: list[Event] = []
        self.attempts = 0

    async def emit(self, event: Event) -> None:
        self.attempts += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("Prefect is down (injected)")
        await self.inner.emit(event)
        self.events.append(event)


@contextlib.contextmanager
def serve(app: Any, *, access_log: bool = False) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (free port) in a thread that sees this test's Prefect settings."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    level = "info" if access_log else "warning"
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=level, access_log=access_log, lifespan="off")
    )
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(server.run,), kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def settings(**overrides: Any) -> WebhookSettings:
    return WebhookSettings(secret=SecretStr(SECRET), _env_file=None, **overrides)  # type: ignore[call-arg]


class Site:
    """One uvicorn server: a user's FastAPI app with a plain and an HMAC receiver mounted."""

    def __init__(self, url: str, plain: RecordingEmitter, signed: RecordingEmitter) -> None:
        self.url, self.plain, self.signed = url, plain, signed


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    plain, signed = RecordingEmitter(), RecordingEmitter()
    user_app = FastAPI()

    @user_app.get("/mine")
    def mine() -> dict[str, str]:
        return {"app": "user"}

    user_app.mount("/hooks", create_webhook_app(settings(max_body_bytes=4096), plain))
    user_app.mount("/signed", create_webhook_app(settings(hmac=True), signed))
    with serve(user_app) as url:
        yield Site(url, plain, signed)


def recipe(contact: str, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "event": "message.received",
        "occurredAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z",
        "client": {"_id": contact, "name": "Ana Lima", "phone": "+5511999990000"},
        "message": {"_id": f"m{contact}", "conversationId": f"c{contact}", "text": "Oi!"},
        "conversation": {"_id": f"c{contact}"},
        "trigger": {"channel": "ch1"},
        **extra,
    }


def post(
    url: str,
    body: Any,
    *,
    secret: str | None = SECRET,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"content-type": content_type, **(headers or {})}
    if secret is not None:
        all_headers["x-autotalk-secret"] = secret
    return httpx.post(url, content=raw, headers=all_headers, timeout=30)


def signed_headers(raw: bytes, timestamp: int | None = None, key: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"x-autotalk-timestamp": ts, "x-autotalk-signature": sign(key.encode(), ts, raw)}


async def read_events(event_filter: EventFilter) -> list[Any]:
    """The stored events matching ``event_filter``, from the REST API every Prefect 3 serves
    (``PrefectClient.read_events`` is newer than the floor)."""
    body = {"filter": event_filter.model_dump(mode="json"), "limit": 50}
    async with httpx.AsyncClient(base_url=str(PREFECT_API_URL.value()), timeout=30) as client:
        response = await client.post("/events/filter", json=body)
    response.raise_for_status()
    return [ReceivedEvent.model_validate(e) for e in response.json()["events"]]


def wait_for_events(event_filter: EventFilter, count: int) -> list[Any]:
    """Poll the Prefect API until ``count`` events match (bounded)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        events = asyncio.run(read_events(event_filter))
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def by_id(*ids: str) -> EventFilter:
    return EventFilter(id=EventIDFilter(id=[uuid.UUID(i) for i in ids]))


def settle() -> None:
    """Emit a marker event and wait until it is stored; what Prefect took before is stored too.

    This is what makes "no such event" and "only one event" checks meaningful.
    """
    from autotalk_prefect.webhooks import build_event

    marker = build_event("test.marker", {}, f"id:{uuid.uuid4()}")
    asyncio.run(PrefectApiEmitter().emit(marker))
    assert wait_for_events(by_id(str(marker.id)), 1), "the marker event never arrived"


# ---- the good path -------------------------------------------------------------------------


@pytest.mark.floor
def test_good_request_becomes_one_prefect_event(site: Site) -> None:
    contact = uuid.uuid4().hex[:24]
    body = recipe(contact)
    before = len(site.plain.events)

    response = post(f"{site.url}/hooks/autotalk/message.received", body)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] is True and answer["event"] == "autotalk.message.received"
    assert len(site.plain.events) == before + 1
    [stored] = wait_for_events(by_id(answer["eventId"]), 1)
    assert stored.event == "autotalk.message.received"
    assert stored.resource.id == f"autotalk.contact.{contact}"
    assert stored.resource.name == "Ana Lima"
    assert {r.role: r.id for r in stored.related} == {
        "conversation": f"autotalk.conversation.c{contact}",
        "message": f"autotalk.message.m{contact}",
        "channel": "autotalk.channel.ch1",
    }
    assert stored.payload == body
    assert stored.occurred == datetime.fromisoformat(body["occurredAt"].replace("Z", "+00:00"))
    # the user's own routes are untouched by the mounted receiver
    assert httpx.get(f"{site.url}/mine").json() == {"app": "user"}
    assert httpx.get(f"{site.url}/hooks/healthz").json() == {"status": "ok"}


def test_signed_request_is_accepted(site: Site) -> None:
    raw = json.dumps(recipe(uuid.uuid4().hex[:24])).encode()
    response = post(f"{site.url}/signed/autotalk/client.created", raw, headers=signed_headers(raw))
    assert response.status_code == 202, response.text
    assert site.signed.events[-1].event == "autotalk.client.created"


# ---- refusals ------------------------------------------------------------------------------

Case = tuple[str, Callable[[str, dict[str, Any]], httpx.Response], int, str]


def _big_stream(size: int) -> Iterator[bytes]:
    yield b'{"pad": "'
    sent = 0
    while sent < size:
        yield b"x" * 1024
        sent += 1024
    yield b'"}'


CASES: list[Case] = [
    (
        "missing secret",
        lambda url, b: post(f"{url}/hooks/autotalk/message.received", b, secret=None),
        401,
        "unauthorized",
    ),
    (
        "wrong secret",
        lambda url, b: post(f"{url}/hooks/autotalk/message.received", b, secret=SECRET + "x"),
        401,
        "unauthorized",
    ),
    (
        "secret in another header",
        lambda url, b: post(
            f"{url}/hooks/autotalk/message.received",
            b,
            secret=None,
            headers={"authorization": SECRET},
        ),
        401,
        "unauthorized",
    ),
    (
        "multipart content type",
        lambda url, b: post(
            f"{url}/hooks/autotalk/message.received",
            b,
            content_type="multipart/form-data; boundary=x",
        ),
        415,
        "unsupported_media_type",
    ),
    (
        "JSON under a form content type",
        lambda url, b: post(
            f"{url}/hooks/autotalk/message.received",
            b,
            content_type="application/x-www-form-urlencoded",
        ),
        400,
        "bad_request",
    ),
    (
        "wrong secret in the path",
        lambda url, b: post(f"{url}/hooks/autotalk/guess/message.received", b, secret=None),
        401,
        "unauthorized",
    ),
    (
        "malformed JSON",
        lambda url, b: post(f"{url}/hooks/autotalk/message.received", json.dumps(b).encode()[:-1]),
        400,
        "bad_request",
    ),
    (
        "JSON scalar (an array of objects is a delivery of several events)",
        lambda url, b: post(f"{url}/hooks/autotalk/message.received", 42),
        400,
        "bad_request",
    ),
    (
        "bad event name",
        lambda url, b: post(f"{url}/hooks/autotalk/Message%20Received", b),
        404,
        "not_found",
    ),
    (
        "no event name without event_field",
        lambda url, b: post(f"{url}/hooks/autotalk", b),
        404,
        "not_found",
    ),
    (
        "oversized, declared",
        lambda url, b: post(f"{url}/hooks/autotalk/message.received", {**b, "pad": "x" * 5000}),
        413,
        "payload_too_large",
    ),
    (
        "oversized, streamed without Content-Length",
        lambda url, b: httpx.post(
            f"{url}/hooks/autotalk/message.received",
            content=_big_stream(64 * 1024),
            headers={"content-type": "application/json", "x-autotalk-secret": SECRET},
            timeout=30,
        ),
        413,
        "payload_too_large",
    ),
    (
        "unsigned request to the HMAC receiver",
        lambda url, b: post(f"{url}/signed/autotalk/message.received", b),
        401,
        "unauthorized",
    ),
    (
        "bad signature",
        lambda url, b: post(
            f"{url}/signed/autotalk/message.received",
            b,
            headers=signed_headers(json.dumps(b).encode(), key="not-the-secret"),
        ),
        401,
        "unauthorized",
    ),
    (
        "signature over another body",
        lambda url, b: post(
            f"{url}/signed/autotalk/message.received",
            b,
            headers=signed_headers(json.dumps({**b, "id": "other"}).encode()),
        ),
        401,
        "unauthorized",
    ),
    (
        "stale timestamp",
        lambda url, b: post(
            f"{url}/signed/autotalk/message.received",
            b,
            headers=signed_headers(json.dumps(b).encode(), timestamp=int(time.time()) - 3600),
        ),
        401,
        "unauthorized",
    ),
    (
        "signed but without the shared secret",
        lambda url, b: post(
            f"{url}/signed/autotalk/message.received",
            b,
            secret=None,
            headers=signed_headers(json.dumps(b).encode()),
        ),
        401,
        "unauthorized",
    ),
]


def test_refused_requests_answer_clearly_and_never_reach_prefect(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emitted_before = (site.plain.attempts, site.signed.attempts)
    run = uuid.uuid4().hex[:12]
    failures = []
    for i, (name, send, status, code) in enumerate(CASES):
        response = send(site.url, recipe(f"refused{run}{i:02d}"))
        body = response.json()
        if (response.status_code, body.get("error")) != (status, code) or not body.get("message"):
            failures.append(f"{name}: {response.status_code} {response.text[:200]}")
        assert SECRET not in response.text
        assert "sha256=" not in response.text
    assert not failures, failures
    assert (site.plain.attempts, site.signed.attempts) == emitted_before

    settle()
    refused = EventFilter(
        resource=EventResourceFilter(id_prefix=[f"autotalk.contact.refused{run}"])
    )
    assert asyncio.run(read_events(refused)) == []
    for record in caplog.records:
        assert SECRET not in record.getMessage()


def test_replayed_event_id_is_refused_and_stored_once(site: Site) -> None:
    contact = uuid.uuid4().hex[:24]
    body = recipe(contact)
    first = post(f"{site.url}/hooks/autotalk/message.received", body)
    again = post(f"{site.url}/hooks/autotalk/message.received", body)
    same_id_new_body = post(
        f"{site.url}/hooks/autotalk/message.received", {**body, "message": {"text": "changed"}}
    )
    assert first.status_code == 202
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    assert same_id_new_body.status_code == 409

    raw = json.dumps(body).encode()
    signed = f"{site.url}/signed/autotalk/message.received"
    signed_first = post(signed, raw, headers=signed_headers(raw))
    signed_again = post(signed, raw, headers=signed_headers(raw))
    assert (signed_first.status_code, signed_again.status_code) == (202, 409)
    # Another receiver (own replay cache) took the same event: same Prefect id, so Prefect
    # keeps one copy (a redelivery is idempotent on Prefect's side).
    assert signed_first.json()["eventId"] == first.json()["eventId"]
    # without an id (AutoTalk's placeholders carry none) identical bodies are separate events
    no_id = {k: v for k, v in body.items() if k != "id"}
    twice = [post(f"{site.url}/hooks/autotalk/client.created", no_id) for _ in range(2)]
    assert [r.status_code for r in twice] == [202, 202]
    assert twice[0].json()["eventId"] != twice[1].json()["eventId"]

    settle()
    resource = EventFilter(resource=EventResourceFilter(id=[f"autotalk.contact.{contact}"]))
    events = asyncio.run(read_events(resource))
    assert sorted(e.event for e in events) == [
        "autotalk.client.created",
        "autotalk.client.created",
        "autotalk.message.received",
    ]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_workflow_call_with_the_secret_in_the_path(caplog: pytest.LogCaptureFixture) -> None:
    """What an AutoTalk workflow sends: no headers, a form or JSON body, no id."""
    caplog.set_level(logging.DEBUG)
    emitter = RecordingEmitter()
    fields = "client.phone,message.text,event.date"
    app = create_webhook_app(settings(dedupe_fields=fields), emitter)
    phone = f"+55{uuid.uuid4().int % 10**11:011d}"
    form = (
        f"client.name=Ana&client.phone={phone.replace('+', '%2B')}&message.text=yes"
        "&trigger.channel=whatsapp&event.date=2026-11-25"
    ).encode()
    access = _Records()
    with serve(app, access_log=True) as url:
        logging.getLogger("uvicorn.access").addHandler(access)
        try:
            hook = f"{url}/autotalk/{SECRET}/message.received"
            form_type = {"content-type": "application/x-www-form-urlencoded"}
            first = httpx.post(hook, content=form, headers=form_type, timeout=30)
            again = httpx.post(hook, content=form, headers=form_type, timeout=30)
            next_day = httpx.post(
                hook, content=form.replace(b"2026-11-25", b"2026-11-26"), headers=form_type
            )
            plain_text = httpx.post(
                hook,
                content=json.dumps({"client": {"phone": phone}, "message": {"text": "no"}}),
                headers={"content-type": "text/plain"},
                timeout=30,
            )
        finally:
            logging.getLogger("uvicorn.access").removeHandler(access)
    assert [r.status_code for r in (first, again, next_day, plain_text)] == [202, 409, 202, 202]
    ids = [first.json()["eventId"], next_day.json()["eventId"], plain_text.json()["eventId"]]
    stored = wait_for_events(by_id(*ids), 3)
    assert len(stored) == 3
    assert {e.payload["client"]["phone"] for e in stored} == {phone}
    for event in stored:
        assert SECRET not in event.model_dump_json()
    assert len(access.lines) == 4
    assert all("/autotalk/***/message.received" in line for line in access.lines), access.lines
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any("/autotalk/***/message.received" in line for line in ours)
    for line in access.lines + ours:  # (the test's own httpx client logs the URL it calls)
        assert SECRET not in line


# ---- GET and array deliveries --------------------------------------------------------------


@pytest.mark.floor
def test_a_get_delivery_becomes_one_prefect_event(caplog: pytest.LogCaptureFixture) -> None:
    """A workflow step that calls the URL with GET and its placeholders in the query string."""
    caplog.set_level(logging.DEBUG)
    emitter = RecordingEmitter()
    contact = uuid.uuid4().hex[:24]
    query = {
        "id": f"evt_{uuid.uuid4().hex}",
        "client._id": contact,
        "client.name": "Ana Lima",
        "message.text": "Oi!",
        "trigger.channel": "ch1",
    }
    access = _Records()
    with serve(create_webhook_app(settings(), emitter), access_log=True) as url:
        logging.getLogger("uvicorn.access").addHandler(access)
        try:
            by_header = httpx.get(
                f"{url}/autotalk/message.received",
                params=query,
                headers={"x-autotalk-secret": SECRET},
                timeout=30,
            )
            in_path = httpx.get(
                f"{url}/autotalk/{SECRET}/client.created",
                params={**query, "id": f"evt_{uuid.uuid4().hex}"},
                timeout=30,
            )
            secret_in_query = httpx.get(
                f"{url}/autotalk/message.received", params={**query, "secret": SECRET}
            )
            disguised = httpx.get(
                f"{url}/autotalk/{SECRET}/message.received", params={**query, "k": SECRET}
            )
            empty = httpx.get(
                f"{url}/autotalk/message.received", headers={"x-autotalk-secret": SECRET}
            )
        finally:
            logging.getLogger("uvicorn.access").removeHandler(access)
    assert (by_header.status_code, in_path.status_code) == (202, 202), by_header.text
    for refused in (secret_in_query, disguised):
        assert refused.status_code == 400
        assert "must not travel in the query string" in refused.json()["message"]
        assert SECRET not in refused.text
    assert empty.status_code == 400 and "query string" in empty.json()["message"]
    assert len(emitter.events) == 2  # the refused ones never reached Prefect
    [stored] = wait_for_events(by_id(by_header.json()["eventId"]), 1)
    assert stored.event == "autotalk.message.received"
    assert stored.resource.id == f"autotalk.contact.{contact}"
    assert stored.payload == {
        "id": query["id"],
        "client": {"_id": contact, "name": "Ana Lima"},
        "message": {"text": "Oi!"},
        "trigger": {"channel": "ch1"},
    }
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert len(access.lines) == 5
    for line in access.lines + ours:
        assert SECRET not in line and "Ana" not in line, line


@pytest.mark.floor
def test_an_array_is_one_event_per_element_each_deduplicated(site: Site) -> None:
    contacts = [uuid.uuid4().hex[:24] for _ in range(3)]
    first, second, third = (recipe(c) for c in contacts)
    before = len(site.plain.events)
    hook = f"{site.url}/hooks/autotalk/message.received"

    mixed = post(hook, [first, second, first, "not an object", third])

    assert mixed.status_code == 207, mixed.text
    answer = mixed.json()
    assert (answer["accepted"], answer["refused"]) == (3, 2)
    results = answer["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["accepted"] for r in results] == [True, True, False, False, True]
    assert results[2]["status"] == 409 and "already accepted" in results[2]["message"]
    assert (
        results[3]["status"] == 400 and "element 3 must be a JSON object" in results[3]["message"]
    )
    assert len(site.plain.events) == before + 3  # the duplicate and the string never emitted
    ids = [results[i]["eventId"] for i in (0, 1, 4)]
    stored = wait_for_events(by_id(*ids), 3)
    assert sorted(e.resource.id for e in stored) == sorted(
        f"autotalk.contact.{c}" for c in contacts
    )
    assert {e.payload["id"] for e in stored} == {first["id"], second["id"], third["id"]}

    again = post(hook, [first, third])  # a redelivery of the whole array: nothing new
    assert again.status_code == 409, again.text
    assert [r["status"] for r in again.json()["results"]] == [409, 409]

    empty = post(hook, [])
    assert empty.status_code == 400 and "array is empty" in empty.json()["message"]
    only_bad = post(hook, [1, None])
    assert only_bad.status_code == 400 and only_bad.json()["refused"] == 2
    assert len(site.plain.events) == before + 3


@pytest.mark.parametrize("delivery", ["get", "array"])
def test_the_sandbox_posts_each_way_and_each_becomes_an_event(
    autotalk_sandbox: Any, delivery: str
) -> None:
    emitter = RecordingEmitter()
    with serve(create_webhook_app(settings(hmac=True), emitter)) as url:
        autotalk_sandbox.configure_webhook(
            url, SECRET, events=["message.received"], hmac=True, delivery=delivery
        )
        contact = autotalk_sandbox.contact_ids()[0]
        autotalk_sandbox.simulate_reply(contact, "Quero remarcar")
        assert autotalk_sandbox.flush_webhooks(timeout=WAIT_S)
    [delivery_record] = autotalk_sandbox.webhook_deliveries()
    assert delivery_record["method"] == ("GET" if delivery == "get" else "POST")
    assert delivery_record["statusCode"] == 202, delivery_record["response"]
    [event] = emitter.events
    assert event.event == "autotalk.message.received"
    assert event.resource.id == f"autotalk.contact.{contact}"
    assert event.payload["message"]["text"] == "Quero remarcar"
    assert event.payload["id"] == delivery_record["body"]["id"]
    [stored] = wait_for_events(by_id(str(event.id)), 1)
    assert stored.payload == event.payload


# ---- Prefect trouble -----------------------------------------------------------------------


def test_emission_failure_is_503_and_the_retry_is_accepted() -> None:
    emitter = RecordingEmitter(fail_first=1)
    contact = uuid.uuid4().hex[:24]
    body = recipe(contact)
    with serve(create_webhook_app(settings(), emitter)) as url:
        failed = post(f"{url}/autotalk/message.received", body)
        retried = post(f"{url}/autotalk/message.received", body)
    assert failed.status_code == 503
    assert failed.json()["error"] == "unavailable"
    assert failed.headers["retry-after"] == "5"
    assert retried.status_code == 202, "a failed emission must not mark the id as seen"
    # the recorder only records what the real Prefect API confirmed (204)
    assert [str(e.id) for e in emitter.events] == [retried.json()["eventId"]]
    assert emitter.attempts == 2


def test_unreachable_prefect_is_503() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{dead_port}/api"}):
        app = create_webhook_app(settings(emit_timeout_seconds=20))
        with serve(app) as url:
            response = post(f"{url}/autotalk/message.received", recipe("c1"))
            assert httpx.get(f"{url}/healthz").status_code == 200
    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "message": "Prefect did not confirm the event; retry later",
    }


def test_slow_prefect_times_out_as_503() -> None:
    class Hanging:
        async def emit(self, event: Event) -> None:
            await asyncio.sleep(3600)

    with serve(create_webhook_app(settings(emit_timeout_seconds=0.2), Hanging())) as url:
        response = post(f"{url}/autotalk/message.received", recipe("c1"))
    assert response.status_code == 503


# ---- single URL, errors, methods -----------------------------------------------------------


def test_single_url_reads_the_event_from_a_body_field() -> None:
    emitter = RecordingEmitter(inner=_NullEmitter())
    app = create_webhook_app(settings(event_field="meta.event"), emitter)
    with serve(app) as url:
        ok = post(f"{url}/autotalk", {"meta": {"event": "client.created"}, "id": "s1"})
        missing = post(f"{url}/autotalk", {"id": "s2"})
        bad = post(f"{url}/autotalk", {"meta": {"event": "DROP TABLE"}, "id": "s3"})
        clash = post(f"{url}/autotalk/message.received", {"meta": {"event": "x"}, "id": "s4"})
        agree = post(f"{url}/autotalk/x", {"meta": {"event": "x"}, "id": "s5"})
    assert ok.status_code == 202 and ok.json()["event"] == "autotalk.client.created"
    assert (missing.status_code, bad.status_code, clash.status_code) == (400, 400, 400)
    assert "meta.event" in missing.json()["message"]
    assert agree.status_code == 202
    assert [e.event for e in emitter.events] == ["autotalk.client.created", "autotalk.x"]


class _NullEmitter:
    async def emit(self, event: Event) -> None:
        return None


def test_unknown_routes_and_methods_answer_json(site: Site) -> None:
    missing = httpx.get(f"{site.url}/hooks/nope")
    wrong_method = httpx.put(f"{site.url}/hooks/autotalk/message.received")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


# ---- the sandbox as the sender -------------------------------------------------------------


def test_sandbox_reply_arrives_as_a_prefect_event(autotalk_sandbox: Any) -> None:
    emitter = RecordingEmitter()
    with serve(create_webhook_app(settings(hmac=True), emitter)) as url:
        autotalk_sandbox.configure_webhook(url, SECRET, events=["message.received"], hmac=True)
        contact = autotalk_sandbox.contact_ids()[0]
        autotalk_sandbox.simulate_reply(contact, "Quero remarcar")
        assert autotalk_sandbox.flush_webhooks(timeout=WAIT_S)
    [delivery] = autotalk_sandbox.webhook_deliveries()
    assert delivery["statusCode"] == 202 and delivery["attempts"] == 1
    [event] = emitter.events
    assert event.event == "autotalk.message.received"
    assert event.resource.id == f"autotalk.contact.{contact}"
    assert event.payload["message"]["text"] == "Quero remarcar"
    assert event.payload == delivery["body"]


# ---- the command ---------------------------------------------------------------------------


def test_cli_refuses_to_start_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from autotalk_prefect.cli import app

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("AUTOTALK_WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(app, ["webhooks", "--port", "0"])
    assert result.exit_code == 2
    assert "AUTOTALK_WEBHOOK_SECRET" in result.output


def test_cli_serves_the_receiver(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "AUTOTALK_WEBHOOK_SECRET": SECRET,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    exe = Path(sys.executable).with_name("autotalk-prefect")
    proc = subprocess.Popen(
        [str(exe), "webhooks", "--port", str(port), "--dedupe-fields", "client._id"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180  # a bound for a loaded machine; the loop polls
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the receiver did not come up"
            time.sleep(0.2)
        contact = uuid.uuid4().hex[:24]
        response = post(f"http://127.0.0.1:{port}/autotalk/client.created", recipe(contact))
        assert response.status_code == 202, response.text  # 202 only once Prefect said 204
        assert response.json()["event"] == "autotalk.client.created"
        in_path = f"http://127.0.0.1:{port}/autotalk/{SECRET}/client.created"
        no_id = {"client": {"_id": contact}}
        assert post(in_path, no_id, secret=None).status_code == 202
        assert post(in_path, no_id, secret=None).status_code == 409, "--dedupe-fields client._id"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=120)  # Prefect's workers drain before it exits
    assert SECRET not in output
    assert "/autotalk/<event>" in output and "/autotalk/<secret>/<event>" in output
    assert "deduplicated by client._id" in output
    assert '"POST /autotalk/***/client.created HTTP/1.1" 202' in output  # the access log
