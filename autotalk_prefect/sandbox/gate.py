"""The ASGI gate in front of the routes: request ids, auth, stats and fault injection.

It runs before Starlette's own middleware so that it still holds the server's raw ``send``:
"drop after processing" needs it to reach the connection and close it with no answer.
"""

from __future__ import annotations

import asyncio
import json

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
from autotalk_prefect.sandbox.faults import Decision
from autotalk_prefect.sandbox.problems import ERROR_CODES, ApiProblem
from autotalk_prefect.sandbox.runtime import SandboxRuntime
from autotalk_prefect.sandbox.stats import key_fingerprint

FAULT_MESSAGES = {
    429: "too many requests, retry after the Retry-After delay",
    500: "internal server error (injected by the sandbox)",
    502: "bad gateway (injected by the sandbox)",
    503: "service unavailable (injected by the sandbox)",
    504: "gateway timeout (injected by the sandbox)",
}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _drop_connection(raw_send: Send) -> bool:
    """Close the client's connection with no answer; False if the server hides its transport."""
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    transport.close()
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True  # uvicorn: do not try to send a 500 on a closed connection
    await asyncio.sleep(0)
    return True


class ConnectionDropped(RuntimeError):
    """Raised when a drop was asked for but the ASGI server gives no way to close the socket."""


class SandboxGate:
    """Wraps the routed app; every request passes here first."""

    def __init__(self, runtime: SandboxRuntime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        runtime = self.runtime
        request_id = runtime.next_request_id()
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        request_id_header = (b"x-request-id", request_id.encode())
        path: str = scope["path"]
        is_api = path.startswith(API_PREFIX)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), request_id_header]
                if is_api:
                    runtime.stats.answered(message["status"])
            await send(message)

        if not is_api:
            await app(scope, receive, send_with_id)
            return

        client = scope.get("client")
        runtime.stats.started(tuple(client) if client else None)
        try:
            await self._api(scope, receive, send, app, send_with_id, request_id)
        finally:
            runtime.stats.finished()

    async def _api(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        app: ASGIApp,
        send_with_id: Send,
        request_id: str,
    ) -> None:
        runtime = self.runtime
        path: str = scope["path"]
        method: str = scope["method"]
        access = runtime.access_of(_header(scope, b"x-api-key"))
        if access is None:
            runtime.stats.arrived(None)
            problem = ApiProblem(401, "unauthorized", "missing or invalid x-api-key header")
            await send_problem(send_with_id, problem, request_id)
            return
        presented = _header(scope, b"x-api-key") or b""
        fingerprint = key_fingerprint(presented.decode("latin-1"))
        runtime.stats.arrived(fingerprint)
        if access == "ro" and method not in ("GET", "HEAD"):
            problem = ApiProblem(403, "forbidden", "this API key is read-only")
            await send_problem(send_with_id, problem, request_id)
            return

        decision: Decision = runtime.faults.decide(method, path, fingerprint)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.status is not None:
            headers = {"Retry-After": decision.retry_after} if decision.retry_after else {}
            problem = ApiProblem(
                decision.status,
                ERROR_CODES[decision.status],
                FAULT_MESSAGES[decision.status],
                headers=headers,
            )
            await send_problem(send_with_id, problem, request_id)
            return
        if decision.body is not None:  # a refusal inside a 200: nothing applied
            body = json.dumps(decision.body, separators=(",", ":")).encode()
            raw_headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            start = {"type": "http.response.start", "status": 200, "headers": raw_headers}
            await send_with_id(start)
            await send_with_id({"type": "http.response.body", "body": body})
            return
        if not decision.drop:
            await app(scope, receive, send_with_id)
            return

        async def swallow(message: Message) -> None:
            return None

        await app(scope, receive, swallow)  # the request is applied; its answer never leaves
        if not await _drop_connection(send):
            raise ConnectionDropped("drop_after_processing: the request was applied, no answer")
