"""errors.py: the status -> exception mapping, what each error carries, and pickling."""

from __future__ import annotations

import pickle
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from autotalk_prefect.api.errors import (
    MAX_BODY_CHARS,
    AuthenticationError,
    AutoTalkConnectionError,
    AutoTalkError,
    ConflictError,
    ExplicitRefusalError,
    InvalidRequestError,
    NoResponseError,
    NotFoundError,
    NoUsableAnswerError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    RefusedError,
    ServerError,
    UnexpectedAnswerError,
    ValidationIssue,
    error_from_response,
    parse_retry_after,
)

KEY = "sk-test-very-secret-key-0123456789"


def _response(status: int, body: object = None, headers: dict[str, str] | None = None, **kw):
    request = httpx.Request("GET", "https://api.example.test/v1/x", headers={"x-api-key": KEY})
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=body or "", headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (507, ServerError),
        (418, RefusedError),
        (405, RefusedError),
    ],
)
def test_each_status_maps_to_its_exception(status: int, cls: type[AutoTalkError]) -> None:
    error = error_from_response(
        _response(status, {"error": "some_code", "message": "what went wrong"}), "GET", "/x"
    )
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "what went wrong"
    assert error.code == "some_code"
    assert (error.method, error.path) == ("GET", "/x")
    assert str(error).startswith(f"{status} GET /x: what went wrong")


def test_message_falls_back_to_error_code_then_text_then_reason() -> None:
    only_code = error_from_response(_response(404, {"error": "not_found"}), "GET", "/a")
    assert only_code.message == "not_found"
    nested = error_from_response(_response(500, {"error": {"message": "boom"}}), "GET", "/a")
    assert nested.message == "boom"
    text = error_from_response(_response(502, "upstream went away"), "GET", "/a")
    assert text.message == "upstream went away"
    assert text.body == "upstream went away"
    empty = error_from_response(_response(503, ""), "GET", "/a")
    assert empty.message == "Service Unavailable"
    json_string = error_from_response(_response(400, '"bad thing"'), "GET", "/a")
    assert json_string.message == "bad thing"


def test_validation_issues_are_parsed_and_named_in_the_text() -> None:
    body = {
        "error": "validation_failed",
        "message": "the item does not match the schema",
        "issues": [
            {"path": "email", "message": "not an email"},
            {"path": ["lines", 0, "qty"], "message": "must be positive"},
        ],
    }
    error = error_from_response(_response(422, body), "POST", "/dynadata/type/clients/create")
    assert isinstance(error, InvalidRequestError)
    assert error.issues == [
        ValidationIssue(path="email", message="not an email"),
        ValidationIssue(path="lines.0.qty", message="must be positive"),
    ]
    assert "email: not an email" in str(error)
    assert "lines.0.qty: must be positive" in str(error)
    assert '"validation_failed"' in (error.body or "")


def test_request_id_from_header_or_body() -> None:
    by_header = error_from_response(
        _response(404, {"error": "not_found", "requestId": "body-id"}, {"x-request-id": "hdr-id"}),
        "GET",
        "/a",
    )
    assert by_header.request_id == "hdr-id"
    assert "[request id hdr-id]" in str(by_header)
    by_body = error_from_response(
        _response(404, {"error": "not_found", "requestId": "body-id"}), "GET", "/a"
    )
    assert by_body.request_id == "body-id"


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=now) == 7.0
    earlier = format_datetime(now - timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0

    limited = error_from_response(
        _response(429, {"error": "rate_limited"}, {"retry-after": "3"}), "GET", "/a"
    )
    assert isinstance(limited, RateLimitError)
    assert limited.retry_after == 3.0
    unavailable = error_from_response(_response(503, "", {"Retry-After": "1"}), "GET", "/a")
    assert isinstance(unavailable, ServerError)
    assert unavailable.retry_after == 1.0


ALL_CLASSES = [
    AutoTalkError,
    RefusedError,
    NoUsableAnswerError,
    UnexpectedAnswerError,
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    ConflictError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    OutcomeUnknownError,
    AutoTalkConnectionError,
    NoResponseError,
]


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_every_error_survives_pickle_with_all_fields(cls: type[AutoTalkError]) -> None:
    error = cls(
        "it broke",
        status_code=422,
        body='{"error":"x"}',
        method="POST",
        path="/p",
        request_id="rid",
        code="x",
        retry_after=2.5,
        issues=[ValidationIssue(path="f", message="bad")],
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)
    assert copy.args == error.args


def test_a_mapped_error_survives_pickle() -> None:
    error = error_from_response(
        _response(422, {"message": "nope", "issues": [{"path": "a", "message": "b"}]}),
        "PUT",
        "/dynadata/type/t/update",
    )
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, InvalidRequestError)
    assert copy.issues == error.issues
    assert str(copy) == str(error)


def test_the_key_never_reaches_an_error() -> None:
    """The key is in the request's headers; nothing of the error comes from there."""
    error = error_from_response(_response(401, {"error": "unauthorized"}), "GET", "/self")
    for text in (str(error), repr(error), error.body or "", str(pickle.dumps(error))):
        assert KEY not in text


def test_a_body_echoing_a_secret_is_redacted() -> None:
    body = {"error": "unauthorized", "message": f"key {KEY} is revoked"}
    error = error_from_response(_response(401, body), "GET", "/self", redact=[KEY])
    assert isinstance(error, AuthenticationError)
    for text in (str(error), repr(error), error.body or "", error.message):
        assert KEY not in text
    assert "***" in error.message


