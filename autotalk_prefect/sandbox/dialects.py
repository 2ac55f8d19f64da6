"""Sandbox API dialects: the same data, answered the other ways AutoTalk might really answer.

AutoTalk publishes paths, methods and the ``x-api-key`` header, but nothing about bodies, paging
or errors (and its API Tokens page says ``Authorization: Bearer``). ``contract`` is our guess;
each other dialect is a plausible real-world shape. A dialect is a thin ASGI layer in front of
the gate: it rewrites the request (auth header, paging query) into the contract's, and the
contract's answer into the dialect's, so every dialect serves the very same state and tests can
compare. Only ``/v1/`` is translated: the admin API, the inbox and webhooks never change. A
sandbox paging option (page_styles.py) replaces the dialect's paging on every list endpoint.
The table of traits is in docs/sandbox.md; ``Dialect`` fields say the same thing in code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from autotalk_prefect.sandbox.asgi import (
    API_PREFIX,
    REQUEST_ID_SCOPE_KEY,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    send_problem,
)
from autotalk_prefect.sandbox.page_styles import (
    DEFAULT_LIMIT,
    PAGING_PARAMS,
    ServedStyle,
    Window,
    decode_cursor,
    encode_cursor,
    link_builder,
    read_window,
    shape_page,
)
from autotalk_prefect.sandbox.problems import ApiProblem, bad_request

Gate = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]

Auth = Literal["x-api-key", "bearer"]
Paging = Literal["skip", "page", "cursor"]
Errors = Literal["contract", "error-object", "zod", "rfc7807"]


@dataclass(frozen=True)
class Dialect:
    """What one dialect changes on the wire (``contract`` changes nothing).

    ``list_key``: the key holding a listing's items (``None``: a bare array).
    ``size_params``: the query parameters read as page size, first present wins.
    ``single_envelope``: single objects come as ``{"success": true, "data": {...}}``.
    ``minimal``: ``id`` instead of ``_id`` and some optional fields left out (``DROPPED``).
    """

    name: str
    summary: str
    auth: Auth
    paging: Paging
    list_key: str | None
    size_params: tuple[str, ...]
    errors: Errors
    single_envelope: bool
    send_status: int
    send_body: bool
    minimal: bool = False


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            "contract",
            "today's guess: {data,total,limit,skip}, skip/limit, x-api-key",
            auth="x-api-key",
            paging="skip",
            list_key="data",
            size_params=("limit",),
            errors="contract",
            single_envelope=False,
            send_status=201,
            send_body=True,
        ),
        Dialect(
            "mongoose",
            "mongoose-paginate-v2 pages, {success,data} objects, Bearer auth",
            auth="bearer",
            paging="page",
            list_key="docs",
            size_params=("limit",),
            errors="error-object",
            single_envelope=True,
            send_status=201,
            send_body=True,
        ),
        Dialect(
            "cursor",
            "{items,nextCursor,has_more} pages, Zod validation errors, empty 202 on send",
            auth="x-api-key",
            paging="cursor",
            list_key="items",
            size_params=("limit",),
            errors="zod",
            single_envelope=False,
            send_status=202,
            send_body=False,
        ),
        Dialect(
            "minimal",
            "bare arrays, page/pageSize (skip ignored), id not _id, RFC 7807 errors",
            auth="x-api-key",
            paging="page",
            list_key=None,
            size_params=("pageSize", "limit"),
            errors="rfc7807",
            single_envelope=False,
            send_status=200,
            send_body=True,
            minimal=True,
        ),
    )
}
DIALECT_NAMES: tuple[str, ...] = tuple(DIALECTS)

#: optional fields the ``minimal`` dialect leaves out, per resource (``None`` values go too)
DROPPED: dict[str, frozenset[str]] = {
    "company": frozenset({"email", "plan", "timezone"}),
    "message": frozenset({"conversationId", "channelId", "mediaUrl"}),
    "conversation": frozenset({"channelId", "assistantId", "subject"}),
    "channel": frozenset({"phone", "status"}),
    "assistant": frozenset({"description", "model"}),
    "type": frozenset({"description"}),
    "item": frozenset(),
}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; a ValueError naming the choices otherwise."""
    try:
        return DIALECTS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown sandbox dialect {name!r}: choose one of {', '.join(DIALECT_NAMES)}"
        ) from None


def auth_headers(dialect: str, api_key: str) -> dict[str, str]:
    """The header a client must send to be let in by a sandbox in ``dialect``."""
    if get_dialect(dialect).auth == "bearer":
        return {"authorization": f"Bearer {api_key}"}
    return {"x-api-key": api_key}


