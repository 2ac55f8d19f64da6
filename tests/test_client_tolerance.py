"""Issue 14: the client against answers in shapes our contract does not guess (httpx.MockTransport).

AutoTalk publishes paths, not bodies: every shape here is one a real server plausibly sends
(Mongo-style ids, ``{"success": true, "data": {...}}`` envelopes, empty 202/204 answers to writes,
Zod issues, RFC 7807 problems, page-number and cursor paging). The sandbox's own shapes are in
test_client_sandbox.py.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.errors import AuthenticationError, AutoTalkError
from autotalk_prefect.api.paging import (
    Pager,
    PageShapeError,
    detect_style,
    link_relations,
    read_page,
)
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.api.settings import AutoTalkSettings
from autotalk_prefect.credentials import AutoTalkCredentials

KEY = "sk-tolerance-secret-51c9"
BASE = "https://api.example.test/v1"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    def __init__(self, answer: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def queries(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs(r.url.query.decode()).items()} for r in self.requests]


def client(answer: Handler, **kw: Any) -> tuple[AutoTalkClient, Recorder]:
    recorder = Recorder(answer)
    kw.setdefault("retry_policy", RetryPolicy(sleep=lambda s: None))
    return AutoTalkClient(KEY, BASE, transport=httpx.MockTransport(recorder), **kw), recorder


def aclient(answer: Handler, **kw: Any) -> tuple[AsyncAutoTalkClient, Recorder]:
    recorder = Recorder(answer)
    kw.setdefault("retry_policy", RetryPolicy(sleep=lambda s: None))
    return AsyncAutoTalkClient(KEY, BASE, transport=httpx.MockTransport(recorder), **kw), recorder


def always(status: int, body: Any = None, **kw: Any) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, **kw)
        if isinstance(body, (str, bytes)):
            return httpx.Response(status, content=body, **kw)
        return httpx.Response(status, json=body, **kw)

    return answer


# ---- 1. tolerant decoding ----------------------------------------------------------------------


def test_a_message_without_conversation_id_is_a_message() -> None:
    c, _ = client(always(200, {"data": [{"_id": "m1", "text": "hi"}, {"id": "m2"}], "total": 2}))
    messages = list(c.list_messages("conv1"))
    assert [m.id for m in messages] == ["m1", "m2"]
    assert messages[0].conversationId is None
    assert messages[0].model_extra == {"text": "hi"}  # unknown fields kept


@pytest.mark.parametrize(
    "answer",
    [
        {"_id": "m1"},
        {"id": "m1"},
        {"messageId": "m1"},
        {"message_id": "m1"},
        {"success": True, "data": {"messageId": "m1"}},
        {"message": {"_id": "m1"}},
        {"result": {"id": "m1"}},
        {"success": True, "data": {"message": {"_id": "m1"}}},
    ],
)
def test_send_message_reads_the_id_wherever_it_is(answer: dict[str, Any]) -> None:
    c, _ = client(always(201, answer))
    sent = c.send_message("contact1", "hello", conversationId="conv9")
    assert sent.id == "m1"
    assert sent.conversationId == "conv9"  # the request's, since the answer is silent
    assert sent.contactId == "contact1"
    assert sent.raw_answer == answer


def test_numeric_ids_become_text() -> None:
    c, _ = client(always(200, {"data": {"id": 42, "contactId": "c"}}))
    conversation = c.create_conversation(contactId="c")
    assert conversation.id == "42"


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("get_self", {"success": True, "data": {"id": "co1", "name": "Acme"}}),
        ("get_self", {"company": {"_id": "co1"}}),
        ("get_item", {"item": {"_id": "co1", "name": "Ada"}}),
        ("get_item", {"clients": {"_id": "co1"}}),
        ("get_item", {"success": True, "result": {"id": "co1"}}),
        ("create_conversation", {"conversation": {"_id": "co1"}}),
    ],
)
def test_single_objects_are_unwrapped_from_their_envelope(
    method: str, answer: dict[str, Any]
) -> None:
    c, _ = client(always(200, answer))
    calls: dict[str, Callable[[], Any]] = {
        "get_self": c.get_self,
        "get_item": lambda: c.get_dynadata_item("clients", "co1"),
        "create_conversation": lambda: c.create_conversation(contactId="x"),
    }
    assert calls[method]().id == "co1"


def test_an_item_with_its_own_data_field_is_not_mistaken_for_an_envelope() -> None:
    c, _ = client(always(200, {"_id": "i1", "data": {"nested": 1}, "success": "yes"}))
    item = c.get_dynadata_item("clients", "i1")
    assert item.id == "i1"
    assert item.data == {"data": {"nested": 1}, "success": "yes"}


def test_a_read_object_without_the_id_the_library_passes_back_is_refused() -> None:
    c, _ = client(always(200, {"data": [{"contactId": "c1"}], "total": 1}))
    with pytest.raises(AutoTalkError, match=r"not a Conversation .*no id \(looked for _id, id\)"):
        list(c.list_conversations())


@pytest.mark.parametrize(
    ("empty", "raw"),
    [
        (always(204), None),
        (always(202), None),
        (always(202, "Accepted", headers={"content-type": "text/plain"}), "Accepted"),
        (always(200, ["unexpected"]), ["unexpected"]),
        (always(200, {"ok": True}), {"ok": True}),
        # wrong types: left out of the model, kept in raw_answer
        (always(201, {"_id": 123.5, "status": 7}), {"_id": 123.5, "status": 7}),
    ],
)
def test_a_2xx_to_a_write_is_never_an_error(empty: Handler, raw: Any) -> None:
    c, rec = client(empty)
    sent = c.send_message("contact1", "hello")
    assert (sent.id, sent.contactId, sent.raw_answer) == (None, "contact1", raw)
    conversation = c.create_conversation(contactId="contact1")
    assert (conversation.id, conversation.contactId) == (None, "contact1")
    created = c.create_dynadata_item("clients", {"_id": "mine", "name": "Ada"})
    assert created.id == "mine"  # the create body said which id
    anonymous = c.create_dynadata_item("clients", {"name": "Ada"})
    assert (anonymous.id, anonymous.raw_answer) == ("", raw)
    updated = c.update_dynadata_item("clients", "i7", {"name": "Ada"})
    assert updated.id == "i7"
    processed = c.process_messages("conv1", [{"text": "hi"}])
    assert (processed.conversationId, processed.messages) == ("conv1", [])
    result = c.execute_dynadata_function("clients", "recount", {})
    assert result.raw_answer == raw
    assert len(rec.requests) == 7  # each sent once: a 2xx is never retried


def test_broken_json_in_a_2xx_to_a_write_is_kept_as_text_and_raw_answer_pickles() -> None:
    broken = always(200, "{oops", headers={"content-type": "application/json"})
    c, rec = client(broken)
    sent = c.send_message("contact1", "hello")
    assert (sent.id, sent.raw_answer) == (None, "{oops")
    assert len(rec.requests) == 1
    again = pickle.loads(pickle.dumps(sent))  # Prefect moves task results between processes
    assert (again.contactId, again.raw_answer) == ("contact1", "{oops")
    with pytest.raises(AutoTalkError, match="not JSON"):
        c.get_self()  # a read gets no such pass


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"result": {"n": 3}}, {"n": 3}),
        ({"success": True, "data": {"n": 3}}, {"n": 3}),
        ({"n": 3}, {"n": 3}),
        (7, 7),
        (None, None),
    ],
)
def test_function_results_in_any_shape(answer: Any, expected: Any) -> None:
    c, _ = client(always(200, answer) if answer is not None else always(204))
    assert c.execute_dynadata_item_function("clients", "i1", "recount").result == expected


@pytest.mark.parametrize(
    "answer",
    [
        {"conversationId": "conv1", "messages": [{"_id": "m1"}, {"role": "assistant"}]},
        [{"_id": "m1"}, {"role": "assistant"}],
        {"success": True, "data": [{"_id": "m1"}, {"role": "assistant"}]},
        {"data": {"messages": [{"_id": "m1"}, {"role": "assistant"}]}},
    ],
)
def test_process_messages_answers_in_any_shape(answer: Any) -> None:
    c, _ = client(always(200, answer))
    processed = c.process_messages("conv1", [{"role": "user", "message": "hi"}])
    assert processed.conversationId == "conv1"
    assert [m.id for m in processed.messages] == ["m1", None]


def test_user_bodies_travel_unchanged() -> None:
    c, rec = client(always(200, {}))
    c.process_messages("conv1", [{"text": "no message key", "from": "customer", "meta": {"a": 1}}])
    assert json.loads(rec.requests[-1].content) == {
        "messages": [{"text": "no message key", "from": "customer", "meta": {"a": 1}}]
    }
    c.create_dynadata_item("clients", {"anything": [1, {"x": None}]})
    assert json.loads(rec.requests[-1].content) == {"anything": [1, {"x": None}]}
    c.execute_dynadata_function("clients", "fn", {"deep": {"x": [1]}})
    assert json.loads(rec.requests[-1].content) == {"args": {"deep": {"x": [1]}}}


@pytest.mark.parametrize(
    ("answer", "valid", "issues"),
    [
        ({"valid": True}, True, []),
        ({}, True, []),
        ({"success": True}, True, []),
        ({"success": False}, False, []),
        (
            {"success": False, "issues": [{"path": ["lines", 0, "qty"], "message": "too small"}]},
            False,
            [("lines.0.qty", "too small")],
        ),
        ({"errors": [{"path": "email", "message": "bad"}]}, False, [("email", "bad")]),
        ({"details": ["name is required"]}, False, [("", "name is required")]),
        (
            {"data": {"valid": False, "errors": [{"field": "x", "error": "no"}]}},
            False,
            [("x", "no")],
        ),
    ],
)
def test_validation_results_in_any_shape(
    answer: dict[str, Any], valid: bool, issues: list[tuple[str, str]]
) -> None:
    c, _ = client(always(200, answer))
    result = c.validate_dynadata_item("clients", {"name": "Ada"})
    assert result.valid is valid
    assert [(i.path, i.message) for i in result.errors] == issues


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        ({"data": [{"_id": "c1"}]}, "data"),
        ({"records": [{"_id": "c1"}]}, "records"),
        ({"rows": [{"_id": "c1"}]}, "rows"),
        ({"channels": [{"_id": "c1"}], "count": 1}, "channels"),
        ({"success": True, "payload": [{"_id": "c1"}]}, "the only list"),
        ([{"_id": "c1"}], "bare"),
    ],
)
def test_unpaged_lists_in_any_envelope(answer: Any, key: str) -> None:
    c, _ = client(always(200, answer))
    assert [ch.id for ch in c.list_channels()] == ["c1"], key


def test_async_client_is_as_tolerant() -> None:
    import asyncio

    async def main() -> None:
        c, _ = aclient(always(204))
        async with c:
            sent = await c.send_message("contact1", "hello")
            assert sent.id is None
            processed = await c.process_messages("conv1", [{"text": "x"}])
            assert processed.conversationId == "conv1"

    asyncio.run(main())


# ---- 2. pagination dialects ------------------------------------------------------------------

ITEMS = [{"_id": f"c{i:02d}"} for i in range(23)]


def skip_server(request: httpx.Request) -> httpx.Response:
    q = request.url.params
    limit, skip = int(q.get("limit", 10)), int(q.get("skip", 0))
    return httpx.Response(200, json={"data": ITEMS[skip : skip + limit], "total": len(ITEMS)})


def page_server(meta: str, size: int = 10) -> Handler:
    """Pages by number, ignoring skip; states the end by ``meta``: totalPages, hasNextPage."""

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", 1))
        chunk = ITEMS[(page - 1) * size : page * size]
        pages = -(-len(ITEMS) // size)
        if meta == "totalPages":
            body: dict[str, Any] = {"docs": chunk, "page": page, "totalPages": pages}
        elif meta == "hasNextPage":
            body = {"items": chunk, "page": page, "hasNextPage": page < pages}
        else:  # mongoose-paginate's nested shape
            body = {"success": True, "data": {"docs": chunk, "page": page, "pages": pages}}
        return httpx.Response(200, json=body)

    return answer


def cursor_server(style: str, size: int = 10) -> Handler:
    """Pages by an opaque cursor: ``nextCursor`` (null at the end) or ``has_more`` + ``next``."""

    def answer(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("cursor", "k0")[1:])
        chunk = ITEMS[start : start + size]
        more = start + size < len(ITEMS)
        token = f"k{start + size}" if more else None
        if style == "nextCursor":
            body: dict[str, Any] = {"data": chunk, "nextCursor": token}
        elif style == "has_more":
            body = {"data": chunk, "has_more": more, "next_cursor": token}
        else:
            body = {"results": chunk, "meta": {"next": token}}
        return httpx.Response(200, json=body)

    return answer


def _ids(c: AutoTalkClient) -> list[str | None]:
    return [conversation.id for conversation in c.list_conversations(page_size=10)]


EXPECTED = [item["_id"] for item in ITEMS]


def test_skip_paging_still_works_and_probes_page_numbers_first() -> None:
    c, rec = client(skip_server)
    assert _ids(c) == EXPECTED
    assert rec.queries()[0] == {"limit": "10", "skip": "0", "page": "1"}
    assert rec.queries()[1] == {"limit": "10", "skip": "10"}


@pytest.mark.parametrize("meta", ["totalPages", "hasNextPage", "nested"])
def test_page_number_paging_is_detected(meta: str) -> None:
    c, rec = client(page_server(meta))
    assert _ids(c) == EXPECTED
    assert [q.get("page") for q in rec.queries()] == ["1", "2", "3"]
    assert "skip" not in rec.queries()[1]


@pytest.mark.parametrize("style", ["nextCursor", "has_more", "meta-next"])
def test_cursor_paging_is_detected(style: str) -> None:
    c, rec = client(cursor_server(style))
    assert _ids(c) == EXPECTED
    assert [q.get("cursor") for q in rec.queries()] == [None, "k10", "k20"]


def test_a_server_that_ignores_skip_and_states_nothing_is_paged_by_number() -> None:
    def bare_pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", 1))
        return httpx.Response(200, json=ITEMS[(page - 1) * 10 : page * 10])

    c, rec = client(bare_pages)
    assert _ids(c) == EXPECTED  # skip=10, then offset=10 repeated page 1: page=2 worked
    assert rec.queries()[2] == {"limit": "10", "offset": "10"}
    assert rec.queries()[3] == {"limit": "10", "page": "2"}


def test_a_server_that_ignores_every_paging_parameter_is_a_clear_error() -> None:
    c, _ = client(always(200, {"data": ITEMS[:10], "status": "ok"}))
    with pytest.raises(AutoTalkError) as excinfo:
        list(c.list_conversations(page_size=10))
    text = str(excinfo.value)
    assert "same page twice" in text
    assert "keys {data, status}" in text
    assert "page_style" in text and "AUTOTALK_PAGING" in text
    assert "for skip=10, then for offset=10, then for page=2" in text  # every style tried


def test_explicit_cursor_style_refuses_an_answer_without_a_cursor() -> None:
    c, _ = client(skip_server, page_style="cursor")
    with pytest.raises(AutoTalkError) as excinfo:
        list(c.list_conversations(page_size=10))
    text = str(excinfo.value)
    assert "states no next cursor" in text and "keys {data, total}" in text
    assert "AUTOTALK_PAGING" in text


def test_explicit_page_style_sends_only_page_numbers() -> None:
    c, rec = client(page_server("totalPages"), page_style="page")
    assert _ids(c) == EXPECTED
    assert rec.queries()[0] == {"limit": "10", "page": "1"}


def test_explicit_skip_style_never_sends_page() -> None:
    c, rec = client(skip_server, page_style="skip")
    assert _ids(c) == EXPECTED
    assert all("page" not in q for q in rec.queries())


def test_dynadata_lists_never_probe_with_page_numbers() -> None:
    """Unknown query parameters of a Dynadata list are field filters: ``page=1`` would filter."""
    c, rec = client(skip_server)
    assert len(list(c.list_dynadata_items("clients", page_size=10))) == 23
    assert rec.queries()[0] == {"limit": "10", "skip": "0"}


def test_a_cursor_answer_that_says_more_but_gives_no_cursor_is_refused() -> None:
    c, _ = client(always(200, {"data": ITEMS[:3], "has_more": True, "next_cursor": None}))
    with pytest.raises(AutoTalkError, match="gives no cursor"):
        list(c.list_conversations(page_size=3))


def test_the_async_client_pages_the_same_way() -> None:
    import asyncio

    async def main() -> list[str | None]:
        c, _ = aclient(cursor_server("nextCursor"))
        async with c:
            return [conversation.id async for conversation in c.list_conversations(page_size=10)]

    assert asyncio.run(main()) == EXPECTED


def link_server(shape: str) -> Handler:
    """Pages by links the answer gives: relative to the answer, absolute, or in a Link header."""

    def answer(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("at", 0))
        chunk = ITEMS[start : start + 10]
        nxt = f"?at={start + 10}" if start + 10 < len(ITEMS) else None
        if shape == "relative":
            return httpx.Response(200, json={"results": chunk, "next": nxt})
        if shape == "hal":
            href = None if nxt is None else f"{BASE}/conversations{nxt}"
            return httpx.Response(200, json={"data": chunk, "_links": {"next": {"href": href}}})
        links = f'<{BASE}/conversations{nxt}>; rel="next"' if nxt else ""
        return httpx.Response(200, json=chunk, headers={"link": links} if links else {})

    return answer


@pytest.mark.parametrize("shape", ["relative", "hal", "header"])
def test_next_links_are_followed_relative_to_the_answer(shape: str) -> None:
    c, rec = client(link_server(shape))
    assert _ids(c) == EXPECTED
    assert [r.url.params.get("at") for r in rec.requests] == [None, "10", "20"]
    assert all(r.url.host == "api.example.test" for r in rec.requests)


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v1/conversations?at=10",
        "http://api.example.test/v1/conversations?at=10",  # a downgrade: the key in clear text
        "https://api.example.test:8443/v1/conversations?at=10",
        "//evil.example/v1/conversations?at=10",
    ],
)
def test_a_next_link_off_the_base_url_s_origin_is_refused(link: str) -> None:
    c, rec = client(always(200, {"data": ITEMS[:10], "next": link}))
    with pytest.raises(AutoTalkError, match="not followed") as refused:
        list(c.list_conversations(page_size=10))
    assert len(rec.requests) == 1 and KEY not in str(refused.value)


def test_link_headers_are_read_as_rfc_8288_says() -> None:
    header = '<https://a.test/x?p=2>; rel="next", <https://a.test/x?p=9>; rel="last prev"'
    assert link_relations(header) == {
        "next": "https://a.test/x?p=2",
        "last": "https://a.test/x?p=9",
        "prev": "https://a.test/x?p=9",
    }
    assert link_relations("<https://a.test/x>; title=next") == {}
    assert link_relations(None) == {}


def test_the_offset_answer_of_the_issue_is_paged_by_offset() -> None:
    """``{items, offset, limit, total}``: a server that reads ``offset`` and ignores ``skip``."""

    def offset_server(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params.get("offset", 0)), 4
        body = {"items": ITEMS[offset : offset + limit], "offset": offset, "limit": limit}
        return httpx.Response(200, json={**body, "total": len(ITEMS)})

    c, rec = client(offset_server)
    assert [i.id for i in c.list_dynadata_items("orders", page_size=10)] == EXPECTED
    assert [q.get("offset") for q in rec.queries()] == [None, "4", "8", "12", "16", "20"]


@pytest.mark.parametrize(
    ("answer", "style"),
    [
        ({"data": [], "total": 0, "limit": 10, "skip": 0}, "skip"),
        ([], "skip"),
        ({"docs": [], "page": 1, "totalPages": 1}, "page"),
        ({"items": [], "hasNextPage": False}, "page"),
        ({"data": [], "nextCursor": None}, "cursor"),
        ({"data": [], "pageInfo": {"endCursor": "x"}}, "cursor"),
        ({"data": [], "next": "abc"}, "cursor"),
        ({"data": [], "next": 2}, "page"),
        ({"data": [], "has_more": False}, "skip"),
    ],
)
def test_detect_style(answer: Any, style: str) -> None:
    assert detect_style(read_page(answer)) == style


def test_pager_rejects_an_unknown_style_and_a_non_list() -> None:
    with pytest.raises(ValueError, match=r"page_style \(AUTOTALK_PAGING\) must be one of auto, "):
        Pager(10, style="pages")  # type: ignore[arg-type]
    with pytest.raises(PageShapeError, match="keys: error, status"):
        Pager(10).feed({"status": 1, "error": "x"})


# ---- 5. auth scheme and the configuration ------------------------------------------------------


def test_bearer_sends_authorization_and_never_x_api_key() -> None:
    c, rec = client(always(200, {"_id": "co"}), auth_scheme="bearer")
    c.get_self()
    headers = rec.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in headers
    assert KEY not in repr(c._http_options["auth"])


def test_the_default_scheme_is_x_api_key() -> None:
    c, rec = client(always(200, {"_id": "co"}))
    c.get_self()
    assert rec.requests[0].headers["x-api-key"] == KEY
    assert "authorization" not in rec.requests[0].headers


@pytest.mark.parametrize(
    ("scheme", "used", "other"),
    [("x-api-key", "x-api-key header", "auth_scheme='bearer'"), ("bearer", "Bearer", "x-api-key")],
)
def test_a_401_names_the_scheme_used_and_the_other(scheme: str, used: str, other: str) -> None:
    c, _ = client(always(401, {"error": "unauthorized", "echo": KEY}), auth_scheme=scheme)
    with pytest.raises(AuthenticationError) as excinfo:
        c.get_self()
    text = str(excinfo.value)
    assert used in text and other in text and "AUTOTALK_AUTH_SCHEME" in text
    assert KEY not in text and KEY not in (excinfo.value.body or "")


def test_bad_auth_scheme_and_key_in_headers_are_refused() -> None:
    with pytest.raises(ValueError, match="auth_scheme must be one of x-api-key, bearer"):
        AutoTalkClient(KEY, BASE, auth_scheme="basic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"page_style \(AUTOTALK_PAGING\) must be one of"):
        AutoTalkClient(KEY, BASE, page_style="pages")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in headers"):
        AutoTalkClient(KEY, BASE, headers={"Authorization": f"Bearer {KEY}"})


def test_settings_and_block_carry_auth_scheme_and_page_style(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", KEY)
    monkeypatch.setenv("AUTOTALK_AUTH_SCHEME", "bearer")
    monkeypatch.setenv("AUTOTALK_PAGE_STYLE", "cursor")
    settings = AutoTalkSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.auth_scheme, settings.page_style) == ("bearer", "cursor")
    with AutoTalkClient.from_settings(settings) as c:
        assert (c.auth_scheme, c.page_style) == ("bearer", "cursor")
    block = AutoTalkCredentials.from_settings(settings)
    assert (block.auth_scheme, block.page_style) == ("bearer", "cursor")
    with block.get_client() as c:
        assert (c.auth_scheme, c.page_style) == ("bearer", "cursor")
    monkeypatch.setenv("AUTOTALK_AUTH_SCHEME", "basic")
    with pytest.raises(ValidationError, match="auth_scheme"):
        AutoTalkSettings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="page_style"):
        AutoTalkCredentials(api_key=SecretStr(KEY), page_style="pages")  # type: ignore[arg-type]


def test_block_fields_state_their_units() -> None:
    fields = AutoTalkCredentials.model_fields
    assert fields["connect_timeout"].title == "Connect timeout (seconds)"
    assert fields["read_timeout"].title == "Read timeout (seconds)"
    assert all((f.description or "").endswith(".") for f in fields.values())