def test_an_oversized_body_is_cut_and_still_maps_to_its_error() -> None:
    """A pathological error page stays out of logs: the body kept is MAX_BODY_CHARS long, the
    message a short prefix of it (the cut JSON no longer parses), the class still by status."""
    echo = "a" * (2 * MAX_BODY_CHARS)
    body = {"error": "not_found", "message": f"no clients item with _id {echo!r}"}
    error = error_from_response(_response(404, body), "GET", "/dynadata/type/clients/item/x")
    assert isinstance(error, NotFoundError) and error.status_code == 404
    assert error.body is not None and len(error.body) == MAX_BODY_CHARS
    assert 0 < len(error.message) <= 500 and error.message.startswith('{"error":"not_found"')


def test_transport_level_errors_have_no_status() -> None:
    error = AutoTalkConnectionError("could not reach", method="GET", path="/self")
    assert error.status_code is None
    assert str(error) == "GET /self: could not reach"


@pytest.mark.parametrize(
    ("body", "message", "issues"),
    [
        # RFC 7807 problem details
        (
            {"type": "about:blank", "title": "Bad Request", "detail": "name is required"},
            "Bad Request: name is required",
            [],
        ),
        ({"detail": "Not authenticated"}, "Not authenticated", []),
        # {"error": {"message": ..., "issues": [...]}} (Zod's error object, wrapped)
        (
            {"error": {"message": "Invalid input", "issues": [{"path": ["a", 1], "message": "x"}]}},
            "Invalid input",
            [("a.1", "x")],
        ),
        # issues under errors / details, string or array paths, or plain strings
        (
            {"message": "Validation failed", "errors": [{"path": "email", "message": "bad"}]},
            "Validation failed",
            [("email", "bad")],
        ),
        (
            {"title": "Invalid", "details": [{"field": "qty", "msg": "too small"}, "name missing"]},
            "Invalid",
            [("qty", "too small"), ("", "name missing")],
        ),
    ],
)
def test_error_bodies_in_other_shapes(
    body: dict[str, object], message: str, issues: list[tuple[str, str]]
) -> None:
    error = error_from_response(_response(400, body), "POST", "/conversations")
    assert error.message == message
    assert [(i.path, i.message) for i in error.issues] == issues
    for path, text in issues:
        assert f"{path}: {text}" in str(error)


#: the tree the module docstring draws: each class's parent
TREE = {
    RefusedError: AutoTalkError,
    InvalidRequestError: RefusedError,
    AuthenticationError: RefusedError,
    PermissionDeniedError: RefusedError,
    NotFoundError: RefusedError,
    ConflictError: RefusedError,
    RateLimitError: RefusedError,
    ServerError: RefusedError,
    ExplicitRefusalError: RefusedError,
    NoUsableAnswerError: AutoTalkError,
    AutoTalkConnectionError: NoUsableAnswerError,
    NoResponseError: NoUsableAnswerError,
    OutcomeUnknownError: NoUsableAnswerError,
    UnexpectedAnswerError: NoUsableAnswerError,
}


def test_the_tree_is_the_one_the_docstring_draws() -> None:
    import autotalk_prefect.api.errors as errors

    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, AutoTalkError)
    }
    assert defined == {AutoTalkError, *TREE}
    for cls, parent in TREE.items():
        assert cls.__bases__ == (parent,), cls
    drawing = (errors.__doc__ or "").split("::", 1)[1].split("\n\n")[1]
    column: dict[str, int] = {}  # where each drawn name starts: a child 4 right of its parent
    for line in drawing.splitlines():
        name = re.search(r"[A-Za-z]+", line)
        assert name is not None, line
        column[name.group()] = name.start()
    assert list(column) == ["AutoTalkError", *(c.__name__ for c in TREE)], "redraw the tree"
    for cls, parent in TREE.items():
        assert column[cls.__name__] == column[parent.__name__] + 4, f"{cls.__name__} misdrawn"


def test_every_status_error_is_refused_and_every_lost_answer_no_usable_answer() -> None:
    for status in (400, 401, 403, 404, 405, 409, 410, 418, 422, 429, 500, 503, 599):
        error = error_from_response(_response(status, {"message": "no"}), "POST", "/m")
        assert isinstance(error, RefusedError) and not isinstance(error, NoUsableAnswerError)
    for cls in (AutoTalkConnectionError, NoResponseError, OutcomeUnknownError):
        assert issubclass(cls, NoUsableAnswerError) and not issubclass(cls, RefusedError)


def test_the_root_exports_every_public_error_once_and_lazily() -> None:
    import subprocess
    import sys

    import autotalk_prefect
    import autotalk_prefect.api.errors as errors

    assert set(errors.__all__) <= set(autotalk_prefect.__all__)
    for name in errors.__all__:
        assert getattr(autotalk_prefect, name) is getattr(errors, name)
    assert set(errors.__all__) >= {c.__name__ for c in TREE}
    code = (
        "import sys, autotalk_prefect\n"
        "assert 'autotalk_prefect.api.errors' not in sys.modules, 'imported eagerly'\n"
        "from autotalk_prefect import RefusedError\n"
        "assert 'autotalk_prefect.api.errors' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