# ---- which endpoint: (method, path pattern) -> answer kind, resource ---------------------------

Kind = Literal["object", "send", "paged", "listing"]
_DYN = r"/v1/dynadata/type/[^/]+"
_ROUTE_TABLE: tuple[tuple[str, str, Kind, str], ...] = (
    ("GET", r"/v1/self", "object", "company"),
    ("POST", r"/v1/contacts/[^/]+/send_message", "send", "message"),
    ("GET", r"/v1/conversations", "paged", "conversation"),
    ("POST", r"/v1/conversations", "object", "conversation"),
    ("POST", r"/v1/conversations/[^/]+/messages", "object", "process"),
    ("GET", r"/v1/conversations/[^/]+/messages", "paged", "message"),
    ("GET", r"/v1/dynadata/types", "listing", "type"),
    ("GET", rf"{_DYN}/list", "paged", "item"),
    ("GET", rf"{_DYN}/item/[^/]+", "object", "item"),
    ("POST", rf"{_DYN}/create", "object", "item"),
    ("PUT", rf"{_DYN}/update", "object", "item"),
    ("GET", r"/v1/integrations/channels", "listing", "channel"),
    ("GET", r"/v1/assistants", "listing", "assistant"),
)
_ROUTES = tuple((m, re.compile(p), k, r) for m, p, k, r in _ROUTE_TABLE)


def classify(method: str, path: str) -> tuple[Kind, str]:
    """The answer kind and resource of an API request (``document``: schemas, results...)."""
    for route_method, pattern, kind, resource in _ROUTES:
        if method == route_method and pattern.fullmatch(path):
            return kind, resource
    return "object", "document"


# ---- requests: auth and paging into the contract's ---------------------------------------------


def contract_headers(dialect: Dialect, headers: Iterable[tuple[bytes, bytes]]) -> list[Any]:
    """Bearer dialects: the token becomes the ``x-api-key`` the gate checks; x-api-key is ignored."""
    if dialect.auth != "bearer":
        return list(headers)
    kept: list[Any] = []
    token = b""
    for key, value in headers:
        if key == b"authorization":
            scheme, _, rest = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer":
                token = rest.strip()
        if key not in (b"x-api-key", b"authorization"):
            kept.append((key, value))
    if token:
        kept.append((b"x-api-key", token))
    return kept


