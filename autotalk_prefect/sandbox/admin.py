"""The admin API under ``/_sandbox/`` (no API key, never faulted): drive the sandbox from tests.

Documented in docs/sandbox.md. Every route is a thin adapter over ``SandboxRuntime``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autotalk_prefect.sandbox.faults import FaultConfig
from autotalk_prefect.sandbox.http import endpoint, json_response, read_object
from autotalk_prefect.sandbox.problems import ApiProblem, validation_failed
from autotalk_prefect.sandbox.runtime import SandboxRuntime

ADMIN_PREFIX = "/_sandbox"


def _invalid(message: str, path: str) -> ApiProblem:
    return validation_failed([{"path": path, "message": message}])


def _rejected(what: str, exc: ValueError, known: set[str]) -> ApiProblem:
    """422 whose message quotes why, with the issue on the setting the message starts with."""
    text = str(exc)
    first = text.split(" ", 1)[0]
    path = first if first in known else what
    return ApiProblem(
        422, "validation_failed", f"invalid {what}: {text}", [{"path": path, "message": text}]
    )


def _field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool
) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise _invalid("is required", name)
        return None
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _invalid(f"must be {getattr(kind, '__name__', kind)}", name)
    return value


def admin_routes(runtime: SandboxRuntime) -> list[Route]:
    """The admin routes, bound to one runtime."""
    state = runtime.state

    @endpoint
    async def health(request: Request) -> Response:
        return json_response({"ok": True})

    @endpoint
    async def reset(request: Request) -> Response:
        body = await read_object(request, empty={})
        seed = _field(body, "seed", int, required=False)
        contacts = _field(body, "contacts", int, required=False)
        runtime.reset(seed=seed, contacts=contacts)
        return json_response({"ok": True, "seed": state.seed, "contacts": len(state.contact_ids())})

    @endpoint
    async def get_faults(request: Request) -> Response:
        return json_response(runtime.faults.config.to_dict())

    @endpoint
    async def put_faults(request: Request) -> Response:
        body = await read_object(request, empty={})
        try:
            config = FaultConfig.from_dict(body)
        except ValueError as exc:
            raise _rejected("faults", exc, set(FaultConfig.__dataclass_fields__)) from None
        runtime.set_faults(config)
        return json_response(config.to_dict())

    @endpoint
    async def delete_faults(request: Request) -> Response:
        runtime.set_faults(None)
        return json_response(runtime.faults.config.to_dict())

    @endpoint
    async def messages(request: Request) -> Response:
        sent = state.sent_messages(request.query_params.get("contactId"))
        return json_response({"data": sent, "total": len(sent)})

    @endpoint
    async def contacts(request: Request) -> Response:
        ids = state.contact_ids()
        return json_response({"data": ids, "total": len(ids)})

    @endpoint
    async def seed(request: Request) -> Response:
        body = await read_object(request)
        type_name = _field(body, "type", str, required=True)
        count = _field(body, "count", int, required=False)
        fields = _field(body, "fields", dict, required=False) or {}
        count = 1 if count is None else count
        if count < 0 or count > 100_000:
            raise _invalid("must be between 0 and 100000", "count")
        ids = state.seed_items(type_name, count, **fields)
        return json_response({"type": type_name, "ids": ids}, 201)

    @endpoint
    async def get_webhook(request: Request) -> Response:
        config = runtime.webhooks.config
        return json_response(config.describe() if config else None)

    @endpoint
    async def put_webhook(request: Request) -> Response:
        body = await read_object(request)
        url = _field(body, "url", str, required=True)
        secret = _field(body, "secret", str, required=True)
        events = _field(body, "events", list, required=False)
        signed = _field(body, "hmac", bool, required=False)
        delivery = _field(body, "delivery", str, required=False) or "post"
        try:
            config = runtime.webhooks.configure(url, secret, events, bool(signed), delivery)
        except ValueError as exc:
            fields = {"url", "secret", "events", "hmac", "delivery"}
            raise _rejected("webhook", exc, fields) from None
        return json_response(config.describe())

    @endpoint
    async def delete_webhook(request: Request) -> Response:
        runtime.webhooks.clear()
        return json_response(None)

    @endpoint
    async def deliveries(request: Request) -> Response:
        log = runtime.webhooks.deliveries()
        return json_response({"data": log, "total": len(log)})

    @endpoint
    async def simulate_reply(request: Request) -> Response:
        body = await read_object(request)
        contact = _field(body, "contactId", str, required=True)
        text = _field(body, "text", str, required=True)
        if not text:
            raise _invalid("must not be empty", "text")
        channel = _field(body, "channelId", str, required=False)
        return json_response(state.simulate_reply(contact, text, channel), 201)

    @endpoint
    async def stats(request: Request) -> Response:
        return json_response(runtime.stats_snapshot())

    p = ADMIN_PREFIX
    return [
        Route(f"{p}/health", health, methods=["GET"]),
        Route(f"{p}/reset", reset, methods=["POST"]),
        Route(f"{p}/faults", get_faults, methods=["GET"]),
        Route(f"{p}/faults", put_faults, methods=["PUT"]),
        Route(f"{p}/faults", delete_faults, methods=["DELETE"]),
        Route(f"{p}/messages", messages, methods=["GET"]),
        Route(f"{p}/contacts", contacts, methods=["GET"]),
        Route(f"{p}/seed", seed, methods=["POST"]),
        Route(f"{p}/webhook", get_webhook, methods=["GET"]),
        Route(f"{p}/webhook", put_webhook, methods=["PUT"]),
        Route(f"{p}/webhook", delete_webhook, methods=["DELETE"]),
        Route(f"{p}/webhook/deliveries", deliveries, methods=["GET"]),
        Route(f"{p}/simulate/reply", simulate_reply, methods=["POST"]),
        Route(f"{p}/stats", stats, methods=["GET"]),
    ]
