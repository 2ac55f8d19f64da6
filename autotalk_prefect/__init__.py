"""autotalk-prefect: Prefect 3 integration for the AutoTalk customer-messaging API."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names, imported on first use so that `import autotalk_prefect` stays cheap.
_LAZY_EXPORTS: dict[str, str] = {
    "AutoTalkClient": "autotalk_prefect.client",
    "AsyncAutoTalkClient": "autotalk_prefect.client",
    "AutoTalkCredentials": "autotalk_prefect.credentials",
    "AutoTalkSettings": "autotalk_prefect.settings",
    "RetryPolicy": "autotalk_prefect.retries",
    "AutoTalkError": "autotalk_prefect.errors",
    "AuthenticationError": "autotalk_prefect.errors",
    "PermissionDeniedError": "autotalk_prefect.errors",
    "NotFoundError": "autotalk_prefect.errors",
    "ConflictError": "autotalk_prefect.errors",
    "InvalidRequestError": "autotalk_prefect.errors",
    "RateLimitError": "autotalk_prefect.errors",
    "ServerError": "autotalk_prefect.errors",
    "OutcomeUnknownError": "autotalk_prefect.errors",
    "AutoTalkConnectionError": "autotalk_prefect.errors",
    "NoResponseError": "autotalk_prefect.errors",
}

__all__ = [
    "AsyncAutoTalkClient",
    "AuthenticationError",
    "AutoTalkClient",
    "AutoTalkConnectionError",
    "AutoTalkCredentials",
    "AutoTalkError",
    "AutoTalkSettings",
    "ConflictError",
    "InvalidRequestError",
    "NoResponseError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autotalk_prefect' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))


if TYPE_CHECKING:
    from autotalk_prefect.client import AsyncAutoTalkClient, AutoTalkClient
    from autotalk_prefect.credentials import AutoTalkCredentials
    from autotalk_prefect.errors import (
        AuthenticationError,
        AutoTalkConnectionError,
        AutoTalkError,
        ConflictError,
        InvalidRequestError,
        NoResponseError,
        NotFoundError,
        OutcomeUnknownError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
    )
    from autotalk_prefect.retries import RetryPolicy
    from autotalk_prefect.settings import AutoTalkSettings
