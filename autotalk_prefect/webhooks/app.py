"""The receiver's ASGI app: AutoTalk workflow HTTP steps in, Prefect events out.

Order of checks, cheapest and safest first, so that nothing is parsed for a stranger:
secret (header, or the path segment of ``/autotalk/<secret>/<event>``) -> content type
(multipart refused) -> event name -> size (Content-Length, then while streaming) ->
timestamp/signature -> body (JSON under any content type, or form-encoded) -> replay (only for
keyed events) -> emit. Every refusal is ``{"error", "message"}``; no answer, log line or event
contains the secret or a signature.
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

from autotalk_prefect.webhooks.bodies import body_kind, decode_body, parse_body
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

    async def _accept(self, request: Request) -> Response:
        s = self.settings
        self._authenticate(request)
        content_type = request.headers.get("content-type")
        kind = body_kind(content_type)
        if kind == "multipart":
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
        raw = await self._read_body(request)
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
        body = decode_body(raw, kind)
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
            "accepted %s %s as Prefect event %s",
            redact_path(request.url.path),
            prefect_event.event,
            prefect_event.id,
        )
        return JSONResponse(
            {"accepted": True, "event": prefect_event.event, "eventId": str(prefect_event.id)},
            status_code=202,
        )

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
    ``event_field``) and ``GET /healthz``. Building the app also masks the path secret in
    uvicorn's access log. Raises WebhookConfigError without a usable secret.
    """
    settings = settings or WebhookSettings()
    receiver = WebhookReceiver(settings, emitter or PrefectApiEmitter())
    install_access_log_redaction()
    app = Starlette(
        routes=[
            Route("/autotalk/{secret}/{event}", receiver.handle, methods=["POST"]),
            Route("/autotalk/{event}", receiver.handle, methods=["POST"]),
            Route("/autotalk", receiver.handle, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.router.redirect_slashes = False  # a redirected POST would lose its body
    app.state.receiver = receiver
    return app
