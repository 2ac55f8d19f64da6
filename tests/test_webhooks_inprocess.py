"""The receiver in-process (httpx ASGITransport): fuzzing, and how much of a body it ever reads."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st
from prefect.events import Event
from pydantic import SecretStr

from autotalk_prefect.webhooks import WebhookSettings, create_webhook_app, sign

SECRET = "whsec-fuzz-0a1b2c3d"
ALLOWED = {202, 207, 400, 401, 404, 405, 409, 413, 415}  # 207: an array, partly refused


class Recorder:
    """An in-process emitter: records what it is given (Prefect stays out of the fuzz loop)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("httpx"):
            return  # the test's own client logs the URL it calls (the sender's side)
        self.messages.append(record.getMessage())


def make_settings(**overrides: Any) -> WebhookSettings:
    return WebhookSettings(secret=SecretStr(SECRET), _env_file=None, **overrides)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def log_lines() -> Iterator[list[str]]:
    handler = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.messages
    root.removeHandler(handler)
    root.setLevel(old_level)


# ---- strategies ----------------------------------------------------------------------------

latin1_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)
ids = st.one_of(st.none(), st.integers(), st.text(max_size=30), st.sampled_from(["evt_1", "a"]))
recipes = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "event": st.one_of(st.sampled_from(["message.received", "client.created"]), st.text()),
        "occurredAt": st.one_of(st.text(max_size=30), st.just("2026-11-25T10:00:00.000Z")),
        "client": st.one_of(
            json_values, st.fixed_dictionaries({"_id": ids, "name": st.one_of(ids, json_values)})
        ),
        "message": st.one_of(
            json_values,
            st.fixed_dictionaries({"_id": ids, "conversationId": ids, "text": st.text()}),
        ),
        "conversation": st.one_of(json_values, st.fixed_dictionaries({"_id": ids})),
        "item": st.one_of(json_values, st.fixed_dictionaries({"_id": ids, "type": ids})),
        "trigger": st.one_of(json_values, st.fixed_dictionaries({"channel": ids})),
    },
)


