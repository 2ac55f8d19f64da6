"""``create_app``: the sandbox as an ASGI (FastAPI) application."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from autotalk_prefect.sandbox.admin import admin_routes
from autotalk_prefect.sandbox.api import api_routes
from autotalk_prefect.sandbox.config import SandboxConfig
from autotalk_prefect.sandbox.faults import FaultConfig
from autotalk_prefect.sandbox.gate import Receive, SandboxGate, Scope, Send
from autotalk_prefect.sandbox.http import problem_response
from autotalk_prefect.sandbox.problems import ERROR_CODES, ApiProblem
from autotalk_prefect.sandbox.runtime import SandboxRuntime


class SandboxApp(FastAPI):
    """FastAPI whose every request passes the sandbox gate before Starlette's middleware."""

    runtime: SandboxRuntime
    gate: SandboxGate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        await self.gate(scope, receive, send, super().__call__)


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
        routes=[*api_routes(runtime), *admin_routes(runtime)],
    )
    app.runtime = runtime
    app.gate = SandboxGate(runtime)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        message = {404: f"no such endpoint: {request.method} {request.url.path}"}.get(
            status, f"{request.method} is not allowed on {request.url.path}"
        )
        return problem_response(
            request, ApiProblem(status, ERROR_CODES.get(status, "error"), message)
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        return problem_response(
            request, ApiProblem(500, "server_error", f"sandbox bug: {type(exc).__name__}")
        )

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    return app
