"""AutoTalkClient and AsyncAutoTalkClient: one method per AutoTalk endpoint, over pooled httpx.

The only module that speaks HTTP. Each call goes through the one retry policy (retries.py) and
the one status -> exception mapping (errors.py); what each endpoint sends and how its answer is
read lives in ``endpoints.py`` (so each method here is one line) and paging in ``paging.py``,
shared by both clients: the two differ only in how they send.

The key is a ``SecretStr`` until the moment a request leaves: it is set per request by an
``httpx.Auth`` hook, so it is never among the client's default headers (whose repr httpx does
not mask for ``x-api-key``), never in a repr, a log line or an error. Redirects are not
followed (the key must not travel to another host), and plain ``http://`` is refused except on
loopback.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import SecretStr

from autotalk_prefect._version import __version__
from autotalk_prefect.api import endpoints as ep
from autotalk_prefect.api.base_url import check_base_url
from autotalk_prefect.api.config import (
    DEFAULT_AUTH_SCHEME,
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_PAGE_STYLE,
    DEFAULT_READ_TIMEOUT,
    AuthScheme,
    check_auth_scheme,
)
from autotalk_prefect.api.errors import (
    NoUsableAnswerError,
    UnexpectedAnswerError,
    error_from_response,
)
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
    WireModel,
)
from autotalk_prefect.api.paging import (
    DEFAULT_PAGE_SIZE,
    Pager,
    PageShapeError,
    PageStyle,
    check_page_style,
)
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.api.settings import AutoTalkSettings

if TYPE_CHECKING:
    from typing_extensions import Self

M = TypeVar("M", bound=WireModel)
T = TypeVar("T")

USER_AGENT = f"autotalk-prefect/{__version__}"

__all__ = ["USER_AGENT", "AsyncAutoTalkClient", "AutoTalkClient"]


#: the header each auth scheme puts the key in
AUTH_HEADERS = {"x-api-key": "x-api-key", "bearer": "authorization"}


class _ApiKeyAuth(httpx.Auth):
    """Sets the key on each outgoing request, holding it as a SecretStr: ``x-api-key: <key>``
    (the API reference) or ``Authorization: Bearer <key>`` (AutoTalk's API Tokens page)."""

    def __init__(self, api_key: SecretStr, scheme: AuthScheme = DEFAULT_AUTH_SCHEME) -> None:
        self._api_key = api_key
        self.scheme = scheme

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self._api_key.get_secret_value()
        if self.scheme == "bearer":
            request.headers["authorization"] = f"Bearer {key}"
        else:
            request.headers["x-api-key"] = key
        yield request

    def __repr__(self) -> str:
        return f"ApiKeyAuth({AUTH_HEADERS[self.scheme]}=**********)"


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


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once (~20-30 ms) for every lane of every client."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class _Reply:
    """A decoded answer with what paging reads besides the body: its headers and its URL."""

    payload: Any
    headers: Mapping[str, str]
    url: str


class _ClientBase:
    """Construction, configuration and answer decoding shared by both clients."""

    def __init__(
        self,
        api_key: SecretStr | str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        auth_scheme: AuthScheme = DEFAULT_AUTH_SCHEME,
        page_style: PageStyle = DEFAULT_PAGE_STYLE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        max_connections: int = DEFAULT_MAX_CONCURRENCY,
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
        if any(key.lower() in AUTH_HEADERS.values() for key in extra):
            raise ValueError(
                "pass the key as api_key (and auth_scheme=), not in headers: it must stay a secret"
            )
        self.auth_scheme = check_auth_scheme(auth_scheme)
        self.page_style = check_page_style(page_style)
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.retry_policy = retry_policy or RetryPolicy()
        self.max_connections = max_connections
        self._http_options: dict[str, Any] = {
            "base_url": self.base_url,
            "auth": _ApiKeyAuth(self._api_key, self.auth_scheme),
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
        self._open(transport)

    def _open(self, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None) -> None:
        """Create the HTTP machinery (one pool, or lanes): the one thing the clients differ in."""
        raise NotImplementedError

    @classmethod
    def from_settings(cls, settings: AutoTalkSettings | None = None, **overrides: Any) -> Self:
        """A client configured from ``AutoTalkSettings`` (``AUTOTALK_*`` env / ``.env``)."""
        if settings is None:
            settings = AutoTalkSettings()
        if settings.api_key is None and "api_key" not in overrides:
            raise ValueError("no AutoTalk API key: set AUTOTALK_API_KEY (or pass api_key=...)")
        return cls(**settings.client_kwargs(**{"api_key": settings.api_key, **overrides}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _decode(self, response: httpx.Response, call: ep.Call[Any]) -> Any:
        """The answer's JSON (or text for a non-JSON body); an error status raises, and so does
        a body labelled JSON that is not, unless the call is a write (then its text is kept)."""
        if not response.is_success:
            raise error_from_response(
                response,
                call.method,
                call.path,
                redact=[self._api_key.get_secret_value()],
                auth_scheme=self.auth_scheme,
            )
        if not response.content:
            return None
        content_type = response.headers.get("content-type", "")
        if "json" in content_type or not content_type.startswith("text/"):
            try:
                return response.json()
            except ValueError:
                # A write that got a 2xx was applied, whatever its body: its text is the answer.
                if "json" in content_type and call.idempotent:
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
    def _request_kwargs(call: ep.Call[Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.params:
            kwargs["params"] = call.params
        return kwargs

    def _pager(self, listing: ep.Listing[Any], page_size: int) -> Pager:
        return Pager(
            page_size,
            style=self.page_style,
            probe_page=listing.probe_page,
            names=listing.names,
            base_url=self.base_url,
            paged=listing.paged,
        )

    def _page_items(self, pager: Pager, reply: _Reply, call: ep.Call[Any]) -> list[Any]:
        try:
            return pager.feed(reply.payload, reply.headers, reply.url)
        except PageShapeError as exc:
            raise NoUsableAnswerError(
                f"unexpected answer: {exc}", method=call.method, path=self._shown(call.path)
            ) from None

    def _shown(self, path: str) -> str:
        """A call's path as errors name it (a followed next link, relative to the base URL)."""
        return (path[len(self.base_url) :] or "/") if path.startswith(self.base_url) else path


class AutoTalkClient(_ClientBase):
    """Synchronous AutoTalk client; use as a context manager (``with AutoTalkClient(...)``).

    Thread-safe (one pooled ``httpx.Client``). List methods return lazy iterators that fetch
    page after page; every other method returns a model from :mod:`autotalk_prefect.api.models`.
    """

    _http: httpx.Client

    def _open(self, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(
                f"AutoTalkClient needs a sync transport (httpx.BaseTransport), got "
                f"{type(transport).__name__}: use AsyncAutoTalkClient for an async one"
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

    def _fetch(self, call: ep.Call[Any]) -> _Reply:
        kwargs = self._request_kwargs(call)

        def attempt() -> _Reply:
            response = self._http.request(call.method, call.path, **kwargs)
            return _Reply(self._decode(response, call), response.headers, str(response.url))

        return self.retry_policy.call(
            attempt, method=call.method, path=self._shown(call.path), idempotent=call.idempotent
        )

    def _send(self, call: ep.Call[Any]) -> Any:
        return self._fetch(call).payload

    def _run(self, call: ep.Call[T]) -> T:
        return call.answer(self._fetch(call).payload)

    def _pages(self, listing: ep.Listing[M], page_size: int) -> Iterator[list[M]]:
        pager = self._pager(listing, page_size)  # checked now, not at the first next()
        return self._page_loop(listing, pager)

    def _page_loop(self, listing: ep.Listing[M], pager: Pager) -> Iterator[list[M]]:
        while not pager.done:
            call = listing.call(pager.params(), pager.next_url)
            items = self._page_items(pager, self._fetch(call), call)
            if items:
                yield call.answer(items)

    @staticmethod
    def _flatten(pages: Iterator[list[M]]) -> Iterator[M]:
        for page in pages:
            yield from page

    # ---- endpoints: each one line, what it sends and reads is in endpoints.py -----------

    def get_self(self) -> Company:
        """GET /self: the company the API key belongs to."""
        return self._run(ep.get_self())

    def send_message(self, contact_id: str, message: str, **fields: Any) -> Message:
        """POST /contacts/{contactId}/send_message: send ``message`` to a contact.

        ``fields``: ``channelId``, ``conversationId``, ``mediaUrl`` (and anything else the API
        accepts). Not idempotent: an ambiguous failure raises OutcomeUnknownError, never a
        second send; any 2xx returns a Message (``id`` ``None`` if the answer carried none)."""
        return self._run(ep.send_message(contact_id, message, fields))

    def iter_conversation_pages(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[list[Conversation]]:
        """GET /conversations, one list per page (filters: contactId, status, updatedSince)."""
        return self._pages(ep.list_conversations(filters), page_size)

    def list_conversations(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[Conversation]:
        """GET /conversations: every conversation, lazily, page after page."""
        return self._flatten(self.iter_conversation_pages(page_size=page_size, **filters))

    def create_conversation(self, **fields: Any) -> Conversation:
        """POST /conversations: open a conversation (``contactId=...``, ``channelId=...``)."""
        return self._run(ep.create_conversation(fields))

    def process_messages(
        self, conversation_id: str, messages: Sequence[InboundMessage | Mapping[str, Any]]
    ) -> ProcessMessagesResult:
        """POST /conversations/{id}/messages: feed messages (any mappings, sent unchanged)."""
        return self._run(ep.process_messages(conversation_id, messages))

    def iter_message_pages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[list[Message]]:
        """GET /conversations/{id}/messages, one list per page."""
        return self._pages(ep.list_messages(conversation_id, filters), page_size)

    def list_messages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[Message]:
        """GET /conversations/{id}/messages: every message of a conversation, lazily."""
        return self._flatten(
            self.iter_message_pages(conversation_id, page_size=page_size, **filters)
        )

    def list_dynadata_types(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[DynadataType]:
        """GET /dynadata/types: every Dynadata type (every page, if the server pages it)."""
        return list(self._flatten(self._pages(ep.list_dynadata_types(), page_size)))

    def iter_dynadata_pages(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[list[DynadataItem]]:
        """GET /dynadata/type/{type}/list, one list per page (filters: updatedSince, fields)."""
        return self._pages(ep.list_dynadata_items(type, filters), page_size)

    def list_dynadata_items(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> Iterator[DynadataItem]:
        """GET /dynadata/type/{type}/list: every item of a type, lazily, page after page."""
        return self._flatten(self.iter_dynadata_pages(type, page_size=page_size, **filters))

    def get_dynadata_item(self, type: str, item_id: str) -> DynadataItem:
        """GET /dynadata/type/{type}/item/{_id}: one item."""
        return self._run(ep.get_dynadata_item(type, item_id))

    def create_dynadata_item(self, type: str, data: Mapping[str, Any]) -> DynadataItem:
        """POST /dynadata/type/{type}/create: create an item (not idempotent; ``data`` sent unchanged)."""
        return self._run(ep.create_dynadata_item(type, data))

    def update_dynadata_item(
        self, type: str, item_id: str, data: Mapping[str, Any]
    ) -> DynadataItem:
        """PUT /dynadata/type/{type}/update: merge ``data`` into the item (id in the body)."""
        return self._run(ep.update_dynadata_item(type, item_id, data))

    def validate_dynadata_item(self, type: str, data: Mapping[str, Any]) -> ValidationResult:
        """POST /dynadata/type/{type}/validate: check ``data`` against the type's schema."""
        return self._run(ep.validate_dynadata_item(type, data))

    def get_dynadata_schema(self, type: str) -> dict[str, Any]:
        """GET /dynadata/type/{type}/schema: the type's JSON Schema."""
        return self._run(ep.get_dynadata_schema(type))

    def get_dynadata_zod_schema(self, type: str) -> str:
        """GET /dynadata/type/{type}/schema/zod: the type's Zod schema source text."""
        return self._run(ep.get_dynadata_zod_schema(type))

    def execute_dynadata_function(
        self, type: str, function_name: str, args: Mapping[str, Any] | None = None
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/executeFunction/{functionName} (not idempotent)."""
        return self._run(ep.execute_dynadata_function(type, function_name, args))

    def execute_dynadata_item_function(
        self, type: str, item_id: str, function_name: str, args: Mapping[str, Any] | None = None
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/item/{_id}/executeFunction/{functionName}."""
        return self._run(ep.execute_dynadata_item_function(type, item_id, function_name, args))

    def list_channels(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[Channel]:
        """GET /integrations/channels: the connected channels (every page, if the server pages it)."""
        return list(self._flatten(self._pages(ep.list_channels(), page_size)))

    def list_assistants(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[Assistant]:
        """GET /assistants: the configured AI assistants (every page, if the server pages it)."""
        return list(self._flatten(self._pages(ep.list_assistants(), page_size)))


class AsyncAutoTalkClient(_ClientBase):
    """Asynchronous AutoTalk client; use ``async with AsyncAutoTalkClient(...)``.

    Same methods as :class:`AutoTalkClient`: list methods return async iterators
    (``async for``), everything else is awaited. ``max_connections`` bounds the calls in flight:
    each takes one of as many one-connection ``httpx.AsyncClient`` lanes (``_lanes`` says why).
    """

    _lanes: Lanes[httpx.AsyncClient]

    def _open(self, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                f"AsyncAutoTalkClient needs an async transport (httpx.AsyncBaseTransport), got "
                f"{type(transport).__name__}: use AutoTalkClient for a sync one"
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

    async def _fetch(self, call: ep.Call[Any]) -> _Reply:
        kwargs = self._request_kwargs(call)

        async def attempt() -> _Reply:
            http = await self._lanes.acquire()  # per attempt: never held across a retry's wait
            try:
                response = await http.request(call.method, call.path, **kwargs)
            finally:
                self._lanes.release(http)
            return _Reply(self._decode(response, call), response.headers, str(response.url))

        return await self.retry_policy.acall(
            attempt, method=call.method, path=self._shown(call.path), idempotent=call.idempotent
        )

    async def _send(self, call: ep.Call[Any]) -> Any:
        return (await self._fetch(call)).payload

    async def _run(self, call: ep.Call[T]) -> T:
        return call.answer((await self._fetch(call)).payload)

    def _pages(self, listing: ep.Listing[M], page_size: int) -> AsyncIterator[list[M]]:
        pager = self._pager(listing, page_size)  # checked now, not at the first __anext__()
        return self._page_loop(listing, pager)

    async def _page_loop(self, listing: ep.Listing[M], pager: Pager) -> AsyncIterator[list[M]]:
        while not pager.done:
            call = listing.call(pager.params(), pager.next_url)
            items = self._page_items(pager, await self._fetch(call), call)
            if items:
                yield call.answer(items)

    @staticmethod
    async def _flatten(pages: AsyncIterator[list[M]]) -> AsyncIterator[M]:
        async for page in pages:
            for item in page:
                yield item

    # ---- endpoints: each one line, what it sends and reads is in endpoints.py -----------

    async def get_self(self) -> Company:
        """GET /self: the company the API key belongs to."""
        return await self._run(ep.get_self())

    async def send_message(self, contact_id: str, message: str, **fields: Any) -> Message:
        """POST /contacts/{contactId}/send_message: send ``message`` to a contact.

        ``fields``: ``channelId``, ``conversationId``, ``mediaUrl`` (and anything else the API
        accepts). Not idempotent: an ambiguous failure raises OutcomeUnknownError, never a
        second send; any 2xx returns a Message (``id`` ``None`` if the answer carried none)."""
        return await self._run(ep.send_message(contact_id, message, fields))

    def iter_conversation_pages(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[list[Conversation]]:
        """GET /conversations, one list per page (filters: contactId, status, updatedSince)."""
        return self._pages(ep.list_conversations(filters), page_size)

    def list_conversations(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Conversation]:
        """GET /conversations: every conversation, lazily (``async for``)."""
        return self._flatten(self.iter_conversation_pages(page_size=page_size, **filters))

    async def create_conversation(self, **fields: Any) -> Conversation:
        """POST /conversations: open a conversation (``contactId=...``, ``channelId=...``)."""
        return await self._run(ep.create_conversation(fields))

    async def process_messages(
        self, conversation_id: str, messages: Sequence[InboundMessage | Mapping[str, Any]]
    ) -> ProcessMessagesResult:
        """POST /conversations/{id}/messages: feed messages (any mappings, sent unchanged)."""
        return await self._run(ep.process_messages(conversation_id, messages))

    def iter_message_pages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[list[Message]]:
        """GET /conversations/{id}/messages, one list per page."""
        return self._pages(ep.list_messages(conversation_id, filters), page_size)

    def list_messages(
        self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Message]:
        """GET /conversations/{id}/messages: every message of a conversation, lazily (``async for``)."""
        return self._flatten(
            self.iter_message_pages(conversation_id, page_size=page_size, **filters)
        )

    async def list_dynadata_types(
        self, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[DynadataType]:
        """GET /dynadata/types: every Dynadata type (every page, if the server pages it)."""
        return [
            item async for item in self._flatten(self._pages(ep.list_dynadata_types(), page_size))
        ]

    def iter_dynadata_pages(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[list[DynadataItem]]:
        """GET /dynadata/type/{type}/list, one list per page (filters: updatedSince, fields)."""
        return self._pages(ep.list_dynadata_items(type, filters), page_size)

    def list_dynadata_items(
        self, type: str, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[DynadataItem]:
        """GET /dynadata/type/{type}/list: every item of a type, lazily (``async for``)."""
        return self._flatten(self.iter_dynadata_pages(type, page_size=page_size, **filters))

    async def get_dynadata_item(self, type: str, item_id: str) -> DynadataItem:
        """GET /dynadata/type/{type}/item/{_id}: one item."""
        return await self._run(ep.get_dynadata_item(type, item_id))

    async def create_dynadata_item(self, type: str, data: Mapping[str, Any]) -> DynadataItem:
        """POST /dynadata/type/{type}/create: create an item (not idempotent; ``data`` sent unchanged)."""
        return await self._run(ep.create_dynadata_item(type, data))

    async def update_dynadata_item(
        self, type: str, item_id: str, data: Mapping[str, Any]
    ) -> DynadataItem:
        """PUT /dynadata/type/{type}/update: merge ``data`` into the item (id in the body)."""
        return await self._run(ep.update_dynadata_item(type, item_id, data))

    async def validate_dynadata_item(self, type: str, data: Mapping[str, Any]) -> ValidationResult:
        """POST /dynadata/type/{type}/validate: check ``data`` against the type's schema."""
        return await self._run(ep.validate_dynadata_item(type, data))

    async def get_dynadata_schema(self, type: str) -> dict[str, Any]:
        """GET /dynadata/type/{type}/schema: the type's JSON Schema."""
        return await self._run(ep.get_dynadata_schema(type))

    async def get_dynadata_zod_schema(self, type: str) -> str:
        """GET /dynadata/type/{type}/schema/zod: the type's Zod schema source text."""
        return await self._run(ep.get_dynadata_zod_schema(type))

    async def execute_dynadata_function(
        self, type: str, function_name: str, args: Mapping[str, Any] | None = None
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/executeFunction/{functionName} (not idempotent)."""
        return await self._run(ep.execute_dynadata_function(type, function_name, args))

    async def execute_dynadata_item_function(
        self, type: str, item_id: str, function_name: str, args: Mapping[str, Any] | None = None
    ) -> FunctionResult:
        """POST /dynadata/type/{type}/item/{_id}/executeFunction/{functionName}."""
        return await self._run(
            ep.execute_dynadata_item_function(type, item_id, function_name, args)
        )

    async def list_channels(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[Channel]:
        """GET /integrations/channels: the connected channels (every page, if the server pages it)."""
        return [item async for item in self._flatten(self._pages(ep.list_channels(), page_size))]

    async def list_assistants(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[Assistant]:
        """GET /assistants: the configured AI assistants (every page, if the server pages it)."""
        return [item async for item in self._flatten(self._pages(ep.list_assistants(), page_size))]