def mostly(good: st.SearchStrategy[Any], *bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good``, sometimes one of ``bad``: so the accepted path is fuzzed as well."""
    either = st.one_of(*bad)
    return st.integers(0, 7).flatmap(lambda i: either if i == 7 else good)


bodies = mostly(
    recipes.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),
    recipes.map(lambda v: json.dumps({**v, "pad": "x" * 3000}).encode()),
    st.lists(st.one_of(recipes, json_values), max_size=4).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b'{"a": NaN}', b'{"a": "\\ud800"}', b"[" * 5000, b'{"a": 1e999}']),
)
secrets = mostly(
    st.just(SECRET), st.none(), st.just(SECRET + " "), st.just(SECRET[:-1]), latin1_text
)
content_types = mostly(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]),
    st.none(),
    st.sampled_from(
        [
            "application/cloudevents+json",
            "multipart/form-data",
            "text/plain",
            "",
            "application/x-www-form-urlencoded",
        ]
    ),
    latin1_text,
)
events = mostly(
    st.sampled_from(["message.received", "client.created"]),
    st.none(),
    st.sampled_from(["", "Upper", "a" * 65, "../x", "a.b-c_d"]),
    st.text(max_size=70),
)
timestamps = mostly(st.just("now"), st.none(), st.just("stale"), latin1_text)
signatures = mostly(st.just("good"), st.none(), st.just("sha256=" + "0" * 64), latin1_text)
methods = mostly(st.just("POST"), st.sampled_from(["GET", "PUT", "DELETE"]))
placements = st.sampled_from(["header", "path"])


_RECEIVERS: dict[bool, tuple[Any, Recorder]] = {}


def receivers(hmac_on: bool) -> tuple[Any, Recorder]:
    if hmac_on not in _RECEIVERS:
        recorder = Recorder()
        config = make_settings(hmac=hmac_on, max_body_bytes=2048, event_field="event")
        _RECEIVERS[hmac_on] = (create_webhook_app(config, recorder), recorder)
    return _RECEIVERS[hmac_on]


def build_request(
    secret: str | None,
    content_type: str | None,
    event: str | None,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    placement: str = "header",
) -> tuple[str, list[tuple[bytes, bytes]]]:
    path = "/autotalk" if event is None else "/autotalk/" + quote(event, safe="")
    headers: list[tuple[bytes, bytes]] = []
    if placement == "path" and secret and event is not None:
        path = "/autotalk/" + quote(secret, safe="") + "/" + quote(event, safe="")
    elif secret is not None:
        headers.append((b"x-autotalk-secret", secret.encode("latin-1")))
    if content_type is not None:
        headers.append((b"content-type", content_type.encode("latin-1")))
    now = str(int(time.time()))
    ts = {"now": now, "stale": str(int(time.time()) - 10_000)}.get(timestamp or "", timestamp)
    if ts is not None:
        headers.append((b"x-autotalk-timestamp", ts.encode("latin-1")))
    if signature == "good":
        signed_ts = ts if ts is not None and ts.isascii() else now
        signature = sign(SECRET.encode(), signed_ts, body)
    if signature is not None:
        headers.append((b"x-autotalk-signature", signature.encode("latin-1")))
    return path, headers


@pytest.mark.parametrize("hmac_on", [False, True], ids=["secret", "secret+hmac"])
@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=methods,
    secret=secrets,
    content_type=content_types,
    event=events,
    body=bodies,
    timestamp=timestamps,
    signature=signatures,
    placement=placements,
)
def test_fuzzed_requests_never_500_and_strangers_never_emit(
    loop: asyncio.AbstractEventLoop,
    log_lines: list[str],
    hmac_on: bool,
    method: str,
    secret: str | None,
    content_type: str | None,
    event: str | None,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    placement: str,
) -> None:
    app, recorder = receivers(hmac_on)  # shared across examples, so replays (409) occur too
    before = len(recorder.events)
    path, headers = build_request(
        secret, content_type, event, body, timestamp, signature, placement
    )

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            request = client.build_request(method, path, content=body)
            for name, value in headers:
                request.headers[name.decode()] = value.decode("latin-1")
            return await client.send(request)

    response = loop.run_until_complete(call())
    tally(f"status {response.status_code}")

    assert response.status_code in ALLOWED, (response.status_code, response.text)
    payload = response.json()
    assert SECRET not in response.text
    if response.status_code in (202, 207):
        assert secret == SECRET, "accepted without the shared secret"
        emitted = [str(e.id) for e in recorder.events[before:]]
        if "results" in payload:  # a JSON array: one result per element
            accepted = [r["eventId"] for r in payload["results"] if r["accepted"]]
            assert payload["accepted"] == len(accepted) >= 1 and emitted == accepted
        else:
            assert response.status_code == 202 and payload["accepted"] is True
            assert emitted == [payload["eventId"]]
        if hmac_on:
            assert (signature, timestamp) == ("good", "now"), "accepted without a valid signature"
    else:
        assert {"error", "message"} <= set(payload) and payload["message"]
        assert set(payload) - {"error", "message"} <= {"accepted", "refused", "results"}
        assert payload.get("accepted", 0) == 0
        assert len(recorder.events) == before
    if secret != SECRET and response.status_code != 405:
        assert response.status_code in (401, 404), "a stranger learned more than 401/404"
    assert not [line for line in log_lines if SECRET in line][:3]
    assert not any(quote(SECRET, safe="") in line for line in log_lines)


# ---- how AutoTalk workflows call the receiver ----------------------------------------------


def call(
    loop: asyncio.AbstractEventLoop,
    app: Any,
    path: str,
    content: bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return await client.post(path, content=content, headers=headers or {})

    return loop.run_until_complete(go())


WORKFLOW_BODY = {
    "client": {"name": "Ana Lima", "phone": "+5511999990000", "email": "ana@example.com"},
    "message": {"text": "yes"},
    "trigger": {"channel": "whatsapp"},
    "event": {"date": "2026-11-25"},
    "employee": {"name": "Bruno"},
}


def test_secret_in_the_path_content_types_and_forms(
    loop: asyncio.AbstractEventLoop, log_lines: list[str]
) -> None:
    recorder = Recorder()
    app = create_webhook_app(make_settings(), recorder)
    url = f"/autotalk/{SECRET}/message.received"
    raw = json.dumps(WORKFLOW_BODY).encode()
    form = (
        b"client.name=Ana+Lima&client.phone=%2B5511999990000&message.text=yes"
        b"&trigger.channel=whatsapp&event.date=2026-11-25"
    )
    answers = [
        call(loop, app, url, raw),  # no content type at all
        call(loop, app, url, raw, {"content-type": "text/plain"}),
        call(loop, app, url, raw, {"content-type": "application/json"}),
        call(loop, app, url, form, {"content-type": "application/x-www-form-urlencoded"}),
    ]
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    assert [e.payload for e in recorder.events[:3]] == [WORKFLOW_BODY] * 3
    assert recorder.events[3].payload == {
        "client": {"name": "Ana Lima", "phone": "+5511999990000"},
        "message": {"text": "yes"},
        "trigger": {"channel": "whatsapp"},
        "event": {"date": "2026-11-25"},
    }
    assert [e.related[0].id for e in recorder.events] == ["autotalk.channel.whatsapp"] * 4
    # identical id-less deliveries are four events with four ids: nothing real is dropped
    assert len({str(e.id) for e in recorder.events}) == 4
    for event in recorder.events:
        assert SECRET not in event.model_dump_json()

    refused = {
        "wrong path secret": call(loop, app, "/autotalk/guess/message.received", raw),
        "header secret but wrong path secret": call(
            loop, app, "/autotalk/guess/message.received", raw, {"x-autotalk-secret": SECRET}
        ),
        "multipart": call(loop, app, url, raw, {"content-type": "multipart/form-data; boundary=x"}),
        "not JSON, not a form": call(loop, app, url, b"yes", {"content-type": "text/plain"}),
        "bad event in the path": call(loop, app, f"/autotalk/{SECRET}/Bad%20Event", raw),
    }
    assert {name: r.status_code for name, r in refused.items()} == {
        "wrong path secret": 401,
        "header secret but wrong path secret": 401,
        "multipart": 415,
        "not JSON, not a form": 415,
        "bad event in the path": 404,
    }
    for response in refused.values():
        assert SECRET not in response.text
    assert len(recorder.events) == 4
    assert not any(SECRET in line for line in log_lines)
    assert any("/autotalk/***/message.received" in line for line in log_lines)


def test_dedupe_fields_refuse_the_same_delivery_and_keep_different_ones(
    loop: asyncio.AbstractEventLoop,
) -> None:
    recorder = Recorder()
    fields = "client.phone,message.text,event.date"
    app = create_webhook_app(make_settings(dedupe_fields=fields), recorder)
    url = f"/autotalk/{SECRET}/message.received"

    def send(body: dict[str, Any]) -> int:
        return call(loop, app, url, json.dumps(body).encode()).status_code

    other_customer = {**WORKFLOW_BODY, "client": {"phone": "+5522888880000"}}
    next_day = {**WORKFLOW_BODY, "event": {"date": "2026-11-26"}}
    renamed = {**WORKFLOW_BODY, "employee": {"name": "Carla"}}
    assert [send(WORKFLOW_BODY), send(WORKFLOW_BODY), send(renamed)] == [202, 409, 409]
    assert [send(other_customer), send(next_day)] == [202, 202]
    assert send({"unrelated": "no named field"}) == 202
    assert send({"unrelated": "no named field"}) == 202, "a body without the fields is unkeyed"
    assert send({**WORKFLOW_BODY, "id": "evt_1"}) == 202, "the sender's id comes first"
    assert send({**other_customer, "id": "evt_1"}) == 409
    assert len(recorder.events) == 6
    refused = call(loop, app, url, json.dumps(WORKFLOW_BODY).encode())
    assert "dedupe key" in refused.json()["message"]


# ---- reading bodies ------------------------------------------------------------------------


def run_asgi(
    loop: asyncio.AbstractEventLoop,
    app: Any,
    headers: list[tuple[bytes, bytes]],
    chunk: bytes = b"x" * 100,
) -> tuple[int, int]:
    """POST an endless body; returns (status, number of chunks the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/autotalk/message.received",
        "raw_path": b"/autotalk/message.received",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 80),
    }
    loop.run_until_complete(app(scope, receive, send))
    return sent[0]["status"], pulled


