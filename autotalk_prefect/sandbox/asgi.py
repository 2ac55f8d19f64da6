"""The sandbox's ASGI vocabulary: the callable types, the API prefix, the problem answer.

The bottom of the sandbox's wire layers: the gate (auth, faults) and the dialect layer (wire
shapes) both speak it, and neither imports the other for it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from autotalk_prefect.sandbox.problems import ApiProblem

__all__ = [
    "API_PREFIX",
    "REQUEST_ID_SCOPE_KEY",
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "send_problem",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/v1/"
REQUEST_ID_SCOPE_KEY = "autotalk.request_id"


async def send_problem(send: Send, problem: ApiProblem, request_id: str) -> None:
    """Answer with the contract's JSON error body."""
    body = json.dumps(problem.body(request_id), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in problem.headers.items()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
