"""The sandbox's error answers: one exception type that carries the contract's error body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ApiProblem(Exception):
    """An error answer: HTTP status, contract ``error`` code, message and optional issues."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        issues: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.issues = [dict(i) for i in issues] if issues is not None else None
        self.headers = dict(headers or {})

    def body(self, request_id: str | None) -> dict[str, Any]:
        """The JSON error body of the contract: ``{error, message, issues?, requestId}``."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.issues is not None:
            body["issues"] = self.issues
        if request_id:
            body["requestId"] = request_id
        return body


def not_found(what: str) -> ApiProblem:
    """404 ``not_found``: ``what`` says which thing, e.g. "no clients item 'abc'"."""
    return ApiProblem(404, "not_found", what)


def bad_request(message: str) -> ApiProblem:
    """400 ``bad_request``: unreadable body or a bad query parameter."""
    return ApiProblem(400, "bad_request", message)


def conflict(message: str) -> ApiProblem:
    """409 ``conflict``: create with an ``_id`` that already exists."""
    return ApiProblem(409, "conflict", message)


def validation_failed(issues: Sequence[Mapping[str, str]], what: str = "body") -> ApiProblem:
    """422 ``validation_failed`` whose message lists the fields named by ``issues``."""
    fields = ", ".join(dict.fromkeys(str(i["path"]) for i in issues)) or what
    return ApiProblem(422, "validation_failed", f"invalid {what}: check {fields}", issues)


ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_failed",
    429: "rate_limited",
    500: "server_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}
