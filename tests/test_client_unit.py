"""The client against httpx.MockTransport: construction rules, id encoding, and the page shapes,
statuses and headers that the sandbox does not produce (bare arrays, other envelopes, missing
totals, HTTP-date Retry-After, redirects, exhaustion). Server behaviour is in
test_client_sandbox.py.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

import autotalk_prefect
from autotalk_prefect import __version__
from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.contract import operation_index
from autotalk_prefect.api.endpoints import ENDPOINTS
from autotalk_prefect.api.errors import (
    AutoTalkError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitError,
)
from autotalk_prefect.api.models import InboundMessage
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.api.settings import AutoTalkSettings

KEY = "sk-unit-secret-8f3a0c"
BASE = "https://api.example.test/v1"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers through ``answer``."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json={}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def client(answer: Handler | None = None, **kw: Any) -> tuple[AutoTalkClient, Recorder]:
    recorder = Recorder(answer)
    kw.setdefault("retry_policy", RetryPolicy(sleep=lambda s: None))
    return AutoTalkClient(KEY, BASE, transport=httpx.MockTransport(recorder), **kw), recorder


def aclient(answer: Handler | None = None, **kw: Any) -> tuple[AsyncAutoTalkClient, Recorder]:
    recorder = Recorder(answer)
    kw.setdefault("retry_policy", RetryPolicy(sleep=lambda s: None))
    return AsyncAutoTalkClient(KEY, BASE, transport=httpx.MockTransport(recorder), **kw), recorder


# ---- construction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://localhost:8000/v1",
        "http://[::1]:8000/v1",
        "http://127.0.0.2/v1",
        "https://api.autotalk.io/v1/",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    with AutoTalkClient(KEY, url) as c:
        assert c.base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://api.autotalk.io/v1", "plain-http"),
        ("http://10.0.0.1/v1", "plain-http"),
        ("http://localhost.evil.example/v1", "plain-http"),
        ("not a url", "not a URL"),
        ("api.autotalk.io/v1", "not a URL"),
        ("ftp://api.autotalk.io/v1", "not a URL"),
        ("", "non-empty"),
        ("https://user:pw@api.autotalk.io/v1", "credentials"),
        ("https://api.autotalk.io/v1?x=1", "query"),
    ],
)
def test_unsafe_or_broken_base_urls_are_refused(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AutoTalkClient(KEY, url)


def test_constructor_argument_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="api_key"):
        AutoTalkClient("  ", BASE)
    with pytest.raises(TypeError, match="api_key"):
        AutoTalkClient(None, BASE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read_timeout"):
        AutoTalkClient(KEY, BASE, read_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        AutoTalkClient(KEY, BASE, max_connections=0)
    with pytest.raises(ValueError, match="api_key"):
        AutoTalkClient(KEY, BASE, headers={"X-Api-Key": "other"})
    with pytest.raises(TypeError, match="retry_policy"):
        AutoTalkClient(KEY, BASE, retry_policy=3)  # type: ignore[arg-type]


def test_the_key_is_on_every_request_and_nowhere_visible() -> None:
    c, rec = client(lambda r: httpx.Response(200, json={"_id": "c", "name": "Co"}))
    c.get_self()
    c.get_self()
    assert [r.headers["x-api-key"] for r in rec.requests] == [KEY, KEY]
    assert rec.requests[0].headers["user-agent"] == f"autotalk-prefect/{__version__}"
    for text in (repr(c), str(c), repr(c._http.headers), repr(c._http.auth), repr(vars(c))):
        assert KEY not in text
    assert "x-api-key" not in c._http.headers  # set per request by the auth hook only
    c.close()
    assert c.is_closed


def test_secretstr_key_is_accepted() -> None:
    c, rec = client(lambda r: httpx.Response(200, json={"_id": "c", "name": "Co"}))
    c2 = AutoTalkClient(SecretStr(KEY), BASE, transport=httpx.MockTransport(rec))
    c2.get_self()
    assert rec.requests[-1].headers["x-api-key"] == KEY
    c.close()
    c2.close()


def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTALK_API_KEY", raising=False)
    with pytest.raises(ValueError, match="AUTOTALK_API_KEY"):
        AutoTalkClient.from_settings(AutoTalkSettings(_env_file=None))  # type: ignore[call-arg]
    settings = AutoTalkSettings(
        api_key=SecretStr(KEY),
        base_url="http://127.0.0.1:9/v1",
        read_timeout=7.0,
        retry_attempts=2,
        max_concurrency=3,
    )
    with AutoTalkClient.from_settings(settings) as c:
        assert c.base_url == "http://127.0.0.1:9/v1"
        assert (c.read_timeout, c.max_connections, c.retry_policy.attempts) == (7.0, 3, 2)
        assert KEY not in repr(c)


def test_top_level_exports() -> None:
    assert autotalk_prefect.AutoTalkClient is AutoTalkClient
    assert autotalk_prefect.AsyncAutoTalkClient is AsyncAutoTalkClient
    assert autotalk_prefect.OutcomeUnknownError is OutcomeUnknownError
    with pytest.raises(AttributeError):
        autotalk_prefect.NoSuchThing  # noqa: B018


def test_endpoint_table_is_the_contract() -> None:
    assert dict(ENDPOINTS) == operation_index()
    for name, operation in ENDPOINTS.items():  # a method per operation, its docstring names it
        for cls in (AutoTalkClient, AsyncAutoTalkClient):
            method = getattr(cls, name)
            assert f"{operation.method} {operation.path}" in (method.__doc__ or ""), (cls, name)


# ---- ids as path segments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item_id", "encoded"),
    [
        ("abc123", "abc123"),
        ("x?admin=1", "x%3Fadmin%3D1"),
        ("x#frag", "x%23frag"),
        ("100%", "100%25"),
        ("%2F", "%252F"),
        ("with space", "with%20space"),
        ("émoji✓", "%C3%A9moji%E2%9C%93"),
    ],
)
def test_ids_are_one_encoded_path_segment(item_id: str, encoded: str) -> None:
    c, rec = client(lambda r: httpx.Response(200, json={"_id": "x"}))
    c.get_dynadata_item("orders", item_id)
    raw = rec.requests[0].url.raw_path.decode()
    assert raw == f"/v1/dynadata/type/orders/item/{encoded}"
    assert rec.requests[0].url.query == b""


@pytest.mark.parametrize("item_id", ["a/b", "..", ".", "../../self", "a\\b", "x/../../_sandbox"])
def test_ids_that_a_server_could_route_on_are_refused(item_id: str) -> None:
    c, rec = client()
    with pytest.raises(ValueError, match="item_id"):
        c.get_dynadata_item("orders", item_id)
    assert rec.requests == []


# text a server cannot mistake for more than one segment (see _endpoints.segment)
one_segment = st.text(min_size=1, max_size=30).filter(
    lambda t: "/" not in t and "\\" not in t and bool(t.strip("."))
)


@given(type_name=one_segment, item_id=one_segment, function=one_segment)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_id_escapes_its_path_segment(type_name: str, item_id: str, function: str) -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"result": 1}))
    with AutoTalkClient(KEY, BASE, transport=httpx.MockTransport(rec)) as c:
        c.execute_dynadata_item_function(type_name, item_id, function)
    url = rec.requests[0].url
    assert url.query == b"" and url.fragment == ""
    parts = url.raw_path.decode("ascii").split("/")
    assert parts[:4] == ["", "v1", "dynadata", "type"]
    assert parts[5] == "item" and parts[7] == "executeFunction"
    assert len(parts) == 9
    assert [unquote(parts[i]) for i in (4, 6, 8)] == [type_name, item_id, function]
    assert all(p not in (".", "..") for p in parts)


@pytest.mark.parametrize(("value", "exc"), [(None, TypeError), (12, TypeError), ("", ValueError)])
def test_bad_ids_name_the_parameter(value: Any, exc: type[Exception]) -> None:
    c, rec = client()
    with pytest.raises(exc, match="item_id"):
        c.get_dynadata_item("orders", value)
    with pytest.raises(exc, match="contact_id"):
        c.send_message(value, "hi")
    with pytest.raises(exc, match="conversation_id"):
        c.list_messages(value)  # refused at once, not at the first next()
    with pytest.raises(exc, match="type"):
        c.list_dynadata_items(value)
    with pytest.raises(exc, match="function_name"):
        c.execute_dynadata_function("orders", value)
    assert rec.requests == []


# ---- request bodies are checked before any HTTP ----------------------------------------------


def test_empty_message_is_refused_before_any_request() -> None:
    c, rec = client()
    with pytest.raises(ValidationError, match="message"):
        c.send_message("abc", "")
    with pytest.raises(ValidationError, match="message"):
        c.process_messages("conv", [InboundMessage(role="user", message="")])
    with pytest.raises(ValueError, match="messages"):
        c.process_messages("conv", [])
    with pytest.raises(TypeError, match="messages"):
        c.process_messages("conv", "hello")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="contactId"):
        c.create_conversation(channelId="x")
    with pytest.raises(TypeError, match="data"):
        c.create_dynadata_item("orders", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="item_id"):
        c.update_dynadata_item("orders", "a", {"_id": "b"})
    with pytest.raises(ValueError, match="page_size"):
        c.list_dynadata_items("orders", limit=5)
    with pytest.raises(ValueError, match="page_size"):
        c.list_conversations(page_size=0)
    assert rec.requests == []


def test_bodies_are_the_request_models_on_the_wire() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/send_message"):
            return httpx.Response(201, json={"_id": "m", "conversationId": "cv", "x": 1})
        return httpx.Response(
            200, json={"conversationId": "cv", "messages": [{"_id": "m2", "conversationId": "cv"}]}
        )

    c, rec = client(answer)
    message = c.send_message("ct", "hello", channelId="ch", mediaUrl=None, priority="high")
    assert message.id == "m" and message.model_extra == {"x": 1}
    assert json.loads(rec.requests[0].content) == {
        "message": "hello",
        "channelId": "ch",
        "priority": "high",
    }
    c.process_messages("cv", [InboundMessage(message="a"), {"role": "agent", "message": "b"}])
    assert json.loads(rec.requests[1].content) == {
        "messages": [{"role": "user", "message": "a"}, {"role": "agent", "message": "b"}]
    }


def test_update_puts_the_id_in_the_body() -> None:
    c, rec = client(lambda r: httpx.Response(200, json={"_id": "i1", "status": "paid"}))
    item = c.update_dynadata_item("orders", "i1", {"status": "paid"})
    assert item.data == {"status": "paid"}
    assert rec.requests[0].method == "PUT"
    assert json.loads(rec.requests[0].content) == {"status": "paid", "_id": "i1"}


def test_filters_become_query_parameters() -> None:
    c, rec = client(lambda r: httpx.Response(200, json={"data": [], "total": 0}))
    since = datetime(2026, 11, 25, 11, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    list(c.list_dynadata_items("clients", updatedSince=since, vip=True, status=None, n=3))
    params = rec.requests[0].url.params
    assert params["updatedSince"] == "2026-11-25T10:00:00.123Z"
    assert params["vip"] == "true"
    assert params["n"] == "3"
    assert "status" not in params
    assert (params["limit"], params["skip"]) == ("100", "0")


# ---- page shapes -----------------------------------------------------------------------------


def paged(items: list[dict[str, Any]], shape: Callable[[list[Any], int], Any], cap: int = 100):
    """A handler serving ``items`` by limit/skip, capping pages at ``cap``, in ``shape``."""

    def answer(request: httpx.Request) -> httpx.Response:
        limit = min(int(request.url.params["limit"]), cap)
        skip = int(request.url.params["skip"])
        return httpx.Response(200, json=shape(items[skip : skip + limit], len(items)))

    return answer


ITEMS = [{"_id": f"{i:024x}", "n": i} for i in range(23)]


@pytest.mark.parametrize(
    ("shape", "requests"),
    [
        (lambda page, total: page, 4),  # bare array: ends on the empty page
        (lambda page, total: {"data": page, "total": total}, 3),  # total: no extra request
        (lambda page, total: {"items": page}, 4),
        (lambda page, total: {"docs": page, "totalDocs": total}, 3),
        (lambda page, total: {"results": page, "count": 99}, 4),  # count is not a total
    ],
    ids=["bare", "data+total", "items", "docs+totalDocs", "results"],
)
def test_every_page_shape_lists_each_item_once(shape: Any, requests: int) -> None:
    c, rec = client(paged(ITEMS, shape))
    items = list(c.list_dynadata_items("orders", page_size=10))
    assert [i.data["n"] for i in items] == list(range(23))
    assert len(rec.requests) == requests


def test_a_short_page_is_not_the_end() -> None:
    c, rec = client(paged(ITEMS, lambda page, total: {"data": page}, cap=4))
    pages = list(c.iter_dynadata_pages("orders", page_size=10))
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 3]
    assert [i.data["n"] for p in pages for i in p] == list(range(23))
    assert [r.url.params["skip"] for r in rec.requests] == ["0", "4", "8", "12", "16", "20", "23"]


def test_page_iterators_yield_one_list_per_page() -> None:
    convs = [{"_id": f"c{i}", "contactId": "x"} for i in range(5)]
    c, _ = client(paged(convs, lambda page, total: {"data": page, "total": total}))
    assert [len(p) for p in c.iter_conversation_pages(page_size=2)] == [2, 2, 1]
    msgs = [{"_id": f"m{i}", "conversationId": "cv"} for i in range(3)]
    c, rec = client(paged(msgs, lambda page, total: page))
    assert [len(p) for p in c.iter_message_pages("cv", page_size=2)] == [2, 1]
    assert rec.requests[0].url.path == "/v1/conversations/cv/messages"


def test_listing_is_lazy() -> None:
    c, rec = client(paged(ITEMS, lambda page, total: {"data": page, "total": total}))
    iterator = c.list_dynadata_items("orders", page_size=5)
    assert rec.requests == []
    next(iterator)
    assert len(rec.requests) == 1


def test_a_server_ignoring_skip_is_detected_not_looped() -> None:
    c, _ = client(lambda r: httpx.Response(200, json=[{"_id": "same"}]))
    with pytest.raises(
        AutoTalkError, match=r"same page twice \(for skip=1, then for offset=1, then for page=2\)"
    ):
        list(c.list_conversations())


def test_an_unknown_page_shape_is_a_clear_error() -> None:
    c, _ = client(lambda r: httpx.Response(200, json={"status": "ok", "a": [], "b": []}))
    with pytest.raises(AutoTalkError, match=r"no item array .*\(keys: a, b, status\)"):
        list(c.list_conversations())


def test_unpaged_lists_accept_envelopes_and_arrays() -> None:
    c, _ = client(lambda r: httpx.Response(200, json=[{"_id": "a", "type": "whatsapp"}]))
    assert [ch.id for ch in c.list_channels()] == ["a"]
    c, _ = client(lambda r: httpx.Response(200, json={"items": [{"_id": "b", "name": "Bot"}]}))
    assert [a.name for a in c.list_assistants()] == ["Bot"]


def test_zod_schema_as_json_or_text() -> None:
    c, _ = client(lambda r: httpx.Response(200, json={"type": "orders", "zod": "z.object({})"}))
    assert c.get_dynadata_zod_schema("orders") == "z.object({})"
    c, _ = client(lambda r: httpx.Response(200, text="z.string()"))
    assert c.get_dynadata_zod_schema("orders") == "z.string()"


def test_an_answer_of_the_wrong_shape_is_an_autotalk_error() -> None:
    c, _ = client(lambda r: httpx.Response(200, json={"name": "no id"}))
    with pytest.raises(AutoTalkError, match=r"not a DynadataItem .*no id"):
        c.get_dynadata_item("clients", "x")  # a read item must carry the id it is passed by
    c, _ = client(lambda r: httpx.Response(200, json={"_id": "co", "name": ["not", "text"]}))
    with pytest.raises(AutoTalkError, match=r"not a Company .*name"):
        c.get_self()
    c, _ = client(
        lambda r: httpx.Response(200, text="{", headers={"content-type": "application/json"})
    )
    with pytest.raises(AutoTalkError, match="not JSON"):
        c.get_self()


# ---- statuses, retries, redirects ----------------------------------------------------------


def test_retry_after_as_http_date_is_honoured() -> None:
    waits: list[float] = []
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    answers = iter(
        [
            httpx.Response(429, json={"error": "rate_limited"}, headers={"retry-after": when}),
            httpx.Response(200, json={"_id": "c", "name": "Co"}),
        ]
    )
    c, _ = client(lambda r: next(answers), retry_policy=RetryPolicy(sleep=waits.append))
    assert c.get_self().name == "Co"
    assert len(waits) == 1 and 15.0 < waits[0] <= 20.0


def test_exhausted_retries_raise_the_rate_limit_error() -> None:
    waits: list[float] = []
    c, rec = client(
        lambda r: httpx.Response(429, json={"error": "rate_limited"}, headers={"retry-after": "1"}),
        retry_policy=RetryPolicy(attempts=3, sleep=waits.append),
    )
    with pytest.raises(RateLimitError) as info:
        c.send_message("ct", "hi")
    assert len(rec.requests) == 3 and waits == [1.0, 1.0]
    assert info.value.path == "/contacts/ct/send_message"
    assert KEY not in str(info.value) and KEY not in repr(pickle.loads(pickle.dumps(info.value)))


def test_a_500_on_create_is_outcome_unknown_and_sent_once() -> None:
    c, rec = client(lambda r: httpx.Response(500, json={"error": "server_error"}))
    with pytest.raises(OutcomeUnknownError):
        c.create_dynadata_item("orders", {"total": 1})
    assert len(rec.requests) == 1


def test_a_404_maps_to_not_found_with_the_path() -> None:
    c, _ = client(
        lambda r: httpx.Response(
            404,
            json={"error": "not_found", "message": "no such item"},
            headers={"x-request-id": "req-1"},
        )
    )
    with pytest.raises(NotFoundError) as info:
        c.get_dynadata_item("orders", "nope")
    assert info.value.path == "/dynadata/type/orders/item/nope"
    assert info.value.request_id == "req-1"


def test_redirects_are_not_followed_so_the_key_stays_home() -> None:
    c, rec = client(
        lambda r: httpx.Response(302, headers={"location": "https://elsewhere.example/steal"})
    )
    with pytest.raises(AutoTalkError) as info:
        c.get_self()
    assert info.value.status_code == 302
    assert len(rec.requests) == 1


def test_an_echoed_key_is_redacted_from_errors() -> None:
    c, _ = client(
        lambda r: httpx.Response(401, json={"message": f"bad key {r.headers['x-api-key']}"})
    )
    with pytest.raises(AutoTalkError) as info:
        c.get_self()
    assert KEY not in str(info.value) and KEY not in (info.value.body or "")


def test_retry_logs_never_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = iter(
        [httpx.Response(503, headers={"retry-after": "0"}), httpx.Response(200, json=[])]
    )
    c, _ = client(lambda r: next(answers))
    assert c.list_channels() == []
    assert any(r.name == "autotalk_prefect.api.retries" for r in caplog.records)
    assert all(KEY not in r.getMessage() and KEY not in str(r.__dict__) for r in caplog.records)


# ---- async: the same shapes through the async client ------------------------------------------


async def test_async_client_pages_and_encodes() -> None:
    c, rec = aclient(paged(ITEMS, lambda page, total: {"docs": page}, cap=7))
    async with c:
        items = [i async for i in c.list_dynadata_items("my type", page_size=50)]
        pages = [len(p) async for p in c.iter_dynadata_pages("my type", page_size=50)]
    assert [i.data["n"] for i in items] == list(range(23))
    assert pages == [7, 7, 7, 2]
    assert rec.requests[0].url.raw_path.startswith(b"/v1/dynadata/type/my%20type/list?")
    assert c.is_closed


async def test_async_client_refuses_bad_input_before_http() -> None:
    c, rec = aclient()
    async with c:
        with pytest.raises(ValidationError):
            await c.send_message("ct", "")
        with pytest.raises(TypeError, match="conversation_id"):
            c.list_messages(5)  # type: ignore[arg-type]
    assert rec.requests == []


async def test_async_outcome_unknown_on_dropped_send() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    c, rec = aclient(drop)
    async with c:
        with pytest.raises(OutcomeUnknownError):
            await c.send_message("ct", "hello")
    assert len(rec.requests) == 1