def _positive(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter {name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise bad_request(f"query parameter {name} must be >= 1, got {value}")
    return value


def contract_query(dialect: Dialect, query_string: bytes, max_page_size: int) -> bytes:
    """A paged request's query in the contract's ``limit``/``skip`` (filters are kept)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    query = dict(pairs)
    size_param = next((p for p in dialect.size_params if p in query), None)
    size = _positive(size_param, query[size_param]) if size_param else DEFAULT_LIMIT
    limit = min(size, max_page_size)
    if dialect.paging == "page":
        page = _positive("page", query["page"]) if "page" in query else 1
        skip = (page - 1) * limit
    else:
        skip = decode_cursor(query["cursor"]) if query.get("cursor") else 0
    paging = {"page", "cursor", "skip", "limit", *dialect.size_params}
    kept = [(k, v) for k, v in pairs if k not in paging]
    return urlencode([*kept, ("limit", str(limit)), ("skip", str(skip))]).encode("latin-1")


# ---- answers: the contract's into the dialect's ------------------------------------------------


def _resource(dialect: Dialect, resource: str, value: Any) -> Any:
    if not dialect.minimal or not isinstance(value, dict):
        return value
    if resource == "process":
        messages = value.get("messages")
        if isinstance(messages, list):
            return {**value, "messages": [_resource(dialect, "message", m) for m in messages]}
        return value
    dropped = DROPPED.get(resource)
    if dropped is None:
        return value  # a document (schema, validation, function result): left as it is
    out = {("id" if k == "_id" else k): v for k, v in value.items()}
    return {k: v for k, v in out.items() if v is not None and k not in dropped}


def list_answer(dialect: Dialect, envelope: dict[str, Any], resource: str, paged: bool) -> Any:
    """A contract listing (``{data,total}``, with ``limit``/``skip`` when ``paged``) re-shaped."""
    items = [_resource(dialect, resource, item) for item in envelope.get("data", [])]
    if dialect.list_key is None:
        return items
    if dialect.paging == "cursor":
        end = int(envelope.get("skip", 0)) + len(items)
        more = paged and end < int(envelope.get("total", 0))
        return {
            "items": items,
            "nextCursor": encode_cursor(end) if more else None,
            "has_more": more,
        }
    if not paged:  # types, channels, assistants: one list, no paging
        if dialect.single_envelope:
            return {"success": True, "data": items}
        return {dialect.list_key: items}
    if dialect.paging == "skip":
        return envelope
    total, limit, skip = int(envelope["total"]), int(envelope["limit"]), int(envelope["skip"])
    page = skip // limit + 1
    pages = max(1, -(-total // limit))
    return {  # mongoose-paginate-v2's answer, key for key
        dialect.list_key: items,
        "totalDocs": total,
        "limit": limit,
        "totalPages": pages,
        "page": page,
        "pagingCounter": skip + 1,
        "hasPrevPage": page > 1,
        "hasNextPage": page < pages,
        "prevPage": page - 1 if page > 1 else None,
        "nextPage": page + 1 if page < pages else None,
    }


def object_answer(dialect: Dialect, value: Any, resource: str) -> Any:
    """A single-object answer re-shaped."""
    value = _resource(dialect, resource, value)
    return {"success": True, "data": value} if dialect.single_envelope else value


def _path_parts(path: str) -> list[str | int]:
    if not path or path.startswith("<"):
        return []
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _pointer(path: str) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in _path_parts(path)]
    return "#/" + "/".join(parts) if parts else "#"


def error_answer(dialect: Dialect, status: int, body: dict[str, Any], path: str) -> tuple[Any, str]:
    """A contract error body (``{error,message,issues?,requestId?}``) re-shaped, with its
    content type."""
    message = str(body.get("message", ""))
    if status == 401 and dialect.auth == "bearer":
        message = "missing or invalid Authorization: Bearer <token> header"
    issues = body.get("issues") or []
    code = body.get("error")
    if dialect.errors == "error-object":
        error: dict[str, Any] = {"code": code, "message": message}
        if issues:
            error["issues"] = issues
        if body.get("requestId"):
            error["requestId"] = body["requestId"]
        return {"success": False, "error": error}, "application/json"
    if dialect.errors == "zod":
        if status == 422 and issues:
            zod = [
                {
                    "code": "custom",
                    "path": _path_parts(str(i.get("path", ""))),
                    "message": i.get("message"),
                }
                for i in issues
            ]
            return {
                "success": False,
                "error": {"name": "ZodError", "issues": zod},
            }, "application/json"
        return {"success": False, "error": {"code": code, "message": message}}, "application/json"
    if dialect.errors == "rfc7807":
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        problem: dict[str, Any] = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": message,
            "instance": path,
        }
        if issues:
            problem["errors"] = [
                {"pointer": _pointer(str(i.get("path", ""))), "detail": i.get("message")}
                for i in issues
            ]
        return problem, "application/problem+json"
    return {**body, "message": message}, "application/json"


# ---- the ASGI layer ----------------------------------------------------------------------------


class _Held:
    """Holds the inner app's answer until it is complete, so it can be re-shaped.

    The gate's "drop after processing" closes the connection through ``send.__self__``'s
    ``transport``: those are passed through to the server's own send.
    """

    def __init__(self, send: Send) -> None:
        self._cycle = getattr(send, "__self__", None)
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.complete = False

    @property
    def transport(self) -> Any:
        return getattr(self._cycle, "transport", None)

    @property
    def disconnected(self) -> bool:
        return bool(getattr(self._cycle, "disconnected", False))

    @disconnected.setter
    def disconnected(self, value: bool) -> None:
        if self._cycle is not None and hasattr(self._cycle, "disconnected"):
            self._cycle.disconnected = value

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.chunks.append(bytes(message.get("body", b"")))
            self.complete = not message.get("more_body", False)


class DialectLayer:
    """Translates ``/v1/`` requests into the contract and answers out of it.

    Outside the gate it swaps the auth header and re-shapes the whole answer (the gate's own
    401s and injected faults included); inside the gate (after auth) it rewrites the paging
    query, so a bad ``page`` or ``cursor`` is refused like any other bad request.
    """

    def __init__(
        self, dialect: Dialect, max_page_size: int, paging: ServedStyle | None = None
    ) -> None:
        self.dialect = dialect
        self.max_page_size = max_page_size
        self.paging = paging

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, gate: Gate, app: ASGIApp
    ) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            await gate(scope, receive, send, app)
            return
        kind, resource = classify(scope["method"], path)
        scope["headers"] = contract_headers(self.dialect, scope["headers"])
        held = _Held(send)
        styled = self.paging is not None and kind in ("paged", "listing")
        window: dict[str, Any] = {}
        if styled:
            inner = self._styled_paging(app, kind, window)
        else:
            inner = self._paging(app) if kind == "paged" else app
        await gate(scope, receive, held.send, inner)
        if held.start is None or not held.complete:
            return  # dropped after processing: nothing left the server, nothing to translate
        status: int = held.start["status"]
        headers = list(held.start.get("headers", []))
        raw = b"".join(held.chunks)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:  # not JSON: pass it through untouched
            await send(held.start)
            await send({"type": "http.response.body", "body": raw})
            return
        if styled and status < 400 and isinstance(payload, dict) and window:
            body, extra = self._styled_answer(scope, payload, kind, resource, window)
            await self._send_json(send, status, headers, body, "application/json", extra)
            return
        await self._answer(send, status, headers, payload, path, kind, resource)

    def _styled_paging(self, app: ASGIApp, kind: Kind, window: dict[str, Any]) -> ASGIApp:
        """The paging option's request read into ``window``; a paged route gets the contract's
        ``limit``/``skip`` (a listing route lists everything and is cut here afterwards)."""
        style = self.paging
        assert style is not None

        async def paged(scope: Scope, receive: Receive, send: Send) -> None:
            pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
            try:
                limit, skip = read_window(style, dict(pairs), self.max_page_size)
            except ApiProblem as problem:
                await send_problem(send, problem, scope.get(REQUEST_ID_SCOPE_KEY, ""))
                return
            filters = [(k, v) for k, v in pairs if k not in PAGING_PARAMS]
            window.update(limit=limit, skip=skip, filters=filters)
            if kind == "paged":
                query = [*filters, ("limit", str(limit)), ("skip", str(skip))]
                scope["query_string"] = urlencode(query).encode("latin-1")
            await app(scope, receive, send)

        return paged

    def _styled_answer(
        self,
        scope: Scope,
        payload: dict[str, Any],
        kind: Kind,
        resource: str,
        window: dict[str, Any],
    ) -> tuple[Any, list[tuple[str, str]]]:
        """A contract listing shaped the paging option's way (body and extra headers)."""
        assert self.paging is not None
        limit, skip = int(window["limit"]), int(window["skip"])
        items = [_resource(self.dialect, resource, item) for item in payload.get("data", [])]
        if kind == "listing":
            items = items[skip : skip + limit]
        heads = dict(scope.get("headers", []))
        host = bytes(heads.get(b"host", b"")).decode("latin-1")
        if not host and scope.get("server"):
            host = "{}:{}".format(*scope["server"])
        link = link_builder(
            scope.get("scheme", "http"), host, scope["path"], window["filters"], limit
        )
        total = int(payload.get("total", len(items)))
        return shape_page(self.paging, Window(items, total, limit, skip, link))

    def _paging(self, app: ASGIApp) -> ASGIApp:
        async def paged(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                scope["query_string"] = contract_query(
                    self.dialect, scope.get("query_string", b""), self.max_page_size
                )
            except ApiProblem as problem:
                await send_problem(send, problem, scope.get(REQUEST_ID_SCOPE_KEY, ""))
                return
            await app(scope, receive, send)

        return paged

    async def _answer(
        self,
        send: Send,
        status: int,
        headers: list[Any],
        payload: Any,
        path: str,
        kind: Kind,
        resource: str,
    ) -> None:
        dialect = self.dialect
        content_type = "application/json"
        body: Any
        if status >= 400 and isinstance(payload, dict):
            body, content_type = error_answer(dialect, status, payload, path)
            if status == 401 and dialect.auth == "bearer":
                headers.append((b"www-authenticate", b'Bearer realm="autotalk"'))
        elif kind == "send" and not dialect.send_body:
            status, body = dialect.send_status, ...
        elif kind == "send":
            status, body = dialect.send_status, object_answer(dialect, payload, resource)
        elif kind in ("paged", "listing") and isinstance(payload, dict):
            body = list_answer(dialect, payload, resource, paged=kind == "paged")
        else:
            body = object_answer(dialect, payload, resource)
        await self._send_json(send, status, headers, body, content_type)

    @staticmethod
    async def _send_json(
        send: Send,
        status: int,
        headers: list[Any],
        body: Any,
        content_type: str,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        """The answer: ``body`` as JSON (``...``: no body), the inner headers kept but for its
        length and type, and ``extra`` headers."""
        data = b"" if body is ... else json.dumps(body, separators=(",", ":")).encode()
        kept = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
        kept.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
        if data:
            kept.append((b"content-type", content_type.encode()))
        kept.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": kept})
        await send({"type": "http.response.body", "body": data})
