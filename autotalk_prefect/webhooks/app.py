"""The receiver's ASGI app: AutoTalk workflow HTTP steps in, Prefect events out.

Order of checks, cheapest and safest first, so that nothing is parsed for a stranger:
secret -> content type -> event name -> size (Content-Length, then while streaming) ->
timestamp/signature -> JSON -> replay -> emit. Every refusal is ``{"error", "message"}``;
no answer or log line contains the secret or a signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autotalk_prefect.webhooks.events import (
    EventEmitter,
    PrefectApiEmitter,
    build_event,
    event_key,
    get_path,
)
from autotalk_prefect.webhooks.replay import ReplayGuard
from autotalk_prefect.webhooks.settings import EVENT_NAME_RE, WebhookSettings
from autotalk_prefect.webhooks.verify import secret_matches, signature_problem

logger = logging.getLogger("autotalk_prefect.webhooks")

MAX_DEPTH = 64
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


class Refusal(Exception):
    """A request we answer with an error; ``message`` is safe to show the sender."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        code = _ERROR_CODES.get(self.status, "error")
        headers = {"retry-after": "5"} if self.status == 503 else None
        return JSONResponse(
            {"error": code, "message": self.message}, status_code=self.status, headers=headers
        )


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _parse_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError("a number is out of range")
    return value


def _parse_int(token: str) -> int:
    value = int(token)
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError("an integer does not fit in 64 bits")
    return value


def _check_storable(value: Any, depth: int = 0) -> None:
    """Refuse what Prefect cannot store: deep nesting, lone surrogates, NUL characters."""
    if depth > MAX_DEPTH:
        raise Refusal(400, f"the JSON body is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise Refusal(400, "the JSON body holds a NUL character (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Refusal(400, "the JSON body holds an unpaired surrogate escape") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, depth + 1)
            _check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item, depth + 1)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 Refusal naming what is wrong with it."""
    if not raw.strip():
        raise Refusal(400, "the body is empty; send a JSON object")
    try:
        body = json.loads(
            raw,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        raise Refusal(400, f"the JSON body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise Refusal(400, f"the body is not valid JSON: {exc}"[:300]) from None
    if not isinstance(body, dict):
        raise Refusal(400, f"the body must be a JSON object, got a JSON {type(body).__name__}")
    _check_storable(body)
    return body


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


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
                request.url.path,
                client,
                refusal.status,
                refusal.message,
            )
            return refusal.response()

    async def _accept(self, request: Request) -> Response:
        s = self.settings
        if not secret_matches(request.headers.get(s.secret_header), self._secret):
            raise Refusal(401, f"missing or wrong {s.secret_header} header")
        if not _is_json(request.headers.get("content-type")):
            raise Refusal(415, "send the body as application/json")
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
        body = parse_body(raw)
        event = self._event_name(path_event, body)
        sender_key = event_key(body, raw)
        key = f"{event}\n{sender_key}"
        if not self.replay.reserve(key):
            raise Refusal(409, "this event id was already accepted (a replay or a redelivery)")
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
            self.replay.release(key)
            if not isinstance(exc, Exception):
                raise
            logger.warning(
                "Prefect did not take event %s (%s): answering 503 so that the sender retries",
                event,
                type(exc).__name__,
            )
            raise Refusal(503, "Prefect did not confirm the event; retry later") from None
        self.replay.commit(key)
        logger.info("accepted %s as Prefect event %s", prefect_event.event, prefect_event.id)
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
        {"error": _ERROR_CODES.get(status, "error"), "message": message},
        status_code=status,
        headers=headers,
    )


def create_webhook_app(
    settings: WebhookSettings | None = None, emitter: EventEmitter | None = None
) -> Starlette:
    """The receiver as an ASGI app; mount it anywhere (``app.mount("/hooks", ...)``).

    Routes: ``POST /autotalk/{event}``, ``POST /autotalk`` (event from ``event_field``) and
    ``GET /healthz``. Raises WebhookConfigError without a usable secret.
    """
    settings = settings or WebhookSettings()
    receiver = WebhookReceiver(settings, emitter or PrefectApiEmitter())
    app = Starlette(
        routes=[
            Route("/autotalk/{event}", receiver.handle, methods=["POST"]),
            Route("/autotalk", receiver.handle, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.router.redirect_slashes = False  # a redirected POST would lose its body
    app.state.receiver = receiver
    return app
