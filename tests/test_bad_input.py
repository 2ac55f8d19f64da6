"""Bad input, everywhere a user can hand us some: a clear error naming what was wrong, and
nothing lost or done (issue 8, item 3).

One table per public surface: the clients (sync and async), the tasks, the credentials block and
settings, the flows' parameter models and the flows themselves. Every case asserts the exception
type (our errors, pydantic's ValidationError or a ValueError/TypeError we raise) and that the
message names the bad field or value; and that the sandbox holds exactly what it held before
(nothing sent, created or changed), with no request at all when the client could tell.

Then a property test over the client's inputs (ids, type and function names, filter values,
message text): every request stays under ``/v1/`` with each id as exactly one path segment, and
nothing but our errors or a documented ValueError/TypeError naming the parameter comes out.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.errors import (
    MAX_BODY_CHARS,
    AutoTalkError,
    InvalidRequestError,
    NotFoundError,
)
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.sandbox import SandboxHandle

CONTACT = object()  # placeholder: replaced by a real contact id of the sandbox
CONVERSATION = object()  # placeholder: replaced by that contact's conversation id


# ---- the sandbox's whole state, to prove a refused call changed nothing ---------------------


def snapshot(sb: SandboxHandle) -> dict[str, Any]:
    """Everything the sandbox holds (items, conversations, messages, sends)."""
    state = sb.runtime.state
    with state.lock:
        return copy.deepcopy(
            {
                "items": state.items,
                "conversations": state.conversations,
                "messages": state.messages,
                "sent": state.sent,
            }
        )


@dataclass
class Guard:
    """Before/after view of the sandbox around one bad call."""

    sb: SandboxHandle
    before: dict[str, Any] = field(init=False)
    requests: int = field(init=False)

    def __post_init__(self) -> None:
        self.before = snapshot(self.sb)
        self.requests = self.sb.stats()["requests"]

    def assert_nothing_changed(self, *, reached_server: bool) -> None:
        assert snapshot(self.sb) == self.before, "a refused call changed the sandbox"
        made = self.sb.stats()["requests"] - self.requests
        if not reached_server:
            assert made == 0, f"refused input still made {made} request(s)"


def assert_names(exc: BaseException, fragments: tuple[str, ...], key: str | None = None) -> None:
    text = str(exc)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not named in: {text}"
    if key is not None:
        assert key not in text and key not in repr(exc)


# ---- the clients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallCase:
    """A client method or task (``name``) called with bad input, and what it must raise."""

    id: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exc: type[BaseException]
    names: tuple[str, ...]
    reaches_server: bool = False


def case(
    id: str,
    method: str,
    *args: Any,
    exc: type[BaseException],
    names: tuple[str, ...],
    server: bool = False,
    **kwargs: Any,
) -> Any:
    return pytest.param(CallCase(id, method, args, kwargs, exc, names, server), id=f"{method}-{id}")


NOT_JSON = object()


class WithContact(str):
    """Text with ``{contact}`` replaced by a real contact id of the sandbox."""


# A task called outside a flow run logs to Prefect's API handler, which warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs':UserWarning")

CLIENT_CASES = [
    # messages
    case("empty-text", "send_message", CONTACT, "", exc=ValidationError, names=("message",)),
    case("blank-text", "send_message", CONTACT, " \n\t", exc=ValueError, names=("message",)),
    case("int-text", "send_message", CONTACT, 123, exc=ValidationError, names=("message",)),
    case("none-text", "send_message", CONTACT, None, exc=ValidationError, names=("message",)),
    case(
        "surrogate-text", "send_message", CONTACT, "hi \ud800", exc=ValueError, names=("message",)
    ),
    case("int-contact", "send_message", 123, "hi", exc=TypeError, names=("contact_id", "int")),
    case("none-contact", "send_message", None, "hi", exc=TypeError, names=("contact_id",)),
    case("empty-contact", "send_message", "", "hi", exc=ValueError, names=("contact_id",)),
    case(
        "int-channel",
        "send_message",
        CONTACT,
        "hi",
        channelId=5,
        exc=ValidationError,
        names=("channelId",),
    ),
    case(
        "surrogate-channel",
        "send_message",
        CONTACT,
        "hi",
        channelId="c\udfff",
        exc=ValueError,
        names=("channelId",),
    ),
    case(
        "unserialisable-field",
        "send_message",
        CONTACT,
        "hi",
        extra=NOT_JSON,
        exc=TypeError,
        names=("extra", "object"),
    ),
    case(
        "unknown-contact",
        "send_message",
        "no-such-contact",
        "hi",
        exc=NotFoundError,
        names=("no-such-contact",),
        server=True,
    ),
    # conversations
    case("no-contact", "create_conversation", exc=ValidationError, names=("contactId",)),
    case(
        "empty-contact",
        "create_conversation",
        contactId="",
        exc=ValidationError,
        names=("contactId",),
    ),
    case(
        "int-contact", "create_conversation", contactId=7, exc=ValidationError, names=("contactId",)
    ),
    case("no-messages", "process_messages", CONVERSATION, [], exc=ValueError, names=("messages",)),
    case(
        "string-messages",
        "process_messages",
        CONVERSATION,
        "hello",
        exc=TypeError,
        names=("messages", "str"),
    ),
    # Messages given as mappings travel unchanged (issue 14): AutoTalk, not the client, judges
    # their role and text; only what cannot travel as JSON is refused here.
    case(
        "nan-in-message",
        "process_messages",
        CONVERSATION,
        [{"message": math.nan}],
        exc=ValueError,
        names=("messages[0]",),
    ),
    case(
        "int-conversation",
        "process_messages",
        1,
        [{"message": "x"}],
        exc=TypeError,
        names=("conversation_id",),
    ),
    case("object-filter", "list_conversations", status=NOT_JSON, exc=TypeError, names=("status",)),
    case("nan-filter", "list_conversations", status=math.nan, exc=ValueError, names=("status",)),
    case(
        "surrogate-filter", "list_conversations", status="\ud800", exc=ValueError, names=("status",)
    ),
    case("limit-filter", "list_conversations", limit=5, exc=ValueError, names=("limit",)),
    case("zero-page", "list_conversations", page_size=0, exc=ValueError, names=("page_size",)),
    case("bool-page", "list_conversations", page_size=True, exc=ValueError, names=("page_size",)),
    case(
        "unknown-status",
        "list_conversations",
        status="maybe",
        exc=InvalidRequestError,
        names=("status", "maybe"),
        server=True,
    ),
    case("empty-conversation", "list_messages", "", exc=ValueError, names=("conversation_id",)),
    case(
        "negative-page",
        "list_messages",
        CONVERSATION,
        page_size=-1,
        exc=ValueError,
        names=("page_size", "-1"),
    ),
    # dynadata: types, ids, bodies
    case("int-type", "list_dynadata_items", 5, exc=TypeError, names=("type", "int")),
    case("empty-type", "list_dynadata_items", "", exc=ValueError, names=("type",)),
    case(
        "unknown-type",
        "list_dynadata_items",
        "nosuchtype",
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    case(
        "unknown-type",
        "get_dynadata_schema",
        "nosuchtype",
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    case(
        "unknown-type",
        "get_dynadata_zod_schema",
        "no such type",
        exc=NotFoundError,
        names=("no such type",),
        server=True,
    ),
    case(
        "unknown-type",
        "create_dynadata_item",
        "nosuchtype",
        {"name": "x"},
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    case(
        "unknown-type",
        "validate_dynadata_item",
        "nosuchtype",
        {"name": "x"},
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    case(
        "unknown-type",
        "execute_dynadata_function",
        "nosuchtype",
        "count",
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    case(
        "unknown-type",
        "update_dynadata_item",
        "nosuchtype",
        CONTACT,
        {"name": "x"},
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    case("none-type", "get_dynadata_schema", None, exc=TypeError, names=("type",)),
    case("empty-type", "get_dynadata_zod_schema", "", exc=ValueError, names=("type",)),
    case("none-id", "get_dynadata_item", "clients", None, exc=TypeError, names=("item_id",)),
    case("bytes-id", "get_dynadata_item", "clients", b"x", exc=TypeError, names=("item_id",)),
    case("list-id", "get_dynadata_item", "clients", ["x"], exc=TypeError, names=("item_id",)),
    case(
        "surrogate-id", "get_dynadata_item", "clients", "\ud800", exc=ValueError, names=("item_id",)
    ),
    case(
        "dot-dot-id",
        "get_dynadata_item",
        "clients",
        "..",
        exc=ValueError,
        names=("item_id", "dots"),
    ),
    case("dot-id", "get_dynadata_schema", ".", exc=ValueError, names=("type", "dots")),
    case(
        "escaping-id",
        "get_dynadata_item",
        "clients",
        "../../types",
        exc=ValueError,
        names=("item_id", "'/'"),
    ),
    case(
        "backslash-id",
        "send_message",
        "..\\self",
        "hi",
        exc=ValueError,
        names=("contact_id", "'\\\\'"),
    ),
    case(
        "type-reaching-an-item",
        "execute_dynadata_function",
        WithContact("clients/item/{contact}"),
        "addTag",
        {"tag": "escaped"},
        exc=ValueError,
        names=("type", "'/'"),
    ),
    case(
        "slash-in-function",
        "execute_dynadata_item_function",
        "clients",
        CONTACT,
        "addTag/../removeTag",
        exc=ValueError,
        names=("function_name", "'/'"),
    ),
    case(
        "list-data", "create_dynadata_item", "clients", [1], exc=TypeError, names=("data", "list")
    ),
    case(
        "object-in-data",
        "create_dynadata_item",
        "clients",
        {"name": NOT_JSON},
        exc=TypeError,
        names=("data", "name", "object"),
    ),
    case(
        "nan-in-data",
        "create_dynadata_item",
        "clients",
        {"score": math.nan},
        exc=ValueError,
        names=("data", "score"),
    ),
    case(
        "surrogate-in-data",
        "create_dynadata_item",
        "clients",
        {"name": "x\ud800"},
        exc=ValueError,
        names=("data", "name"),
    ),
    case(
        "unknown-field",
        "create_dynadata_item",
        "clients",
        {"name": "A", "phone": "+34600000000", "bogus": 1},
        exc=InvalidRequestError,
        names=("bogus",),
        server=True,
    ),
    case(
        "other-id-in-data",
        "update_dynadata_item",
        "clients",
        CONTACT,
        {"_id": "other"},
        exc=ValueError,
        names=("_id", "other"),
    ),
    case("empty-id", "update_dynadata_item", "clients", "", {}, exc=ValueError, names=("item_id",)),
    case(
        "inf-in-data",
        "update_dynadata_item",
        "clients",
        CONTACT,
        {"score": math.inf},
        exc=ValueError,
        names=("score",),
    ),
    case("string-data", "validate_dynadata_item", "clients", "x", exc=TypeError, names=("data",)),
    # functions
    case(
        "empty-function",
        "execute_dynadata_function",
        "clients",
        "",
        exc=ValueError,
        names=("function_name",),
    ),
    case(
        "int-function",
        "execute_dynadata_function",
        "clients",
        3,
        exc=TypeError,
        names=("function_name",),
    ),
    case(
        "list-args",
        "execute_dynadata_function",
        "clients",
        "count",
        [1],
        exc=TypeError,
        names=("args", "list"),
    ),
    case(
        "object-in-args",
        "execute_dynadata_function",
        "clients",
        "count",
        {"status": NOT_JSON},
        exc=TypeError,
        names=("args", "status"),
    ),
    case(
        "unknown-function",
        "execute_dynadata_function",
        "clients",
        "nosuchfn",
        exc=NotFoundError,
        names=("nosuchfn",),
        server=True,
    ),
    case(
        "empty-function",
        "execute_dynadata_item_function",
        "clients",
        CONTACT,
        "",
        exc=ValueError,
        names=("function_name",),
    ),
    case(
        "int-id",
        "execute_dynadata_item_function",
        "clients",
        1,
        "addTag",
        exc=TypeError,
        names=("item_id",),
    ),
    case(
        "unknown-item",
        "execute_dynadata_item_function",
        "clients",
        "no-such-item",
        "addTag",
        {"tag": "x"},
        exc=NotFoundError,
        names=("no-such-item",),
        server=True,
    ),
]


def _fill(value: Any, contact: str, conversation: str) -> Any:
    if isinstance(value, WithContact):
        return str(value).format(contact=contact)
    if value is CONTACT:
        return contact
    if value is CONVERSATION:
        return conversation
    return value


def _resolve(c: CallCase, sb: SandboxHandle) -> tuple[list[Any], dict[str, Any]]:
    contact = sb.contact_ids()[0]
    conversation = next(iter(sb.runtime.state.conversations), "no-conversation")
    args = [_fill(a, contact, conversation) for a in c.args]
    kwargs = {k: _fill(v, contact, conversation) for k, v in c.kwargs.items()}
    return args, kwargs


def _no_retries() -> RetryPolicy:
    return RetryPolicy(attempts=1)


@pytest.mark.parametrize("c", CLIENT_CASES)
def test_sync_client_refuses_bad_input(c: CallCase, autotalk_sandbox: SandboxHandle) -> None:
    sb = autotalk_sandbox
    args, kwargs = _resolve(c, sb)
    guard = Guard(sb)
    with (
        AutoTalkClient(sb.api_key, sb.base_url, retry_policy=_no_retries()) as client,
        pytest.raises(c.exc) as excinfo,
    ):
        result = getattr(client, c.name)(*args, **kwargs)
        if isinstance(result, Iterator):
            list(result)
    assert_names(excinfo.value, c.names, key=sb.api_key)
    guard.assert_nothing_changed(reached_server=c.reaches_server)


async def _call_async(client: AsyncAutoTalkClient, c: CallCase, args: list[Any], kw: Any) -> Any:
    result = getattr(client, c.name)(*args, **kw)
    if inspect.isawaitable(result):
        return await result
    return [item async for item in result]


@pytest.mark.parametrize("c", CLIENT_CASES)
async def test_async_client_refuses_bad_input(c: CallCase, autotalk_sandbox: SandboxHandle) -> None:
    sb = autotalk_sandbox
    args, kwargs = _resolve(c, sb)
    guard = Guard(sb)
    async with AsyncAutoTalkClient(sb.api_key, sb.base_url, retry_policy=_no_retries()) as client:
        with pytest.raises(c.exc) as excinfo:
            await _call_async(client, c, args, kwargs)
    assert_names(excinfo.value, c.names, key=sb.api_key)
    await asyncio.to_thread(guard.assert_nothing_changed, reached_server=c.reaches_server)


# ---- constructing a client ---------------------------------------------------------------------

KEY = "sk-bad-input-test-3c9f"


@pytest.mark.parametrize(
    ("kwargs", "exc", "names"),
    [
        ({"api_key": ""}, ValueError, ("api_key",)),
        ({"api_key": "   "}, ValueError, ("api_key",)),
        ({"api_key": None}, TypeError, ("api_key",)),
        ({"base_url": "not a url"}, ValueError, ("base_url", "not a url")),
        ({"base_url": ""}, ValueError, ("base_url",)),
        ({"base_url": 5}, ValueError, ("base_url", "5")),
        ({"base_url": "ftp://api.autotalk.io/v1"}, ValueError, ("base_url", "ftp://")),
        ({"base_url": "https://"}, ValueError, ("base_url",)),
        ({"base_url": "https://exa mple.com/v1"}, ValueError, ("base_url", "exa mple.com")),
        ({"base_url": "https://api.autotalk.io/v1?x=1"}, ValueError, ("base_url", "query")),
        ({"base_url": "https://u:p@api.autotalk.io/v1"}, ValueError, ("base_url", "credentials")),
        ({"base_url": "http://api.autotalk.io/v1"}, ValueError, ("base_url", "plain-http")),
        ({"read_timeout": 0}, ValueError, ("read_timeout",)),
        ({"connect_timeout": -1}, ValueError, ("connect_timeout",)),
        ({"max_connections": 0}, ValueError, ("max_connections",)),
        ({"max_connections": "8"}, TypeError, ("max_connections",)),
        ({"retry_policy": {"attempts": 2}}, TypeError, ("retry_policy",)),
        ({"headers": {"X-Api-Key": "other"}}, ValueError, ("api_key", "headers")),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
@pytest.mark.parametrize("cls", [AutoTalkClient, AsyncAutoTalkClient])
def test_client_construction_refuses_bad_settings(
    cls: type[AutoTalkClient] | type[AsyncAutoTalkClient],
    kwargs: dict[str, Any],
    exc: type[Exception],
    names: tuple[str, ...],
) -> None:
    options: dict[str, Any] = {"api_key": KEY, "base_url": "https://api.autotalk.io/v1", **kwargs}
    with pytest.raises(exc) as excinfo:
        cls(**options)
    assert_names(excinfo.value, names, key=KEY)


# ---- the property: no input escapes its path, nothing but our errors comes out ------------------

BASE = "https://api.autotalk.test/v1"

TRICKY = [
    "/",
    "..",
    ".",
    "../..",
    "%2F",
    "%2e%2e",
    "?",
    "#",
    "a/../../_sandbox/reset",
    "../../_sandbox/reset",
    "x?limit=1",
    "x#y",
    "\\",
    "\x00",
    "\n",
    "\r\n",
    " ",
    "\ud800",
    "é✓🙂",
    "a" * 5000,
    "%",
    ";",
    "@host",
    "//evil.example",
]

texts = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=20),
    st.lists(st.sampled_from([*TRICKY, "a", "b", "1"]), max_size=6).map("".join),
)
ids = st.one_of(texts, st.integers(), st.none(), st.binary(max_size=5))


@dataclass(frozen=True)
class Shape:
    """An endpoint, its path template (segments), and how to call it with generated values."""

    template: tuple[str, ...]
    call: Callable[[AutoTalkClient, dict[str, Any]], Any]
    params: tuple[str, ...]  # the generated values that must be exactly one segment each


SHAPES = {
    "send_message": Shape(
        ("contacts", "{contact_id}", "send_message"),
        lambda c, v: c.send_message(v["contact_id"], v["text"]),
        ("contact_id",),
    ),
    "list_messages": Shape(
        ("conversations", "{conversation_id}", "messages"),
        lambda c, v: list(c.list_messages(v["conversation_id"], status=v["filter"])),
        ("conversation_id",),
    ),
    "process_messages": Shape(
        ("conversations", "{conversation_id}", "messages"),
        lambda c, v: c.process_messages(v["conversation_id"], [{"message": v["text"]}]),
        ("conversation_id",),
    ),
    "list_conversations": Shape(
        ("conversations",),
        lambda c, v: list(c.list_conversations(contactId=v["filter"], status=v["text"])),
        (),
    ),
    "list_dynadata_items": Shape(
        ("dynadata", "type", "{type}", "list"),
        lambda c, v: list(c.list_dynadata_items(v["type"], status=v["filter"])),
        ("type",),
    ),
    "get_dynadata_item": Shape(
        ("dynadata", "type", "{type}", "item", "{item_id}"),
        lambda c, v: c.get_dynadata_item(v["type"], v["item_id"]),
        ("type", "item_id"),
    ),
    "create_dynadata_item": Shape(
        ("dynadata", "type", "{type}", "create"),
        lambda c, v: c.create_dynadata_item(v["type"], {"name": v["text"]}),
        ("type",),
    ),
    "update_dynadata_item": Shape(
        ("dynadata", "type", "{type}", "update"),
        lambda c, v: c.update_dynadata_item(v["type"], v["item_id"], {"name": v["text"]}),
        ("type",),
    ),
    "get_dynadata_zod_schema": Shape(
        ("dynadata", "type", "{type}", "schema", "zod"),
        lambda c, v: c.get_dynadata_zod_schema(v["type"]),
        ("type",),
    ),
    "execute_dynadata_function": Shape(
        ("dynadata", "type", "{type}", "executeFunction", "{function_name}"),
        lambda c, v: c.execute_dynadata_function(v["type"], v["function_name"], {"q": v["text"]}),
        ("type", "function_name"),
    ),
    "execute_dynadata_item_function": Shape(
        ("dynadata", "type", "{type}", "item", "{item_id}", "executeFunction", "{function_name}"),
        lambda c, v: c.execute_dynadata_item_function(v["type"], v["item_id"], v["function_name"]),
        ("type", "item_id", "function_name"),
    ),
}


#: how our own refusals start: the parameter, the filter, the body field or the model field
REFUSAL = re.compile(
    r"(contact_id|conversation_id|type|item_id|function_name) |filter '|(data|args|messages)\[|"
    r"message must not be blank|\d+ validation errors? for \w+\n(message|contactId|channelId)"
)


def _documented_refusal(exc: BaseException) -> bool:
    """A ValueError/TypeError of ours that names the parameter (or field) it refused."""
    return isinstance(exc, (ValueError, TypeError)) and bool(REFUSAL.match(str(exc)))


def _check_request(request: httpx.Request, shape: Shape, values: dict[str, Any]) -> None:
    url = request.url
    assert url.scheme == "https" and url.host == "api.autotalk.test"
    assert url.fragment == ""
    raw = url.raw_path.split(b"?", 1)[0].decode("ascii")
    parts = raw.split("/")
    assert parts[:2] == ["", "v1"], raw
    assert len(parts) == 2 + len(shape.template), raw
    for segment, expected in zip(parts[2:], shape.template, strict=True):
        assert segment not in ("", ".", ".."), raw
        if expected.startswith("{"):
            assert unquote(segment, errors="strict") == values[expected[1:-1]], raw
        else:
            assert segment == expected, raw
    query = httpx.QueryParams(url.query.decode("ascii"))
    assert set(query) <= {"limit", "skip", "page", "cursor", "status", "contactId"}, raw


@given(
    name=st.sampled_from(sorted(SHAPES)),
    contact_id=ids,
    conversation_id=ids,
    type=ids,
    item_id=ids,
    function_name=ids,
    text=texts,
    filter=st.one_of(texts, st.integers(), st.floats(), st.booleans(), st.none()),
    status=st.sampled_from([200, 404, 422, 503]),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_client_input_escapes_its_path(name: str, status: int, **values: Any) -> None:
    shape = SHAPES[name]
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if status == 200:
            return httpx.Response(200, json={"data": [], "total": 0})
        return httpx.Response(status, json={"error": "nope", "message": "refused"})

    transport = httpx.MockTransport(answer)
    with AutoTalkClient(KEY, BASE, transport=transport, retry_policy=_no_retries()) as client:
        try:
            shape.call(client, values)
        except AutoTalkError:
            assert requests, "an AutoTalkError without a request"
        except (ValueError, TypeError) as exc:
            assert _documented_refusal(exc), f"{type(exc).__name__}: {exc}"
            assert not requests, "refused input after a request was made"
    for request in requests:
        _check_request(request, shape, values)


# The server echoes the value in its 404 body; an error body is cut at MAX_BODY_CHARS (8192), so
# a value longer than that cannot be read back whole (test_errors covers the cut itself).
echoable_texts = texts.filter(lambda text: len(text) < MAX_BODY_CHARS - 1000)


@given(type=echoable_texts, item_id=echoable_texts, function_name=texts)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_input_reaches_another_endpoint_of_the_sandbox(
    autotalk_sandbox_server: SandboxHandle, **values: str
) -> None:
    """Against the real server: a lookup answers 404 for the very id or type we gave (the server
    saw one segment and decoded it back to our text), never another endpoint's answer, never a
    5xx; and nothing in the sandbox changes."""
    sb = autotalk_sandbox_server
    before = snapshot(sb)
    item_id, type_name = values["item_id"], values["type"]
    calls: list[tuple[Callable[[AutoTalkClient], Any], str]] = [
        (lambda c: c.get_dynadata_item("clients", item_id), f"_id {item_id!r}"),
        (lambda c: c.get_dynadata_schema(type_name), f"Dynadata type {type_name!r}"),
        (
            lambda c: c.execute_dynadata_item_function("clients", item_id, values["function_name"]),
            f"_id {item_id!r}",
        ),
    ]
    with AutoTalkClient(sb.api_key, sb.base_url, retry_policy=_no_retries()) as client:
        for call, echo in calls:
            try:
                call(client)
            except NotFoundError as exc:
                if sb.api_key in echo:  # the key is masked in every error, even when echoed
                    assert sb.api_key not in str(exc)
                else:
                    assert echo in str(exc), f"the server did not see our value: {exc}"
            except (ValueError, TypeError) as exc:
                assert _documented_refusal(exc), f"{type(exc).__name__}: {exc}"
            else:
                assert type_name in {"clients", "orders", "tickets"}, "an answer for our text"
    assert snapshot(sb) == before


# ---- the credentials block and the settings -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"api_key": ""}, ("api_key", "empty")),
        ({"api_key": "   "}, ("api_key", "empty")),
        ({"base_url": "not a url"}, ("base_url", "not a url")),
        ({"base_url": ""}, ("base_url",)),
        ({"base_url": "api.autotalk.io/v1"}, ("base_url", "api.autotalk.io/v1")),
        ({"base_url": "https://exa mple.com/v1"}, ("base_url", "exa mple.com")),
        ({"base_url": "http://api.autotalk.io/v1"}, ("base_url", "plain-http")),
        ({"base_url": "https://u:p@api.autotalk.io/v1"}, ("base_url", "credentials")),
        ({"connect_timeout": 0}, ("connect_timeout",)),
        ({"read_timeout": -1}, ("read_timeout",)),
        ({"retry_attempts": 0}, ("retry_attempts",)),
        ({"max_concurrency": 0}, ("max_concurrency",)),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
def test_credentials_block_refuses_bad_fields(
    kwargs: dict[str, Any], names: tuple[str, ...]
) -> None:
    from autotalk_prefect.credentials import AutoTalkCredentials

    with pytest.raises(ValidationError) as excinfo:
        AutoTalkCredentials(**{"api_key": KEY, **kwargs})
    assert_names(excinfo.value, names, key=KEY)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"AUTOTALK_BASE_URL": "not a url"}, ("base_url", "not a url")),
        ({"AUTOTALK_BASE_URL": "ftp://api.autotalk.io"}, ("base_url", "ftp://")),
        ({"AUTOTALK_BASE_URL": "http://api.autotalk.io/v1"}, ("base_url", "plain-http")),
        ({"AUTOTALK_MAX_CONCURRENCY": "0"}, ("max_concurrency",)),
        ({"AUTOTALK_READ_TIMEOUT": "soon"}, ("read_timeout",)),
        ({"AUTOTALK_RETRY_ATTEMPTS": "-2"}, ("retry_attempts",)),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_settings_refuse_bad_environment(
    env: dict[str, str], names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotalk_prefect.api.settings import AutoTalkSettings

    monkeypatch.setenv("AUTOTALK_API_KEY", KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as excinfo:
        AutoTalkSettings(_env_file=None)  # type: ignore[call-arg]
    assert_names(excinfo.value, names, key=KEY)


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_key_in_the_environment_is_reported_missing(
    blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotalk_prefect.api.settings import AutoTalkSettings
    from autotalk_prefect.credentials import AutoTalkCredentials, MissingCredentialsError

    monkeypatch.setenv("AUTOTALK_API_KEY", blank)
    assert AutoTalkSettings(_env_file=None).api_key is None  # type: ignore[call-arg]
    with pytest.raises(MissingCredentialsError, match="AUTOTALK_API_KEY"):
        AutoTalkCredentials.from_settings(AutoTalkSettings(_env_file=None))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="AUTOTALK_API_KEY"):
        AutoTalkClient.from_settings(AutoTalkSettings(_env_file=None))  # type: ignore[call-arg]


# ---- the tasks ---------------------------------------------------------------------------------


def task_case(
    id: str,
    task: str,
    *args: Any,
    exc: type[BaseException],
    names: tuple[str, ...],
    server: bool = False,
    **kwargs: Any,
) -> Any:
    return pytest.param(CallCase(id, task, args, kwargs, exc, names, server), id=f"{task}-{id}")


TASK_CASES = [
    task_case("empty-text", "send_message", CONTACT, "", exc=ValidationError, names=("message",)),
    task_case("blank-text", "send_message", CONTACT, "  ", exc=ValueError, names=("message",)),
    task_case("int-contact", "send_message", 42, "hi", exc=TypeError, names=("contact_id",)),
    task_case(
        "unknown-type",
        "get_dynadata_item",
        "nosuchtype",
        "x",
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    task_case(
        "unknown-type",
        "list_dynadata_items",
        "nosuchtype",
        exc=NotFoundError,
        names=("nosuchtype",),
        server=True,
    ),
    task_case(
        "negative-max-items",
        "list_dynadata_items",
        "clients",
        max_items=-1,
        exc=ValueError,
        names=("max_items", "-1"),
    ),
    task_case("list-data", "create_dynadata_item", "clients", [1], exc=TypeError, names=("data",)),
    task_case(
        "unknown-function",
        "execute_dynadata_function",
        "clients",
        "nosuchfn",
        exc=NotFoundError,
        names=("nosuchfn",),
        server=True,
    ),
    task_case("empty-id", "get_dynadata_item", "clients", "", exc=ValueError, names=("item_id",)),
    task_case("limit-filter", "list_conversations", limit=3, exc=ValueError, names=("limit",)),
    task_case(
        "no-messages", "process_messages", CONVERSATION, [], exc=ValueError, names=("messages",)
    ),
]


def _block(sb: SandboxHandle) -> Any:
    from autotalk_prefect.credentials import AutoTalkCredentials

    return AutoTalkCredentials(api_key=sb.api_key, base_url=sb.base_url, retry_attempts=1)


@pytest.mark.parametrize("c", TASK_CASES)
def test_sync_tasks_refuse_bad_input(c: CallCase, autotalk_sandbox: SandboxHandle) -> None:
    from autotalk_prefect import tasks

    sb = autotalk_sandbox
    args, kwargs = _resolve(c, sb)  # type: ignore[arg-type]
    guard = Guard(sb)
    with pytest.raises(c.exc) as excinfo:
        getattr(tasks, c.name)(*args, credentials=_block(sb), _sync=True, **kwargs)
    assert_names(excinfo.value, c.names, key=sb.api_key)
    guard.assert_nothing_changed(reached_server=c.reaches_server)


@pytest.mark.parametrize("c", TASK_CASES[:5])
async def test_async_tasks_refuse_bad_input(c: CallCase, autotalk_sandbox: SandboxHandle) -> None:
    from autotalk_prefect import tasks

    sb = autotalk_sandbox
    args, kwargs = _resolve(c, sb)  # type: ignore[arg-type]
    guard = Guard(sb)
    with pytest.raises(c.exc) as excinfo:
        await getattr(tasks, f"a{c.name}")(*args, credentials=_block(sb), **kwargs)
    assert_names(excinfo.value, c.names, key=sb.api_key)
    await asyncio.to_thread(guard.assert_nothing_changed, reached_server=c.reaches_server)


def test_a_task_refuses_a_key_where_the_block_belongs(autotalk_sandbox: SandboxHandle) -> None:
    from autotalk_prefect.tasks import get_self

    with pytest.raises(TypeError) as excinfo:
        get_self(credentials=autotalk_sandbox.api_key, _sync=True)  # type: ignore[arg-type]
    assert_names(
        excinfo.value, ("credentials", "AutoTalkCredentials"), key=autotalk_sandbox.api_key
    )


# ---- the flows' parameter models ---------------------------------------------------------------


def _models() -> dict[str, Any]:
    from autotalk_prefect.flows.outreach.engine import Audience, QuietHours
    from autotalk_prefect.flows.replies.engine import (
        ReplyRule,
        RunFunction,
        SendAnswer,
        UpdateField,
    )

    return {
        "Audience": Audience,
        "QuietHours": QuietHours,
        "ReplyRule": ReplyRule,
        "RunFunction": RunFunction,
        "SendAnswer": SendAnswer,
        "UpdateField": UpdateField,
    }


MODEL_CASES = [
    ("Audience", {"contact_ids": [1, 2]}, ("contact_ids",)),
    ("Audience", {"contact_ids": []}, ("contact_ids", "empty")),
    ("Audience", {"contact_ids": ["a", " "]}, ("contact_ids", "' '")),
    ("Audience", {"contact_ids": "abc"}, ("contact_ids",)),
    ("Audience", {"dynadata_type": ""}, ("dynadata_type",)),
    ("Audience", {"dynadata_type": 7}, ("dynadata_type",)),
    ("Audience", {"filters": {"status": 1}}, ("filters", "status")),
    ("Audience", {"filters": ["status"]}, ("filters",)),
    ("Audience", {"contact_field": ""}, ("contact_field",)),
    ("QuietHours", {"start": "22:00", "end": "22:00"}, ("start and end",)),
    ("QuietHours", {"start": "25:00", "end": "08:00"}, ("start",)),
    ("QuietHours", {"start": "22:00"}, ("end",)),
    ("QuietHours", {"start": "22:00", "end": "8"}, ("end",)),
    (
        "QuietHours",
        {"start": "22:00", "end": "08:00", "timezone": "Mars/Olympus"},
        ("Mars/Olympus",),
    ),
    ("QuietHours", {"start": "22:00", "end": "08:00", "timezone": ""}, ("timezone",)),
    ("ReplyRule", {"name": ""}, ("name",)),
    ("ReplyRule", {"name": "r", "keywords": ["stop", " "]}, ("keywords",)),
    ("ReplyRule", {"name": "r", "keywords": "stop"}, ("keywords",)),
    ("ReplyRule", {"name": "r", "match": "some"}, ("match", "some")),
    ("ReplyRule", {"name": "r", "actions": [{"kind": "explode"}]}, ("explode",)),
    ("ReplyRule", {"name": "r", "actions": [{"kind": "update_field"}]}, ("field", "value")),
    ("ReplyRule", {"name": "r", "action": {"kind": "send_answer"}, "actions": []}, ("action",)),
    (
        "ReplyRule",
        {"name": "r", "action": {"kind": "send_answer", "template": "Hi {{ name"}},
        ("template", "syntax error", "line 1"),
    ),
    ("UpdateField", {"field": "", "value": 1}, ("field",)),
    ("RunFunction", {"function": "", "args": {}}, ("function",)),
    ("RunFunction", {"function": "addTag", "args": ["x"]}, ("args",)),
    ("SendAnswer", {"template": ""}, ("template",)),
    ("SendAnswer", {"template": "   "}, ("template", "empty")),
    ("SendAnswer", {"template": "{% if x %}open"}, ("template", "syntax error")),
]


@pytest.mark.parametrize(
    ("model", "data", "names"),
    MODEL_CASES,
    ids=[f"{m}-{'-'.join(map(str, d))[:30]}" for m, d, _ in MODEL_CASES],
)
def test_parameter_models_refuse_bad_values(
    model: str, data: dict[str, Any], names: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        _models()[model].model_validate(data)
    assert_names(excinfo.value, names)


@pytest.mark.parametrize(
    ("event", "names"),
    [
        ({}, ("client", "message")),
        ("not json", ("JSON",)),
        (42, ("event", "int")),
        ({"client": {"_id": ""}, "message": {"text": "hi"}}, ("client._id",)),
        ({"client": {"_id": "c1"}, "message": {"text": "hi"}}, ("id", "dedupe")),
        ({"client": {"_id": "c1"}, "message": "hi"}, ("message",)),
    ],
    ids=["empty", "not-json", "int", "empty-contact", "no-event-id", "message-not-object"],
)
def test_reply_events_are_refused_naming_the_field(event: Any, names: tuple[str, ...]) -> None:
    from autotalk_prefect.flows.replies.engine import parse_event

    with pytest.raises(ValueError) as excinfo:
        parse_event(event)
    assert_names(excinfo.value, names)


# ---- the flows, called with bad parameters --------------------------------------------------


@dataclass(frozen=True)
class FlowCase:
    id: str
    flow: str
    params: dict[str, Any]
    exc: type[BaseException] | tuple[type[BaseException], ...]
    names: tuple[str, ...]


def flow_case(
    flow: str,
    id: str,
    exc: type[BaseException] | tuple[type[BaseException], ...],
    names: tuple[str, ...],
    **params: Any,
) -> Any:
    return pytest.param(FlowCase(id, flow, params, exc, names), id=f"{flow}-{id}")


def _param_error() -> type[BaseException]:
    from prefect.exceptions import ParameterTypeError

    return ParameterTypeError


# Prefect validates a flow's parameters against its signature before the body runs and raises
# ParameterTypeError naming the parameter; everything past that is our own validation.
PARAMS = _param_error()
GOOD_TEMPLATE = "Hi {{ name }}, news from us."

FLOW_CASES = [
    # outreach_campaign
    flow_case("outreach", "empty-campaign", ValueError, ("campaign_id",), campaign_id=""),
    flow_case("outreach", "escaping-campaign", ValueError, ("campaign_id",), campaign_id="../x"),
    flow_case("outreach", "int-campaign", PARAMS, ("campaign_id",), campaign_id=12),
    flow_case("outreach", "empty-template", ValueError, ("template", "empty"), message_template=""),
    flow_case(
        "outreach", "blank-template", ValueError, ("template", "empty"), message_template=" \n "
    ),
    flow_case(
        "outreach",
        "syntax-error",
        ValueError,
        ("template", "syntax error", "line 2"),
        message_template="Hi\n{{ name ",
    ),
    flow_case("outreach", "zero-chunk", ValueError, ("chunk_size", "0"), chunk_size=0),
    flow_case("outreach", "negative-chunk", ValueError, ("chunk_size", "-5"), chunk_size=-5),
    flow_case("outreach", "zero-concurrency", ValueError, ("max_concurrency",), max_concurrency=0),
    flow_case(
        "outreach",
        "negative-concurrency",
        ValueError,
        ("max_concurrency", "-1"),
        max_concurrency=-1,
    ),
    flow_case("outreach", "zero-parallel", ValueError, ("parallel_chunks",), parallel_chunks=0),
    flow_case("outreach", "zero-rate", ValueError, ("requests_per_second",), requests_per_second=0),
    flow_case(
        "outreach",
        "negative-rate",
        ValueError,
        ("requests_per_second",),
        requests_per_second=-3.0,
    ),
    flow_case(
        "outreach",
        "unknown-type",
        ValueError,
        ("audience.dynadata_type", "nosuchtype", "clients"),
        audience={"dynadata_type": "nosuchtype"},
    ),
    flow_case(
        "outreach",
        "unknown-type-with-ids",
        ValueError,
        ("audience.dynadata_type", "nosuchtype", "clients"),
        audience={"dynadata_type": "nosuchtype", "contact_ids": ["c1"]},
    ),
    flow_case("outreach", "int-ids", PARAMS, ("contact_ids",), audience={"contact_ids": [1, 2]}),
    flow_case("outreach", "empty-ids", PARAMS, ("contact_ids",), audience={"contact_ids": []}),
    flow_case(
        "outreach",
        "empty-quiet-hours",
        PARAMS,
        ("quiet_hours", "start and end"),
        quiet_hours={"start": "22:00", "end": "22:00"},
    ),
    flow_case(
        "outreach",
        "unknown-zone",
        PARAMS,
        ("quiet_hours", "Mars/Olympus"),
        quiet_hours={"start": "22:00", "end": "08:00", "timezone": "Mars/Olympus"},
    ),
    flow_case("outreach", "bad-quiet-choice", PARAMS, ("on_quiet_hours",), on_quiet_hours="never"),
    flow_case(
        "outreach",
        "offset-out-of-range",
        PARAMS,
        ("quiet_hours", "+15:00"),
        quiet_hours={"start": "22:00", "end": "08:00", "timezone": "+15:00"},
    ),
    flow_case(
        "outreach",
        "negative-max-wait",
        ValueError,
        ("max_wait", "-5"),
        quiet_hours={"start": "22:00", "end": "08:00"},
        max_wait=-5,
    ),
    flow_case("outreach", "text-max-wait", PARAMS, ("max_wait",), max_wait="soon"),
    flow_case(
        "outreach",
        "blank-zone-field",
        ValueError,
        ("timezone_field",),
        quiet_hours={"start": "22:00", "end": "08:00"},
        timezone_field=" ",
    ),
    flow_case("outreach", "bad-runner", PARAMS, ("task_runner",), task_runner="processes"),
    flow_case(
        "outreach",
        "limit-filter",
        PARAMS,
        ("audience.filters", "limit"),
        audience={"filters": {"limit": "5"}},
    ),
    flow_case("outreach", "int-channel", PARAMS, ("channel_id",), channel_id=5),
    flow_case("outreach", "empty-channel", ValueError, ("channel_id",), channel_id=" "),
    # onboard_contact
    flow_case("onboarding", "empty-type", ValueError, ("dynadata_type",), dynadata_type=""),
    flow_case(
        "onboarding", "unknown-type", NotFoundError, ("nosuchtype",), dynadata_type="nosuchtype"
    ),
    flow_case("onboarding", "record-not-mapping", PARAMS, ("record",), record="Ana"),
    # an invalid record is not bad input but a designed outcome: refused, see test_onboarding
    flow_case(
        "onboarding", "empty-template", ValueError, ("template", "empty"), message_template=""
    ),
    flow_case(
        "onboarding",
        "syntax-error",
        ValueError,
        ("template", "syntax error"),
        message_template="Hi {% if name %}",
    ),
    flow_case(
        "onboarding",
        "undefined-variable",
        ValueError,
        ("nickname",),
        message_template="Hi {{ nickname }}",
    ),
    flow_case("onboarding", "int-contact", PARAMS, ("contact_id",), contact_id=5),
    flow_case(
        "onboarding",
        "empty-contact",
        ValueError,
        ("contact_id",),
        contact_id="",
    ),
    flow_case("onboarding", "blank-key", ValueError, ("idempotency_key",), idempotency_key=" "),
    flow_case("onboarding", "empty-channel", ValueError, ("channel_id",), channel_id=""),
    flow_case(
        "onboarding", "int-record-id", ValueError, ("record._id",), record={"_id": 5, "name": "A"}
    ),
    # handle_reply
    flow_case(
        "replies",
        "int-contact",
        ValueError,
        ("client._id",),
        event={"id": "e1", "client": {"_id": 5}, "message": {"text": "hi"}},
    ),
    flow_case("replies", "empty-event", ValueError, ("client", "message"), event={}),
    flow_case("replies", "not-json", ValueError, ("JSON",), event="{nope"),
    flow_case(
        "replies",
        "unknown-contact",
        LookupError,
        ("no-such-contact",),
        event={"id": "e1", "client": {"_id": "no-such-contact"}, "message": {"text": "hi"}},
    ),
    flow_case(
        "replies",
        "bad-action",
        PARAMS,
        ("rules", "explode"),
        rules=[{"name": "r", "actions": [{"kind": "explode"}]}],
    ),
    flow_case(
        "replies",
        "broken-answer",
        PARAMS,
        ("rules", "template", "syntax error"),
        rules=[{"name": "r", "action": {"kind": "send_answer", "template": "{{ name"}}],
    ),
    flow_case(
        "replies",
        "blank-keyword",
        PARAMS,
        ("rules", "keywords"),
        rules=[{"name": "r", "keywords": [""]}],
    ),
    flow_case(
        "replies",
        "undefined-in-answer",
        ValueError,
        ("nickname",),
        rules=[{"name": "r", "action": {"kind": "send_answer", "template": "Hi {{ nickname }}"}}],
    ),
    flow_case("replies", "empty-type", ValueError, ("type",), dynadata_type=""),
    flow_case(
        "replies",
        "unknown-type",
        ValueError,
        ("dynadata_type", "nosuchtype", "clients"),
        dynadata_type="nosuchtype",
    ),
    # sync_to_warehouse
    flow_case("sync", "empty-destination", ValueError, ("destination",), destination=""),
    flow_case("sync", "unknown-destination", ValueError, ("nosuchdb",), destination="nosuchdb"),
    flow_case("sync", "types-string", (ValueError, PARAMS), ("types",), types="clients"),
    flow_case("sync", "empty-type-name", ValueError, ("types",), types=[""]),
    flow_case("sync", "unknown-type", ValueError, ("nosuchtype",), types=["nosuchtype"]),
    flow_case("sync", "empty-dataset", ValueError, ("dataset_name",), dataset_name=" "),
    flow_case("sync", "empty-pipeline", ValueError, ("pipeline_name",), pipeline_name=""),
]


def _run_flow(c: FlowCase, sb: SandboxHandle, tmp: Any) -> Any:
    creds = _block(sb)
    contact = sb.contact_ids()[0]
    if c.flow == "outreach":
        from autotalk_prefect.flows.outreach.flow import outreach_campaign

        params: dict[str, Any] = {
            "campaign_id": "bad-input",
            "message_template": GOOD_TEMPLATE,
            "audience": {"contact_ids": [contact]},
            **c.params,
        }
        return outreach_campaign(ledger_storage=str(tmp), credentials=creds, **params)
    if c.flow == "onboarding":
        from autotalk_prefect.flows.onboarding.flow import onboard_contact

        params = {
            "dynadata_type": "clients",
            "record": {"name": "Ana Bad-Input", "phone": "+34600000099"},
            "message_template": GOOD_TEMPLATE,
            **c.params,
        }
        return onboard_contact(ledger_storage=str(tmp), credentials=creds, **params)
    if c.flow == "replies":
        from autotalk_prefect.flows.replies.flow import handle_reply

        params = {
            "event": {"id": "evt-1", "client": {"_id": contact}, "message": {"text": "hello"}},
            **c.params,
        }
        return handle_reply(ledger_storage=str(tmp), credentials=creds, **params)
    from autotalk_prefect.flows.sync.flow import sync_to_warehouse

    params = {"destination_credentials": str(tmp / "w.duckdb"), **c.params}
    return sync_to_warehouse(pipelines_dir=str(tmp / "dlt"), credentials=creds, **params)


@pytest.mark.parametrize("c", FLOW_CASES)
def test_flows_refuse_bad_parameters_and_do_nothing(
    c: FlowCase, autotalk_sandbox: SandboxHandle, tmp_path: Any
) -> None:
    sb = autotalk_sandbox
    guard = Guard(sb)
    with pytest.raises(c.exc) as excinfo:
        _run_flow(c, sb, tmp_path)
    assert_names(excinfo.value, c.names, key=sb.api_key)
    guard.assert_nothing_changed(reached_server=True)


def test_outreach_with_an_undefined_variable_fails_each_contact_naming_it_and_sends_nothing(
    autotalk_sandbox: SandboxHandle, tmp_path: Any
) -> None:
    """A field the records lack is per contact (one contact may have it): the run reports each
    contact failed with the variable named, and nothing leaves."""
    from autotalk_prefect.flows.outreach.flow import outreach_campaign

    sb = autotalk_sandbox
    ids = sb.contact_ids()[:3]
    guard = Guard(sb)
    summary = outreach_campaign(
        campaign_id="undefined-var",
        message_template="Hi {{ nickname }}",
        audience={"contact_ids": ids},
        ledger_storage=str(tmp_path),
        credentials=_block(sb),
    )
    assert summary.sent == 0 and summary.failed == len(ids)
    assert all("nickname" in f.reason for f in summary.failures)
    guard.assert_nothing_changed(reached_server=True)
