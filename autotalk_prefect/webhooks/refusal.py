"""Refusal: a request the receiver answers with ``{"error", "message"}`` and a status."""

from __future__ import annotations

from starlette.responses import JSONResponse

ERROR_CODES = {
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
        code = ERROR_CODES.get(self.status, "error")
        headers = {"retry-after": "5"} if self.status == 503 else None
        return JSONResponse(
            {"error": code, "message": self.message}, status_code=self.status, headers=headers
        )
