"""The receiver's ASGI app: AutoTalk workflow HTTP steps in, Prefect events out.

Order of checks, cheapest and safest first, so that nothing is parsed for a stranger:
(GET: no secret in the query string) -> secret (header, or the path segment of
``/autotalk/<secret>/<event>``) -> content type (multipart refused) -> event name -> size
(Content-Length, then while streaming; the query string for a GET) -> timestamp/signature ->
body (JSON under any content type, form-encoded, or a GET's query string) -> replay (only for
keyed events) -> emit. Every refusal is ``{"error", "message"}``; no answer, log line or event
contains the secret or a signature.

A JSON array is one event per element, each checked, deduplicated and emitted on its own; the
answer lists a result per element: 202 when all were accepted, 207 when some were, the
refusal's status when none was (409 when all were duplicates), and 503 (the rest not tried)
when Prefect did not confirm one, so that the sender retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autotalk_prefect.webhooks.bodies import (
    body_kind,
    check_storable,
    decode_body,
    parse_body,
    parse_query,
)
from autotalk_prefect.webhooks.events import (
    EventEmitter,
    PrefectApiEmitter,
    build_event,
    event_key,
    get_path,
)
from autotalk_prefect.webhooks.redact import install_access_log_redaction, redact_path
from autotalk_prefect.webhooks.refusal import ERROR_CODES, Refusal
from autotalk_prefect.webhooks.replay import ReplayGuard
from autotalk_prefect.webhooks.settings import EVENT_NAME_RE, WebhookSettings
from autotalk_prefect.webhooks.verify import path_secret_matches, secret_matches, signature_problem

#: query parameter names a secret would travel under (any value equal to the secret counts too)
SECRET_PARAMS = frozenset({"secret", "token", "x-autotalk-secret", "autotalk_secret"})

__all__ = ["Refusal", "WebhookReceiver", "create_webhook_app", "parse_body"]

logger = logging.getLogger("autotalk_prefect.webhooks")


class WebhookReceiver:
    """The request handling behind the app (one per app: it holds the replay cache)."""

    def __init__(self, settings: WebhookSettings, emitter: EventEmitter) -> None:
        self.settings = settings
        self.emitter = emitter
        self._secret = settings.require_secret()
        self.replay = ReplayGuard(settings.tolerance_seconds, settings.replay_cache_size)

    async def handle(self, request: Request) -> Response:
        try:
            return await self._accept(request)
        except Refusal as refusal:
            client = request.client.host if request.client else "?"
            logger.info(
                "refused webhook %s from %s: %d %s",
                redact_path(request.url.path),
                client,
                refusal.status,
                refusal.message,
            )
            return refusal.response()

    def _authenticate(self, request: Request) -> None:
        s = self.settings
        in_path = request.path_params.get("secret")
        if in_path is not None:
            if not path_secret_matches(in_path, self._secret):
                raise Refusal(401, "wrong secret in the URL path")
        elif not secret_matches(request.headers.get(s.secret_header), self._secret):
            raise Refusal(
                401,
                f"missing or wrong {s.secret_header} header (or put the secret in the path: "
                "POST /autotalk/<secret>/<event>)",
            )

    def _refuse_query_secret(self, request: Request) -> None:
        """A secret in the query string is refused before anything else (URLs are kept by
        proxies, browsers and access logs); the answer and the log never hold its value."""
        names = {*SECRET_PARAMS, self.settings.secret_header.lower()}
        for name, value in request.query_params.multi_items():
            if name.lower() in names or secret_matches(value, self._secret):
                raise Refusal(
                    400,
                    "the secret must not travel in the query string (proxies and access logs "
                    f"keep URLs): send it in the {self.settings.secret_header} header or in "
                    "the path (GET /autotalk/<secret>/<event>?...)",
                )

    async def _accept(self, request: Request) -> Response:
        s = self.settings
        is_get = request.method == "GET"
        if is_get:
            self._refuse_query_secret(request)
        self._authenticate(request)
        kind = body_kind(request.headers.get("content-type"))
        if kind == "multipart" and not is_get:
            raise Refusal(
                415, "multipart bodies are not accepted; send JSON or form-encoded fields"
            )
        path_event = request.path_params.get("event")
        if path_event is not None and not EVENT_NAME_RE.fullmatch(path_event):
            raise Refusal(404, f"event names in the path must match {EVENT_NAME_RE.pattern}")
        if path_event is None and s.event_field is None:
            raise Refusal(
                404,
                "name the event in the path (POST /autotalk/<event>) or configure "
                "AUTOTALK_WEBHOOK_EVENT_FIELD for POST /autotalk",
            )
        raw = self._read_query(request) if is_get else await self._read_body(request)
        if s.hmac:
            problem = signature_problem(
                self._secret,
                raw,
                request.headers.get(s.timestamp_header),
                request.headers.get(s.signature_header),
                now=time.time(),
                tolerance_seconds=s.tolerance_seconds,
            )
            if problem:
                raise Refusal(401, problem)
        body = parse_query(raw) if is_get else decode_body(raw, kind)
        where = redact_path(request.url.path)
        if isinstance(body, list):
            return await self._accept_many(path_event, body, where)
        return JSONResponse(await self._accept_one(path_event, body, where), status_code=202)

    async def _accept_one(
        self, path_event: str | None, body: dict[str, Any], where: str
    ) -> dict[str, Any]:
        """One event: named, deduplicated, emitted; its result, or a Refusal."""
        s = self.settings
        event = self._event_name(path_event, body)
        sender_key = event_key(body, s.dedupe_fields)
        key = None if sender_key is None else f"{event}\n{sender_key}"
        if key is not None and not self.replay.reserve(key):
            what = "event id" if sender_key and sender_key.startswith("id:") else "dedupe key"
            raise Refusal(409, f"this {what} was already accepted (a replay or a redelivery)")
        try:
            prefect_event = build_event(
                event,
                body,
                sender_key,
                prefix=s.event_prefix,
                tolerance_seconds=s.tolerance_seconds,
            )
            await asyncio.wait_for(self.emitter.emit(prefect_event), s.emit_timeout_seconds)
        except BaseException as exc:
            if key is not None:
                self.replay.release(key)
            if not isinstance(exc, Exception):
                raise
            logger.warning(
                "Prefect did not take event %s (%s): answering 503 so that the sender retries",
                event,
                type(exc).__name__,
            )
            raise Refusal(503, "Prefect did not confirm the event; retry later") from None
        if key is not None:
            self.replay.commit(key)
        logger.info(
            "accepted %s %s as Prefect event %s", where, prefect_event.event, prefect_event.id
        )
        return {"accepted": True, "event": prefect_event.event, "eventId": str(prefect_event.id)}

    async def _accept_many(
        self, path_event: str | None, elements: list[Any], where: str
    ) -> Response:
        """A JSON array: each element one event, on its own; a result per element."""
        if not elements:
            raise Refusal(400, "the JSON array is empty; send one JSON object per event")
        results: list[dict[str, Any]] = []
        unavailable = False
        for index, element in enumerate(elements):
            try:
                if unavailable:
                    raise Refusal(503, "not tried: Prefect did not confirm an earlier event")
                if not isinstance(element, dict):
                    raise Refusal(
                        400,
                        f"element {index} must be a JSON object, got a JSON "
                        f"{type(element).__name__}",
                    )
                check_storable(element)
                results.append(
                    {"index": index, **await self._accept_one(path_event, element, where)}
                )
            except Refusal as refusal:
                unavailable = unavailable or refusal.status == 503
                results.append(
                    {
                        "index": index,
                        "accepted": False,
                        "status": refusal.status,
                        "error": ERROR_CODES.get(refusal.status, "error"),
                        "message": refusal.message,
                    }
                )
        accepted = sum(1 for r in results if r["accepted"])
        statuses = [int(r["status"]) for r in results if not r["accepted"]]
        answer: dict[str, Any] = {
            "accepted": accepted,
            "refused": len(statuses),
            "results": results,
        }
        if unavailable:
            status = 503
        elif not statuses:
            status = 202
        elif accepted:
            status = 207
        else:
            status = next((code for code in statuses if code != 409), 409)
        if status >= 400:
            answer = {
                "error": ERROR_CODES.get(status, "error"),
                "message": f"none of the {len(elements)} events was accepted"
                if not unavailable
                else "Prefect did not confirm an event; retry later",
                **answer,
            }
        headers = {"retry-after": "5"} if unavailable else None
        if statuses:
            logger.info("refused %d of %d events of %s", len(statuses), len(elements), where)
        return JSONResponse(answer, status_code=status, headers=headers)

    def _read_query(self, request: Request) -> bytes:
        """A GET delivery's fields: its raw query string (what an HMAC signs), size-checked."""
        raw = bytes(request.scope.get("query_string", b""))
        if len(raw) > self.settings.max_body_bytes:
            raise Refusal(
                413, f"the query string is larger than {self.settings.max_body_bytes} bytes"
            )
        if not raw.strip():
            raise Refusal(400, "a GET delivery carries its fields in the query string; it has none")
        return raw

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise Refusal(400, "the Content-Length header is not a number")
            if int(declared) > limit:
                raise Refusal(413, f"the body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refusal(413, f"the body is larger than {limit} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise Refusal(400, "the sender disconnected before the body was complete") from None
        return b"".join(chunks)

    def _event_name(self, path_event: str | None, body: dict[str, Any]) -> str:
        field = self.settings.event_field
        body_event = get_path(body, field) if field else None
        if field and path_event is None:
            if not isinstance(body_event, str) or not EVENT_NAME_RE.fullmatch(body_event):
                raise Refusal(
                    400, f"body field {field!r} must name the event ({EVENT_NAME_RE.pattern})"
                )
            return body_event
        assert path_event is not None
        if field and body_event is not None and body_event != path_event:
            raise Refusal(
                400, f"body field {field!r} names another event than the path ({path_event!r})"
            )
        return path_event


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "no such route", 405: "method not allowed"}.get(status, "request failed")
    headers = getattr(exc, "headers", None)
    return JSONResponse(
        {"error": ERROR_CODES.get(status, "error"), "message": message},
        status_code=status,
        headers=headers,
    )


def create_webhook_app(
    settings: WebhookSettings | None = None, emitter: EventEmitter | None = None
) -> Starlette:
    """The receiver as an ASGI app; mount it anywhere (``app.mount("/hooks", ...)``).

    Routes: ``POST /autotalk/{event}`` (secret in a header), ``POST /autotalk/{secret}/{event}``
    (secret in the path, for senders that cannot set headers), ``POST /autotalk`` (event from
    ``event_field``), each also as a GET whose query string is the body, and ``GET /healthz``. Building the app also masks the path secret in
    uvicorn's access log. Raises WebhookConfigError without a usable secret.
    """
    settings = settings or WebhookSettings()
    receiver = WebhookReceiver(settings, emitter or PrefectApiEmitter())
    install_access_log_redaction()
    app = Starlette(
        routes=[
            Route("/autotalk/{secret}/{event}", receiver.handle, methods=["POST", "GET"]),
            Route("/autotalk/{event}", receiver.handle, methods=["POST", "GET"]),
            Route("/autotalk", receiver.handle, methods=["POST", "GET"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.router.redirect_slashes = False  # a redirected POST would lose its body
    app.state.receiver = receiver
    return app
