"""autotalk-prefect: Prefect 3 integration for the AutoTalk customer-messaging API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotalk_prefect._lazy import lazy_exports
from autotalk_prefect._version import __version__

# Public names, imported on first use so that `import autotalk_prefect` stays cheap.
_LAZY_EXPORTS: dict[str, str] = {
    "AutoTalkClient": "autotalk_prefect.api.client",
    "AsyncAutoTalkClient": "autotalk_prefect.api.client",
    "AutoTalkCredentials": "autotalk_prefect.credentials",
    "AutoTalkSettings": "autotalk_prefect.api.settings",
    "RetryPolicy": "autotalk_prefect.api.retries",
    "AutoTalkError": "autotalk_prefect.api.errors",
    "AuthenticationError": "autotalk_prefect.api.errors",
    "PermissionDeniedError": "autotalk_prefect.api.errors",
    "NotFoundError": "autotalk_prefect.api.errors",
    "ConflictError": "autotalk_prefect.api.errors",
    "InvalidRequestError": "autotalk_prefect.api.errors",
    "RateLimitError": "autotalk_prefect.api.errors",
    "ServerError": "autotalk_prefect.api.errors",
    "OutcomeUnknownError": "autotalk_prefect.api.errors",
    "AutoTalkConnectionError": "autotalk_prefect.api.errors",
    "NoResponseError": "autotalk_prefect.api.errors",
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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)


if TYPE_CHECKING:
    from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
    from autotalk_prefect.api.errors import (
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
    from autotalk_prefect.api.retries import RetryPolicy
    from autotalk_prefect.api.settings import AutoTalkSettings
    from autotalk_prefect.credentials import AutoTalkCredentials
