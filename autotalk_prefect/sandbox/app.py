"""``create_app``: the sandbox as an ASGI (FastAPI) application."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from autotalk_prefect.sandbox.admin import admin_routes
from autotalk_prefect.sandbox.api import api_routes
from autotalk_prefect.sandbox.appointments import appointment_routes
from autotalk_prefect.sandbox.asgi import (
    REQUEST_ID_SCOPE_KEY,
    Message,
    Receive,
    Scope,
    Send,
    send_problem,
)
from autotalk_prefect.sandbox.config import SandboxConfig
from autotalk_prefect.sandbox.dialects import DialectLayer, get_dialect
from autotalk_prefect.sandbox.faults import FaultConfig
from autotalk_prefect.sandbox.gate import SandboxGate
from autotalk_prefect.sandbox.inbox import inbox_routes
from autotalk_prefect.sandbox.inbox_appointments import appointment_page_routes
from autotalk_prefect.sandbox.page_styles import get_served_style
from autotalk_prefect.sandbox.problems import ERROR_CODES, ApiProblem
from autotalk_prefect.sandbox.runtime import SandboxRuntime

logger = logging.getLogger("autotalk_prefect.sandbox")


class SandboxApp(FastAPI):
    """FastAPI whose every request passes the sandbox gate before Starlette's middleware."""

    runtime: SandboxRuntime
    gate: SandboxGate
    dialect_layer: DialectLayer | None = None  # None: the contract, untranslated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.dialect_layer is None:
            await self.gate(scope, receive, send, self._dispatch)
        else:
            await self.dialect_layer(scope, receive, send, self.gate, self._dispatch)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route straight to the router: FastAPI's middleware stack (error pages, telemetry,
        exit stacks) costs more per request than most sandbox endpoints, and the routes here
        answer their own errors; 404/405 and crashes get the contract's error body below."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        request_id = scope.get(REQUEST_ID_SCOPE_KEY, "")
        try:
            await self.router(scope, receive, tracking_send)
        except StarletteHTTPException as exc:
            status = exc.status_code
            path = scope["path"]
            message = (
                f"no such endpoint: {scope['method']} {path}"
                if status == 404
                else f"{scope['method']} is not allowed on {path}"
            )
            problem = ApiProblem(status, ERROR_CODES.get(status, "error"), message)
            await send_problem(send, problem, request_id)
        except ClientDisconnect:
            return  # the client went away before its request was read: nothing to answer
        except Exception as exc:
            logger.exception("sandbox bug while answering %s %s", scope["method"], scope["path"])
            if not started:
                problem = ApiProblem(500, "server_error", f"sandbox bug: {type(exc).__name__}")
                await send_problem(send, problem, request_id)


def create_app(config: SandboxConfig | None = None, **overrides: Any) -> SandboxApp:
    """A fresh sandbox app; ``overrides`` are ``SandboxConfig`` fields (``api_key=``, ``seed=``...).

    The app's parts are at ``app.runtime`` (state, faults, stats, webhooks).
    """
    if overrides.get("faults") is not None and not isinstance(overrides["faults"], FaultConfig):
        raise TypeError("faults must be a FaultConfig")
    if config is None:
        config = SandboxConfig(**overrides)
    elif overrides:
        config = replace(config, **overrides)
    runtime = SandboxRuntime(config)
    app = SandboxApp(
        title="AutoTalk sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        routes=[
            *api_routes(runtime),
            *admin_routes(runtime),
            *appointment_routes(runtime),
            *inbox_routes(runtime),
            *appointment_page_routes(runtime),
        ],
    )
    app.runtime = runtime
    app.gate = SandboxGate(runtime)
    if config.dialect != "contract" or config.paging is not None:
        paging = None if config.paging is None else get_served_style(config.paging)
        dialect = get_dialect(config.dialect)
        app.dialect_layer = DialectLayer(dialect, config.max_page_size, paging)

    return app
