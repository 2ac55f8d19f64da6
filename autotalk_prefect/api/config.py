"""The client's configuration, defined once: names, defaults, units, descriptions, validation.

:class:`ClientOptions` is inherited by :class:`~autotalk_prefect.api.settings.AutoTalkSettings`
(``AUTOTALK_*`` environment) and by the ``AutoTalkCredentials`` block, and turned into client
arguments by :meth:`ClientOptions.client_kwargs`; the clients' own defaults are the constants
below (the retry bounds' are the retry policy's, ``retries.py``, imported here). The API key is
not here: the block requires it, the settings may lack it.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, field_validator

from autotalk_prefect.api.base_url import check_base_url
from autotalk_prefect.api.paging import PageStyle, check_page_style
from autotalk_prefect.api.retries import (
    DEFAULT_RETRY_AFTER_CAP,
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_RETRY_MAX_SECONDS,
    RetryPolicy,
)

__all__ = [
    "AUTH_SCHEMES",
    "DEFAULT_AUTH_SCHEME",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_PAGE_STYLE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRY_AFTER_CAP",
    "DEFAULT_RETRY_ATTEMPTS",
    "DEFAULT_RETRY_MAX_SECONDS",
    "AuthScheme",
    "ClientOptions",
    "check_auth_scheme",
]

AuthScheme = Literal["x-api-key", "bearer"]
AUTH_SCHEMES: tuple[str, ...] = get_args(AuthScheme)

DEFAULT_BASE_URL = "https://api.autotalk.io/v1"
DEFAULT_AUTH_SCHEME: AuthScheme = "x-api-key"
DEFAULT_PAGE_STYLE: PageStyle = "auto"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_CONCURRENCY = 16


def check_auth_scheme(value: object) -> AuthScheme:
    """``value`` if it names a way to send the key, else a ValueError listing them."""
    if value not in AUTH_SCHEMES:
        raise ValueError(f"auth_scheme must be one of {', '.join(AUTH_SCHEMES)}, got {value!r}")
    return value  # type: ignore[return-value]


class ClientOptions(BaseModel):
    """Every client setting but the key (a mixin for the settings and the credentials block)."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        title="Base URL",
        description="The AutoTalk API base URL; plain http is accepted only for loopback hosts.",
    )
    auth_scheme: AuthScheme = Field(
        default=DEFAULT_AUTH_SCHEME,
        title="Auth scheme",
        description=(
            "How the key is sent: x-api-key (the x-api-key header, AutoTalk's API reference) "
            "or bearer (Authorization: Bearer, AutoTalk's API Tokens page)."
        ),
    )
    page_style: PageStyle = Field(
        default=DEFAULT_PAGE_STYLE,
        title="Page style",
        description=(
            "How listings page (AUTOTALK_PAGING): auto (told from the first answer), "
            "json_link (a next URL in the body), header_link (a Link rel=next header), cursor "
            "(a next cursor in the body), header_cursor (in a response header), offset "
            "(offset and limit), skip (skip and limit) or page (page numbers)."
        ),
    )
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT,
        gt=0,
        title="Connect timeout (seconds)",
        description="Seconds to wait while opening a connection.",
    )
    read_timeout: float = Field(
        default=DEFAULT_READ_TIMEOUT,
        gt=0,
        title="Read timeout (seconds)",
        description="Seconds to wait for an answer once a request is sent.",
    )
    retry_attempts: int = Field(
        default=DEFAULT_RETRY_ATTEMPTS,
        ge=1,
        title="Retry attempts (count)",
        description="Attempts per call, the first included (1 = no retries).",
    )
    retry_max_seconds: float = Field(
        default=DEFAULT_RETRY_MAX_SECONDS,
        gt=0,
        title="Retry budget (seconds)",
        description="Total seconds one call may spend retrying.",
    )
    retry_after_cap: float = Field(
        default=DEFAULT_RETRY_AFTER_CAP,
        gt=0,
        title="Retry-After cap (seconds)",
        description="Longest Retry-After wait honoured, in seconds.",
    )
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY,
        ge=1,
        title="Max concurrency (requests)",
        description="Concurrent requests in bulk work (and the connection pool size).",
    )

    @field_validator("page_style", mode="before")
    @classmethod
    def _check_page_style(cls, value: object) -> PageStyle:
        """A style's other names (``page_number``) become its own; others are refused."""
        return check_page_style(value)

    @field_validator("base_url", mode="before")
    @classmethod
    def _check_base_url(cls, value: object) -> str:
        """The client's own check, refused here naming ``base_url`` rather than at a request."""
        return check_base_url(value)

    def retry_policy(self) -> RetryPolicy:
        """The client retry policy these options describe."""
        return RetryPolicy.from_settings(self)

    def client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for either client's constructor (after ``api_key``)."""
        kwargs: dict[str, Any] = {
            "base_url": self.base_url,
            "auth_scheme": self.auth_scheme,
            "page_style": self.page_style,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retry_policy": self.retry_policy(),
            "max_connections": self.max_concurrency,
        }
        kwargs.update(overrides)
        return kwargs

    def options(self) -> dict[str, Any]:
        """These options' values by name (to copy them into another ClientOptions)."""
        return {name: getattr(self, name) for name in ClientOptions.model_fields}