def test_an_endless_body_is_cut_at_the_limit(loop: asyncio.AbstractEventLoop) -> None:
    recorder = Recorder()
    app = create_webhook_app(make_settings(max_body_bytes=1024), recorder)
    authed = [(b"x-autotalk-secret", SECRET.encode()), (b"content-type", b"application/json")]
    status, pulled = run_asgi(loop, app, authed)
    assert status == 413
    assert pulled == 11, "1024 bytes in 100-byte chunks: the 11th chunk crosses the limit"
    assert recorder.events == []


def test_a_stranger_s_body_is_never_read(loop: asyncio.AbstractEventLoop) -> None:
    app = create_webhook_app(make_settings(max_body_bytes=1024), Recorder())
    stranger = [(b"x-autotalk-secret", b"guess"), (b"content-type", b"application/json")]
    assert run_asgi(loop, app, stranger) == (401, 0)
    declared = [
        (b"x-autotalk-secret", SECRET.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", b"999999999"),
    ]
    assert run_asgi(loop, app, declared) == (413, 0)


# ---- arrays when Prefect fails, per-element event names, signed GETs --------------------------


class FailOnce(Recorder):
    """Refuses the ``n``-th event once (Prefect down for one call), records the others."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.calls, self.fail_at = 0, n

    async def emit(self, event: Event) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("Prefect is down (injected)")
        await super().emit(event)


def test_an_array_stops_at_a_prefect_failure_and_its_retry_delivers_the_rest(
    loop: asyncio.AbstractEventLoop,
) -> None:
    emitter = FailOnce(2)
    app = create_webhook_app(make_settings(), emitter)
    body = json.dumps([{"id": f"evt_{i}", **WORKFLOW_BODY} for i in range(3)]).encode()
    headers = {"x-autotalk-secret": SECRET}

    first = call(loop, app, "/autotalk/message.received", body, headers)

    assert first.status_code == 503 and first.headers["retry-after"] == "5"
    results = first.json()["results"]
    assert [r["accepted"] for r in results] == [True, False, False]
    assert [r.get("status") for r in results] == [None, 503, 503]
    assert "not tried" in results[2]["message"]
    assert [e.payload["id"] for e in emitter.events] == ["evt_0"]

    retry = call(loop, app, "/autotalk/message.received", body, headers)

    assert retry.status_code == 207, retry.text  # the first was already in: 409 for it alone
    assert [r.get("status") for r in retry.json()["results"]] == [409, None, None]
    assert [e.payload["id"] for e in emitter.events] == ["evt_0", "evt_1", "evt_2"]


def test_array_elements_name_their_own_events_and_a_signed_get_is_accepted(
    loop: asyncio.AbstractEventLoop,
) -> None:
    recorder = Recorder()
    app = create_webhook_app(make_settings(event_field="event", hmac=True), recorder)
    body = json.dumps(
        [{"event": "client.created", "n": 1}, {"event": "bad name!", "n": 2}, {"n": 3}]
    ).encode()
    ts = str(int(time.time()))
    signed = {"x-autotalk-secret": SECRET, "x-autotalk-timestamp": ts}
    many = call(
        loop,
        app,
        "/autotalk",
        body,
        {**signed, "x-autotalk-signature": sign(SECRET.encode(), ts, body)},
    )
    assert many.status_code == 207, many.text
    assert [r["accepted"] for r in many.json()["results"]] == [True, False, False]
    assert [e.event for e in recorder.events] == ["autotalk.client.created"]

    query = b"event=conversation.opened&client._id=c1&client.name=Ana"

    async def get(signature: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            headers = {**signed, "x-autotalk-signature": signature}
            return await client.get(f"/autotalk?{query.decode()}", headers=headers)

    good = loop.run_until_complete(get(sign(SECRET.encode(), ts, query)))
    forged = loop.run_until_complete(get(sign(SECRET.encode(), ts, b"event=other")))
    assert good.status_code == 202, good.text
    assert forged.status_code == 401
    assert recorder.events[-1].payload == {
        "event": "conversation.opened",
        "client": {"_id": "c1", "name": "Ana"},
    }
