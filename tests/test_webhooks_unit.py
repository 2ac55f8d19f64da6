"""Webhook receiver parts without HTTP: settings, signatures, replay cache, event building."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr, ValidationError

from autotalk_prefect.sandbox import sign as sandbox_sign
from autotalk_prefect.webhooks import (
    WebhookConfigError,
    WebhookSettings,
    build_event,
    create_webhook_app,
    sign,
)
from autotalk_prefect.webhooks.app import Refusal, parse_body
from autotalk_prefect.webhooks.bodies import body_kind, decode_body, parse_form
from autotalk_prefect.webhooks.events import event_key, prefect_event_id
from autotalk_prefect.webhooks.redact import RedactSecretPath, redact_path
from autotalk_prefect.webhooks.replay import ReplayGuard
from autotalk_prefect.webhooks.verify import path_secret_matches, secret_matches, signature_problem

SECRET = "whsec-unit-9f8e7d"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)

# ---- settings ------------------------------------------------------------------------------


def test_settings_come_from_autotalk_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTALK_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("AUTOTALK_WEBHOOK_HMAC", "true")
    monkeypatch.setenv("AUTOTALK_WEBHOOK_SECRET_HEADER", "X-My-Secret")
    monkeypatch.setenv("AUTOTALK_WEBHOOK_EVENT_FIELD", "meta.event")
    settings = WebhookSettings()
    assert settings.require_secret() == SECRET.encode()
    assert settings.hmac is True
    assert settings.secret_header == "x-my-secret"
    assert settings.event_field == "meta.event"
    assert settings.max_body_bytes == 256 * 1024
    assert settings.tolerance_seconds == 300
    assert settings.dedupe_fields == ()
    assert SECRET not in repr(settings)


def test_dedupe_fields_come_from_a_comma_separated_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOTALK_WEBHOOK_DEDUPE_FIELDS", " client.phone, message.text,event.date ,")
    settings = WebhookSettings(secret=SecretStr(SECRET), _env_file=None)  # type: ignore[call-arg]
    assert settings.dedupe_fields == ("client.phone", "message.text", "event.date")
    assert WebhookSettings(secret=SecretStr(SECRET), dedupe_fields=["a", "b.c"]).dedupe_fields == (
        "a",
        "b.c",
    )


@pytest.mark.parametrize(
    ("secret", "needle"),
    [
        (None, "needs a shared secret"),
        ("", "is empty"),
        (" padded-secret ", "whitespace"),
        ("sécret-non-ascii", "printable ASCII"),
        ("tab\tinside", "printable ASCII"),
    ],
)
def test_receiver_refuses_to_start_without_a_usable_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None, needle: str
) -> None:
    monkeypatch.delenv("AUTOTALK_WEBHOOK_SECRET", raising=False)
    settings = WebhookSettings(secret=secret, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(WebhookConfigError, match=needle) as info:
        create_webhook_app(settings)
    if secret:
        assert secret.strip() not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_prefix", "Bad Prefix"),
        ("secret_header", "x secret"),
        ("event_field", "a..b"),
        ("tolerance_seconds", 0),
        ("max_body_bytes", 10),
        ("dedupe_fields", "client.phone,a..b"),
        ("dedupe_fields", "client.phone,client.phone"),
    ],
)
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookSettings(secret=SecretStr(SECRET), **{field: value})
    assert field in str(info.value)


# ---- secret and signature ------------------------------------------------------------------


def test_secret_comparison() -> None:
    assert secret_matches(SECRET, SECRET.encode())
    assert not secret_matches(None, SECRET.encode())
    assert not secret_matches("", SECRET.encode())
    assert not secret_matches(SECRET + "x", SECRET.encode())
    assert not secret_matches(SECRET.upper(), SECRET.encode())
    assert not secret_matches("ümlaut-\u20ac", SECRET.encode())  # non-latin-1 never raises


def test_path_secret_comparison() -> None:
    assert path_secret_matches(SECRET, SECRET.encode())
    assert not path_secret_matches("", SECRET.encode())
    assert not path_secret_matches(SECRET[:-1], SECRET.encode())
    assert not path_secret_matches("\udcff-\u20ac", SECRET.encode())  # never raises


def test_signature_agrees_with_the_sandboxs_independent_signer() -> None:
    body = b'{"id":"evt_1","event":"message.received"}'
    assert sign(SECRET.encode(), "1764064800", body) == sandbox_sign(SECRET, "1764064800", body)


def test_signature_problems() -> None:
    key, body, now = SECRET.encode(), b'{"a":1}', 1_764_064_800.0
    ts = str(int(now))
    good = sign(key, ts, body)

    def problem(timestamp: str | None, signature: str | None, raw: bytes = body) -> str | None:
        return signature_problem(key, raw, timestamp, signature, now=now, tolerance_seconds=300)

    assert problem(ts, good) is None
    assert problem(ts, good.upper().replace("SHA256=", "sha256=")) is None
    assert problem(str(int(now) - 300), sign(key, str(int(now) - 300), body)) is None
    assert "missing" in (problem(None, good) or "")
    assert "unix seconds" in (problem("yesterday", good) or "")
    stale = str(int(now) - 301)
    assert "300 s away" in (problem(stale, sign(key, stale, body)) or "")
    future = str(int(now) + 301)
    assert "300 s away" in (problem(future, sign(key, future, body)) or "")
    assert "signature header is missing" in (problem(ts, None) or "")
    assert "does not match" in (problem(ts, good, b'{"a":2}') or "")
    assert "does not match" in (problem(ts, sign(b"other", ts, body)) or "")
    assert "does not match" in (problem(ts, good[len("sha256=") :]) or "")
    for reason in filter(None, [problem(ts, "sha256=" + "0" * 64), problem(stale, good)]):
        assert SECRET not in reason and good not in reason


# ---- replay cache --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_replay_guard_window_in_flight_and_release() -> None:
    clock = FakeClock()
    guard = ReplayGuard(ttl_seconds=300, clock=clock)
    assert guard.reserve("a")
    assert not guard.reserve("a"), "a concurrent duplicate is refused while in flight"
    guard.release("a")
    assert guard.reserve("a"), "after a failed emission the retry is welcome"
    guard.commit("a")
    clock.now += 299
    assert not guard.reserve("a")
    clock.now += 2
    assert guard.reserve("a"), "after the window the id is forgotten"
    assert len(guard) == 1


def test_replay_guard_is_bounded() -> None:
    clock = FakeClock()
    guard = ReplayGuard(ttl_seconds=300, max_entries=3, clock=clock)
    for key in "abcd":
        assert guard.reserve(key)
        guard.commit(key)
    assert len(guard) == 3
    assert guard.reserve("a"), "the oldest id was evicted to keep the bound"
    assert not guard.reserve("d")


def test_replay_guard_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        ReplayGuard(ttl_seconds=0)
    with pytest.raises(ValueError, match="max_entries"):
        ReplayGuard(ttl_seconds=1, max_entries=0)


# ---- body parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "JSON object, got a JSON list"),
        (b'"text"', "JSON object, got a JSON str"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 1e999}', "out of range"),
        (b'{"a": 123456789012345678901234567890}', "64 bits"),
        (b'{"a": "\\ud800"}', "surrogate"),
        (b'{"a": "x\\u0000y"}', "NUL"),
        (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "nested"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
        (b"\xff\xfe{", "not valid JSON"),
    ],
)
def test_parse_body_refuses_with_a_reason(raw: bytes, needle: str) -> None:
    with pytest.raises(Refusal) as info:
        parse_body(raw)
    assert info.value.status == 400
    assert needle in info.value.message


def test_parse_body_accepts_an_object() -> None:
    assert parse_body(b' {"id": "e", "n": [1, 2.5, true, null]} ') == {
        "id": "e",
        "n": [1, 2.5, True, None],
    }


# ---- event building ------------------------------------------------------------------------


RECIPE = {
    "id": "evt_1",
    "event": "message.received",
    "occurredAt": "2026-11-25T09:59:00.000Z",
    "client": {"_id": "64b000000000000000000001", "name": "Ana Lima", "phone": "+5511"},
    "message": {"_id": "m1", "conversationId": "c1", "text": "hi"},
    "conversation": {"_id": "c1"},
    "trigger": {"channel": "ch1"},
}


def test_recipe_body_becomes_a_contact_event_with_related_resources() -> None:
    event = build_event("message.received", RECIPE, "id:evt_1", now=NOW)
    assert event.event == "autotalk.message.received"
    assert event.resource.id == "autotalk.contact.64b000000000000000000001"
    assert event.resource.name == "Ana Lima"
    assert event.resource["autotalk.event"] == "message.received"
    roles = {r.role: r.id for r in event.related}
    assert roles == {
        "conversation": "autotalk.conversation.c1",
        "message": "autotalk.message.m1",
        "channel": "autotalk.channel.ch1",
    }
    assert event.payload == RECIPE
    assert event.occurred == datetime(2026, 11, 25, 9, 59, tzinfo=timezone.utc)
    assert event.id == prefect_event_id("autotalk.message.received", "id:evt_1")


def test_event_ids_are_deterministic_per_event_name_and_key() -> None:
    a = build_event("message.received", RECIPE, "id:evt_1", now=NOW)
    b = build_event("message.received", RECIPE, "id:evt_1", now=NOW + timedelta(hours=1))
    c = build_event("client.created", RECIPE, "id:evt_1", now=NOW)
    d = build_event("message.received", RECIPE, "id:evt_1", prefix="crm", now=NOW)
    assert a.id == b.id
    assert len({a.id, c.id, d.id}) == 3
    assert uuid.UUID(str(a.id)).version == 5


def test_without_a_contact_the_resource_is_the_webhook_and_items_are_related() -> None:
    body = {
        "client": {"_id": "has space"},
        "item": {"_id": "o1", "type": "orders"},
        "message": {"conversationId": "c9"},
    }
    event = build_event("order.updated", body, "sha256:x", now=NOW)
    assert event.resource.id == "autotalk.webhook"
    assert [(r.role, r.id) for r in event.related] == [
        ("conversation", "autotalk.conversation.c9"),
        ("item", "autotalk.dynadata.orders.o1"),
    ]
    assert event.related[1]["autotalk.type"] == "orders"
    assert event.occurred == NOW


@pytest.mark.parametrize(
    "occurred_at",
    [None, 17, "yesterday", "2026-11-25T10:00:00", "2026-11-25T11:00:00Z", "1970-01-01T00:00:00Z"],
)
def test_unusable_occurred_at_falls_back_to_now(occurred_at: object) -> None:
    event = build_event("x", {"occurredAt": occurred_at}, "k", now=NOW)
    assert event.occurred == NOW


def test_event_key_prefers_the_senders_id() -> None:
    assert event_key({"id": "evt_9"}) == "id:evt_9"
    assert event_key({"id": 42}) == "id:42"
    assert event_key({"id": "evt_9", "client": {"phone": "+1"}}, ["client.phone"]) == "id:evt_9"


def test_without_an_id_or_dedupe_fields_every_delivery_is_its_own_event() -> None:
    """Two customers' identical bodies, or one customer's on two days, are two real events."""
    same = {"client": {"phone": "+5511"}, "message": {"text": "yes"}}
    for body in (same, {"id": True}, {"id": " "}, {"id": "x" * 300}, {}):
        assert event_key(body) is None
    ids = {build_event("message.received", same, None, now=NOW).id for _ in range(3)}
    assert len(ids) == 3
    assert all(uuid.UUID(str(i)).version == 4 for i in ids)


def test_dedupe_fields_key_the_named_values_only() -> None:
    fields = ["client.phone", "message.text", "event.date"]
    day1 = {
        "client": {"phone": "+5511", "name": "Ana"},
        "message": {"text": "yes"},
        "event": {"date": "2026-11-25"},
    }
    renamed = {**day1, "client": {"phone": "+5511", "name": "Ana L."}}
    day2 = {**day1, "event": {"date": "2026-11-26"}}
    other_customer = {**day1, "client": {"phone": "+5522"}}
    key = event_key(day1, fields)
    assert key is not None and key.startswith("fields:")
    assert event_key(renamed, fields) == key, "fields the user did not name do not count"
    assert event_key(day2, fields) != key
    assert event_key(other_customer, fields) != key
    # a missing field counts as null; a body with none of the fields is unkeyed
    assert event_key({"client": {"phone": "+5511"}}, fields) is not None
    assert event_key({"client": {"phone": "+5511"}}, fields) != key
    assert event_key({"unrelated": 1}, fields) is None
    # same key, same event name: same Prefect id (Prefect keeps one copy after the window)
    assert prefect_event_id("autotalk.x", key) == prefect_event_id("autotalk.x", key)


# ---- content types and form bodies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/json", "json"),
        ("Application/JSON; charset=utf-8", "json"),
        ("application/cloudevents+json", "json"),
        ("application/x-www-form-urlencoded", "form"),
        ("application/x-www-form-urlencoded; charset=UTF-8", "form"),
        ("multipart/form-data; boundary=x", "multipart"),
        ("text/plain", "other"),
        (None, "other"),
        ("", "other"),
    ],
)
def test_body_kind(content_type: str | None, kind: str) -> None:
    assert body_kind(content_type) == kind


def test_any_content_type_whose_body_is_json_is_read_as_json() -> None:
    assert decode_body(b'{"a": 1}', "other") == {"a": 1}
    with pytest.raises(Refusal) as info:
        decode_body(b"hello", "other")
    assert info.value.status == 415 and "form-urlencoded" in info.value.message
    with pytest.raises(Refusal) as info:
        decode_body(b"hello", "json")
    assert info.value.status == 400


def test_form_bodies_nest_dotted_names() -> None:
    raw = (
        b"client.name=Ana+Lima&client.phone=%2B5511999990000&message.text=Oi%21"
        b"&trigger.channel=whatsapp&event.date=2026-11-25&empty=&tag=a&tag=b"
    )
    assert parse_form(raw) == {
        "client": {"name": "Ana Lima", "phone": "+5511999990000"},
        "message": {"text": "Oi!"},
        "trigger": {"channel": "whatsapp"},
        "event": {"date": "2026-11-25"},
        "empty": "",
        "tag": ["a", "b"],
    }
    assert decode_body(b"a=1", "form") == {"a": "1"}


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "empty"),
        (b'{"a": 1}', "not form-encoded"),
        (b"a=1&&b", "not form-encoded"),
        (b"a=%FF", "not UTF-8"),
        (b"a=\xff", "not UTF-8"),
        (b"a=1&a.b=2", "both a value and a group"),
        (b"a.b=2&a=1", "both a value and a group"),
        (b"a..b=1", "empty part"),
        (b"a=x%00y", "NUL"),
        (b"&".join(b"f%d=1" % i for i in range(1001)), "not form-encoded"),
    ],
)
def test_bad_form_bodies_are_refused_with_a_reason(raw: bytes, needle: str) -> None:
    with pytest.raises(Refusal) as info:
        parse_form(raw)
    assert info.value.status == 400
    assert needle in info.value.message


# ---- keeping a path secret out of logs -----------------------------------------------------


def test_redact_path_masks_the_secret_segment_and_the_query_only() -> None:
    assert redact_path(f"/autotalk/{SECRET}/message.received") == "/autotalk/***/message.received"
    assert redact_path(f"/hooks/autotalk/{SECRET}/x?a=1") == "/hooks/autotalk/***/x?***"
    assert (
        redact_path(f"GET /autotalk/x?secret={SECRET} HTTP/1.1") == "GET /autotalk/x?*** HTTP/1.1"
    )
    assert redact_path("/other?a=1") == "/other?a=1"
    assert redact_path("/autotalk/message.received") == "/autotalk/message.received"
    assert redact_path("/healthz") == "/healthz"


def test_access_log_filter_rewrites_uvicorn_s_record() -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", f"/autotalk/{SECRET}/client.created", "1.1", 202),
        None,
    )
    assert RedactSecretPath().filter(record)
    assert SECRET not in record.getMessage()
    assert "/autotalk/***/client.created" in record.getMessage()
