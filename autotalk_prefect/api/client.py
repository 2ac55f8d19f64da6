"""AutoTalkClient and AsyncAutoTalkClient: one method per AutoTalk endpoint, over pooled httpx.

The only module that speaks HTTP. Each call goes through the one retry policy (retries.py) and
the one status -> exception mapping (errors.py); what each endpoint sends and returns lives in
``_endpoints.py`` and page reading in ``_paging.py``, shared by both clients.

The key is a ``SecretStr`` until the moment a request leaves: it is set per request by an
``httpx.Auth`` hook, so it is never among the client's default headers (whose repr httpx does
not mask for ``x-api-key``), never in a repr, a log line or an error. Redirects are not
followed (the key must not travel to another host), and plain ``http://`` is refused except on
loopback.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from autotalk_prefect._version import __version__
from autotalk_prefect.api import endpoints as ep
from autotalk_prefect.api.errors import AutoTalkError, UnexpectedAnswerError, error_from_response
from autotalk_prefect.api.lanes import Lanes
from autotalk_prefect.api.models import (
    Assistant,
    Channel,
    Company,
    Conversation,
    DynadataItem,
    DynadataType,
    FunctionResult,
    InboundMessage,
    Message,
    ProcessMessagesResult,
    ValidationResult,
)
from autotalk_prefect.api.paging import DEFAULT_PAGE_SIZE, Pager, PageShapeError
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.api.settings import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from typing_extensions import Self

    from autotalk_prefect.api.settings import AutoTalkSettings

M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"autotalk-prefect/{__version__}"
LOOPBACK_NAMES = frozenset({"localhost"})
_HOST = re.compile(r"[A-Za-z0-9._:-]+")  # a DNS name, an IPv4 or an (unbracketed) IPv6 address

__all__ = ["USER_AGENT", "AsyncAutoTalkClient", "AutoTalkClient"]


class _ApiKeyAuth(httpx.Auth):
    """Sets ``x-api-key`` on each outgoing request, holding the key as a SecretStr."""

    def __init__(self, api_key: SecretStr) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["x-api-key"] = self._api_key.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return "ApiKeyAuth(x-api-key=**********)"


def _secret(api_key: SecretStr | str) -> SecretStr:
    if isinstance(api_key, SecretStr):
        value = api_key.get_secret_value()
    elif isinstance(api_key, str):
        value = api_key
    else:
        raise TypeError(f"api_key must be a str or SecretStr, got {type(api_key).__name__}")
    if not value.strip():
        raise ValueError("api_key must not be empty")
    return api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: object) -> str:
    """``base_url`` without a trailing slash, after refusing what would be unsafe or wrong."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError(f"base_url must be a non-empty URL string, got {base_url!r}")
    text = base_url.strip()
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url {text!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url {text!r} is not a URL: expected https://host/path "
            "(for example https://api.autotalk.io/v1)"
        )
    host = url.raw_host.decode("ascii", errors="replace")  # IDNA hosts arrive as xn--...
    if not _HOST.fullmatch(host):
        raise ValueError(f"base_url {text!r} is not a URL: {url.host!r} is not a host name")
    if url.userinfo:
        raise ValueError("base_url must not carry credentials (user:password@); use api_key")
    if url.query or url.fragment:
        raise ValueError(f"base_url {text!r} must not have a query or fragment")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValueError(
            f"refusing plain-http base_url {text!r}: the API key would travel in clear text. "
            "Use https:// (plain http is allowed only on loopback: 127.0.0.1, ::1, localhost)."
        )
    return text.rstrip("/")


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once (~20-30 ms) for every lane of every client."""
    return httpx.create_ssl_context()


class _ClientBase:
    """Construction, configuration and answer decoding shared by both clients."""

    def __init__(
        self,
        api_key: SecretStr | str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        max_connections: int = 16,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._api_key = _secret(api_key)
        self.base_url = check_base_url(base_url)
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError(f"max_connections must be an int, got {type(max_connections).__name__}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                f"retry_policy must be a RetryPolicy, got {type(retry_policy).__name__}"
            )
        extra = dict(headers or {})
        if any(key.lower() == "x-api-key" for key in extra):
            raise ValueError("pass the key as api_key, not in headers (it must stay a secret)")
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.retry_policy = retry_policy or RetryPolicy()
        self.max_connections = max_connections
        self._http_options: dict[str, Any] = {
            "base_url": self.base_url,
            "auth": _ApiKeyAuth(self._api_key),
            "headers": {"user-agent": USER_AGENT, "accept": "application/json", **extra},
            # A pool wait is not a server problem: allow it the whole time a call may take.
            "timeout": httpx.Timeout(
                read_timeout, connect=connect_timeout, pool=connect_timeout + read_timeout
            ),
            "limits": httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            "follow_redirects": False,  # a redirect must not carry the key to another host
        }
        if transport is not None:
            self._http_options["transport"] = transport

    @classmethod
    def from_settings(cls, settings: AutoTalkSettings | None = None, **overrides: Any) -> Self:
        """A client configured from ``AutoTalkSettings`` (``AUTOTALK_*`` env / ``.env``)."""
        if settings is None:
            from autotalk_prefect.api.settings import AutoTalkSettings

            settings = AutoTalkSettings()
        if settings.api_key is None and "api_key" not in overrides:
            raise ValueError("no AutoTalk API key: set AUTOTALK_API_KEY (or pass api_key=...)")
        options: dict[str, Any] = {
            "api_key": settings.api_key,
            "base_url": settings.base_url,
            "connect_timeout": settings.connect_timeout,
            "read_timeout": settings.read_timeout,
            "retry_policy": RetryPolicy.from_settings(settings),
            "max_connections": settings.max_concurrency,
        }
        options.update(overrides)
        return cls(**options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _decode(self, response: httpx.Response, call: ep.Call) -> Any:
        """The answer's JSON (or text for a non-JSON body); an error status raises."""
        if not response.is_success:
            raise error_from_response(
                response, call.method, call.path, redact=[self._api_key.get_secret_value()]
            )
        if not response.content:
            return None
        content_type = response.headers.get("content-type", "")
        if "json" in content_type or not content_type.startswith("text/"):
            try:
                return response.json()
            except ValueError:
                if "json" in content_type:
                    raise UnexpectedAnswerError(
                        f"unexpected answer: {response.status_code} with a body that is not JSON",
                        status_code=response.status_code,
                        body=response.text[:500],
                        method=call.method,
                        path=call.path,
                        request_id=response.headers.get("x-request-id"),
                    ) from None
        return response.text

    @staticmethod
    def _request_kwargs(call: ep.Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.params:
            kwargs["params"] = call.params
        return kwargs

    @staticmethod
    def _page_items(pager: Pager, payload: Any, call: ep.Call) -> list[Any]:
        try:
            return pager.feed(payload)
        except PageShapeError as exc:
            raise AutoTalkError(
                f"unexpected answer: {exc}", method=call.method, path=call.path
            ) from None


def _page_calls(name: str, query: dict[str, Any], pager: Pager, ids: dict[str, str]) -> ep.Call:
    return ep.build(name, params={**query, **pager.params()}, **ids)


class AutoTalkClient(_ClientBase):
    """Synchronous AutoTalk client; use as a context manager (``with AutoTalkClient(...)``).

    Thread-safe (one pooled ``httpx.Client``). List methods return lazy iterators that fetch
    page after page; every other method returns a model from :mod:`autotalk_prefect.api.models`.
    """

    def __init__(
        self,
        api_key: SecretStr | str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry_policy=retry_policy,
            max_connections=max_connections,
            transport=transport,
            headers=headers,
        )
        self._http = httpx.Client(**self._http_options)

    # ---- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        self._http.close()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- plumbing ------------------------------------------------------------------------------

    def _send(self, call: ep.Call) -> Any:
        kwargs = self._request_kwargs(call)

        def attempt() -> Any:
            response = self._http.request(call.method, call.path, **kwargs)
            return self._decode(response, call)

        return self.retry_policy.call(
            attempt, method=call.method, path=call.path, idempotent=call.idempotent
        )

    def _pages(
        self, name: str, model: type[M], filters: Mapping[str, Any], page_size: int, **ids: str
    ) -> Iterator[list[M]]:
        query = ep.filters_query(filters)  # checked now, not at the first next()
        pager = Pager(page_size)
        return self._page_loop(name, model, query, pager, ids)

    def _page_loop(
        self, name: str, model: type[M], query: dict[str, Any], pager: Pager, ids: dict[str, str]
    ) -> Iterator[list[M]]:
        while not pager.done:
            call = _page_calls(name, query, pager, ids)
            items = self._page_items(pager, self._send(call), call)
            if items:
                yield [ep.parse(model, item, call) for item in items]

    @staticmethod
    def _flatten(pages: Iterator[list[M]]) -> Iterator[M]:
        for page in pages:
            yield from page

    # ---- endpoints -----------------------------------------------------------------------------

    def get_self(self) -> Company:
        """GET /self: the company the API key belongs to."""
        call = ep.build("get_self")
        return ep.parse(Company, self._send(call), call)

    def send_message(self, contact_id: str, message: str, **fields: Any) -> Message:
        """POST /contacts/{contactId}/send_message: send ``message`` to a contact.

        ``fields``: ``channelId``, ``conversationId``, ``mediaUrl`` (and anything else the API
        accepts). Not idempotent: an ambiguous failure raises OutcomeUnknownError, never a
        second send.
        """
        call = ep.send_message(contact_id, message, fields)
        return ep.parse(Message, self._send(call), call)

    def iter_conversation_pages(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[list[Conversation]]:
        """GET /conversations, one list per page (filters: contactId, status, updatedSince)."""
        return self._pages("list_conversations", Conversation, filters, page_size)

    def list_conversations(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[Conversation]:
        """GET /conversations: every conversation, lazily, page after page."""
        return self._flatten(self.iter_conversation_pages(page_size=page_size, **filters))

    def create_conversation(self, **fields: Any) -> Conversation:
        """POST /conversations: open a conversation (``contactId=...``, ``channelId=...``)."""
        call = ep.create_conversation(fields)
        return ep.parse(Conversation, self._send(call), call)

    def process_messages(
        self, conversation_id: str, messages: Sequence[InboundMessage | Mapping[str, Any]]
    ) -> ProcessMessagesResult:
        """POST /conversations/{id}/messages: feed messages into a conversation."""
        call = ep.process_messages(conversation_id, messages)
        return ep.parse(ProcessMessagesResult, self._send(call), call)

    def iter_message_pages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[list[Message]]:
        """GET /conversations/{id}/messages, one list per page."""
        conversation = ep.segment(conversation_id, "conversation_id")
        return self._pages("list_messages", Message, filters, page_size, id=conversation)

    def list_messages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[Message]:
        """GET /conversations/{id}/messages: every message of a conversation, lazily."""
        pages = self.iter_message_pages(conversation_id, page_size=page_size, **filters)
        return self._flatten(pages)

    def list_dynadata_types(self) -> list[DynadataType]:
        """GET /dynadata/types: every Dynadata type (not paged)."""
        call = ep.build("list_dynadata_types")
        return ep.parse_list(DynadataType, self._send(call), call)

    def iter_dynadata_pages(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[list[DynadataItem]]:
        """GET /dynadata/type/{type}/list, one list per page (filters: updatedSince, fields)."""
        type_segment = ep.segment(type, "type")
        return self._pages(
            "list_dynadata_items", DynadataItem, filters, page_size, type=type_segment
        )

    def list_dynadata_items(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[DynadataItem]:
        """GET /dynadata/type/{type}/list: every item of a type, lazily, page after page."""
        return self._flatten(self.iter_dynadata_pages(type, page_size=page_size, **filters))

    def get_dynadata_item(self, type: str, item_id: str) -> DynadataItem:
        """GET /dynadata/type/{type}/item/{_id}: one item."""
        call = ep.build(
            "get_dynadata_item", type=ep.segment(type, "type"), _id=ep.segment(item_id, "item_id")
        )
        return ep.parse(DynadataItem, self._send(call), call)

    def create_dynadata_item(self, type: str, data: Mapping[str, Any]) -> DynadataItem:
        """POST /dynadata/type/{type}/create: create an item (not idempotent)."""
        call = ep.dynadata_create(type, data)
        return ep.parse(DynadataItem, self._send(call), call)

    def update_dynadata_item(
        self, type: str, item_id: str, data: Mapping[str, Any]
    ) -> DynadataItem:
        """PUT /dynadata/type/{type}/update: merge ``data`` into the item (id in the body)."""
        call = ep.dynadata_update(type, item_id, data)
        return ep.parse(DynadataItem, self._send(call), call)

    def validate_dynadata_item(self, type: str, data: Mapping[str, Any]) -> ValidationResult:
        """POST /dynadata/type/{type}/validate: check ``data`` against the type's schema."""
        call = ep.dynadata_validate(type, data)
        return ep.parse(ValidationResult, self._send(call), call)

    def get_dynadata_schema(self, type: str) -> dict[str, Any]:
        """GET /dynadata/type/{type}/schema: the type's JSON Schema."""
        call = ep.build("get_dynadata_schema", type=ep.segment(type, "type"))
        return ep.parse_object(self._send(call), call)

    def get_dynadata_zod_schema(self, type: str) -> str:
        """GET /dynadata/type/{type}/schema/zod: the type's Zod schema source text."""
        call = ep.build("get_dynadata_zod_schema", type=ep.segment(type, "type"))
        return ep.parse_zod(self._send(call), call)

    def execute_dynadata_function(
        self, type: str, function_name: str, args: Mapping[str, Any] | None = None
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/executeFunction/{functionName} (not idempotent)."""
        call = ep.build(
            "execute_dynadata_function",
            json=ep.function_body(args),
            type=ep.segment(type, "type"),
            functionName=ep.segment(function_name, "function_name"),
        )
        return ep.parse(FunctionResult, self._send(call), call)

    def execute_dynadata_item_function(
        self,
        type: str,
        item_id: str,
        function_name: str,
        args: Mapping[str, Any] | None = None,
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/item/{_id}/executeFunction/{functionName}."""
        call = ep.build(
            "execute_dynadata_item_function",
            json=ep.function_body(args),
            type=ep.segment(type, "type"),
            _id=ep.segment(item_id, "item_id"),
            functionName=ep.segment(function_name, "function_name"),
        )
        return ep.parse(FunctionResult, self._send(call), call)

    def list_channels(self) -> list[Channel]:
        """GET /integrations/channels: the connected channels (not paged)."""
        call = ep.build("list_channels")
        return ep.parse_list(Channel, self._send(call), call)

    def list_assistants(self) -> list[Assistant]:
        """GET /assistants: the configured AI assistants (not paged)."""
        call = ep.build("list_assistants")
        return ep.parse_list(Assistant, self._send(call), call)


class AsyncAutoTalkClient(_ClientBase):
    """Asynchronous AutoTalk client; use ``async with AsyncAutoTalkClient(...)``.

    Same methods as :class:`AutoTalkClient`: list methods return async iterators
    (``async for``), everything else is awaited. ``max_connections`` bounds the calls in flight:
    each takes one of as many one-connection ``httpx.AsyncClient`` lanes (``_lanes`` says why).
    """

    def __init__(
        self,
        api_key: SecretStr | str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        max_connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry_policy=retry_policy,
            max_connections=max_connections,
            transport=transport,
            headers=headers,
        )
        self._lanes = self._lanes_for(transport)

    def _lanes_for(self, transport: httpx.AsyncBaseTransport | None) -> Lanes[httpx.AsyncClient]:
        """Up to ``max_connections`` one-connection clients (see ``_lanes``), or one client with
        as many slots around a caller's transport (whose own pooling then applies)."""
        if transport is not None:
            options = self._http_options
            return Lanes(lambda: httpx.AsyncClient(**options), 1, slots=self.max_connections)
        one = {
            **self._http_options,
            "limits": httpx.Limits(max_connections=1, max_keepalive_connections=1),
        }
        return Lanes(
            lambda: httpx.AsyncClient(**one, verify=_shared_ssl_context()), self.max_connections
        )

    # ---- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection (idempotent)."""
        for lane in self._lanes.close():
            await lane.aclose()

    @property
    def is_closed(self) -> bool:
        return self._lanes.closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- plumbing ------------------------------------------------------------------------------

    async def _send(self, call: ep.Call) -> Any:
        kwargs = self._request_kwargs(call)

        async def attempt() -> Any:
            http = await self._lanes.acquire()  # per attempt: never held across a retry's wait
            try:
                response = await http.request(call.method, call.path, **kwargs)
            finally:
                self._lanes.release(http)
            return self._decode(response, call)

        return await self.retry_policy.acall(
            attempt, method=call.method, path=call.path, idempotent=call.idempotent
        )

    def _pages(
        self, name: str, model: type[M], filters: Mapping[str, Any], page_size: int, **ids: str
    ) -> AsyncIterator[list[M]]:
        query = ep.filters_query(filters)  # checked now, not at the first __anext__()
        pager = Pager(page_size)
        return self._page_loop(name, model, query, pager, ids)

    async def _page_loop(
        self, name: str, model: type[M], query: dict[str, Any], pager: Pager, ids: dict[str, str]
    ) -> AsyncIterator[list[M]]:
        while not pager.done:
            call = _page_calls(name, query, pager, ids)
            items = self._page_items(pager, await self._send(call), call)
            if items:
                yield [ep.parse(model, item, call) for item in items]

    @staticmethod
    async def _flatten(pages: AsyncIterator[list[M]]) -> AsyncIterator[M]:
        async for page in pages:
            for item in page:
                yield item

    # ---- endpoints -----------------------------------------------------------------------------

    async def get_self(self) -> Company:
        """GET /self: the company the API key belongs to."""
        call = ep.build("get_self")
        return ep.parse(Company, await self._send(call), call)

    async def send_message(self, contact_id: str, message: str, **fields: Any) -> Message:
        """POST /contacts/{contactId}/send_message: send ``message`` to a contact.

        Not idempotent: an ambiguous failure raises OutcomeUnknownError, never a second send.
        """
        call = ep.send_message(contact_id, message, fields)
        return ep.parse(Message, await self._send(call), call)

    def iter_conversation_pages(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[list[Conversation]]:
        """GET /conversations, one list per page (filters: contactId, status, updatedSince)."""
        return self._pages("list_conversations", Conversation, filters, page_size)

    def list_conversations(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Conversation]:
        """GET /conversations: every conversation, lazily (``async for``)."""
        return self._flatten(self.iter_conversation_pages(page_size=page_size, **filters))

    async def create_conversation(self, **fields: Any) -> Conversation:
        """POST /conversations: open a conversation (``contactId=...``, ``channelId=...``)."""
        call = ep.create_conversation(fields)
        return ep.parse(Conversation, await self._send(call), call)

    async def process_messages(
        self, conversation_id: str, messages: Sequence[InboundMessage | Mapping[str, Any]]
    ) -> ProcessMessagesResult:
        """POST /conversations/{id}/messages: feed messages into a conversation."""
        call = ep.process_messages(conversation_id, messages)
        return ep.parse(ProcessMessagesResult, await self._send(call), call)

    def iter_message_pages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[list[Message]]:
        """GET /conversations/{id}/messages, one list per page."""
        conversation = ep.segment(conversation_id, "conversation_id")
        return self._pages("list_messages", Message, filters, page_size, id=conversation)

    def list_messages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Message]:
        """GET /conversations/{id}/messages: every message of a conversation (``async for``)."""
        pages = self.iter_message_pages(conversation_id, page_size=page_size, **filters)
        return self._flatten(pages)

    async def list_dynadata_types(self) -> list[DynadataType]:
        """GET /dynadata/types: every Dynadata type (not paged)."""
        call = ep.build("list_dynadata_types")
        return ep.parse_list(DynadataType, await self._send(call), call)

    def iter_dynadata_pages(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[list[DynadataItem]]:
        """GET /dynadata/type/{type}/list, one list per page (filters: updatedSince, fields)."""
        type_segment = ep.segment(type, "type")
        return self._pages(
            "list_dynadata_items", DynadataItem, filters, page_size, type=type_segment
        )

    def list_dynadata_items(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[DynadataItem]:
        """GET /dynadata/type/{type}/list: every item of a type (``async for``)."""
        return self._flatten(self.iter_dynadata_pages(type, page_size=page_size, **filters))

    async def get_dynadata_item(self, type: str, item_id: str) -> DynadataItem:
        """GET /dynadata/type/{type}/item/{_id}: one item."""
        call = ep.build(
            "get_dynadata_item", type=ep.segment(type, "type"), _id=ep.segment(item_id, "item_id")
        )
        return ep.parse(DynadataItem, await self._send(call), call)

    async def create_dynadata_item(self, type: str, data: Mapping[str, Any]) -> DynadataItem:
        """POST /dynadata/type/{type}/create: create an item (not idempotent)."""
        call = ep.dynadata_create(type, data)
        return ep.parse(DynadataItem, await self._send(call), call)

    async def update_dynadata_item(
        self, type: str, item_id: str, data: Mapping[str, Any]
    ) -> DynadataItem:
        """PUT /dynadata/type/{type}/update: merge ``data`` into the item (id in the body)."""
        call = ep.dynadata_update(type, item_id, data)
        return ep.parse(DynadataItem, await self._send(call), call)

    async def validate_dynadata_item(self, type: str, data: Mapping[str, Any]) -> ValidationResult:
        """POST /dynadata/type/{type}/validate: check ``data`` against the type's schema."""
        call = ep.dynadata_validate(type, data)
        return ep.parse(ValidationResult, await self._send(call), call)

    async def get_dynadata_schema(self, type: str) -> dict[str, Any]:
        """GET /dynadata/type/{type}/schema: the type's JSON Schema."""
        call = ep.build("get_dynadata_schema", type=ep.segment(type, "type"))
        return ep.parse_object(await self._send(call), call)

    async def get_dynadata_zod_schema(self, type: str) -> str:
        """GET /dynadata/type/{type}/schema/zod: the type's Zod schema source text."""
        call = ep.build("get_dynadata_zod_schema", type=ep.segment(type, "type"))
        return ep.parse_zod(await self._send(call), call)

    async def execute_dynadata_function(
        self, type: str, function_name: str, args: Mapping[str, Any] | None = None
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/executeFunction/{functionName} (not idempotent)."""
        call = ep.build(
            "execute_dynadata_function",
            json=ep.function_body(args),
            type=ep.segment(type, "type"),
            functionName=ep.segment(function_name, "function_name"),
        )
        return ep.parse(FunctionResult, await self._send(call), call)

    async def execute_dynadata_item_function(
        self,
        type: str,
        item_id: str,
        function_name: str,
        args: Mapping[str, Any] | None = None,
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/item/{_id}/executeFunction/{functionName}."""
        call = ep.build(
            "execute_dynadata_item_function",
            json=ep.function_body(args),
            type=ep.segment(type, "type"),
            _id=ep.segment(item_id, "item_id"),
            functionName=ep.segment(function_name, "function_name"),
        )
        return ep.parse(FunctionResult, await self._send(call), call)

    async def list_channels(self) -> list[Channel]:
        """GET /integrations/channels: the connected channels (not paged)."""
        call = ep.build("list_channels")
        return ep.parse_list(Channel, await self._send(call), call)

    async def list_assistants(self) -> list[Assistant]:
        """GET /assistants: the configured AI assistants (not paged)."""
        call = ep.build("list_assistants")
        return ep.parse_list(Assistant, await self._send(call), call)
