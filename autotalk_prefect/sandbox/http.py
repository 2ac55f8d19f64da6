"""HTTP helpers shared by the API and admin routes: JSON in and out, errors, paging params."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import cache, wraps
from typing import Any

from jsonschema import Draft202012Validator
from starlette.requests import Request
from starlette.responses import Response

from autotalk_prefect.api.contract import json_schema
from autotalk_prefect.sandbox.asgi import REQUEST_ID_SCOPE_KEY
from autotalk_prefect.sandbox.ids import normalize_timestamp
from autotalk_prefect.sandbox.page_styles import DEFAULT_LIMIT
from autotalk_prefect.sandbox.problems import ApiProblem, bad_request, validation_failed
from autotalk_prefect.sandbox.schemas import validation_issues

Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON answer."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def problem_response(request: Request, problem: ApiProblem) -> Response:
    """The contract's error body for ``problem``, carrying this request's id."""
    return json_response(
        problem.body(request.scope.get(REQUEST_ID_SCOPE_KEY)), problem.status, problem.headers
    )


def endpoint(fn: Endpoint) -> Endpoint:
    """Turn ``ApiProblem`` raised by a route into its error answer."""

    @wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiProblem as problem:
            return problem_response(request, problem)

    return wrapper


async def read_json(request: Request, *, empty: Any = ...) -> Any:
    """The JSON body; 400 if it is not JSON (an empty body gives ``empty`` when one is given)."""
    raw = await request.body()
    if not raw.strip():
        if empty is not ...:
            return empty
        raise bad_request("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None


async def read_object(request: Request, *, empty: Any = ...) -> dict[str, Any]:
    """The JSON body, which must be an object (400 otherwise)."""
    body = await read_json(request, empty=empty)
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


@cache
def _contract_validator(schema_name: str) -> Draft202012Validator:
    document = json_schema(schema_name)  # {"$ref": "#/$defs/<name>", "$defs": {...}}
    defs = document["$defs"]
    # Inline the top-level schema: following the $ref costs more than the validation itself.
    return Draft202012Validator(
        {"$schema": document["$schema"], **defs[schema_name], "$defs": defs}
    )


def check_body(schema_name: str, body: Any) -> None:
    """422 naming each field where ``body`` breaks the contract's ``schema_name`` schema."""
    issues = validation_issues(_contract_validator(schema_name), body)
    if issues:
        raise validation_failed(issues)


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise bad_request(f"query parameter {name} must be >= {minimum}, got {value}")
    return value


def page_params(
    request: Request, max_page_size: int, default: int = DEFAULT_LIMIT
) -> tuple[int, int]:
    """``(limit, skip)`` from the query (limit defaults to 20 and is capped server-side)."""
    limit = min(_int_param(request, "limit", default, 1), max_page_size)
    return limit, _int_param(request, "skip", 0, 0)


def time_param(request: Request, name: str, *, blank_is_absent: bool = False) -> str | None:
    """A date-time query parameter normalised to the wire format (400 if it is not one).

    ``blank_is_absent``: an empty value filters nothing (an HTML form's blank field).
    """
    raw = request.query_params.get(name)
    if raw is None or (blank_is_absent and not raw.strip()):
        return None
    try:
        return normalize_timestamp(raw)
    except ValueError as exc:
        raise bad_request(f"query parameter {name}: {exc}") from None


def updated_since_param(request: Request) -> str | None:
    """``updatedSince`` normalised to the wire format (400 if it is not a date-time)."""
    return time_param(request, "updatedSince")
