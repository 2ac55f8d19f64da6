"""autotalk-prefect: Prefect 3 integration for the AutoTalk customer-messaging API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotalk_prefect._lazy import lazy_exports
from autotalk_prefect._version import __version__ as __version__

#: the exception tree, re-exported from ``autotalk_prefect.api.errors``
_ERRORS = (
    "AuthenticationError",
    "AutoTalkConnectionError",
    "AutoTalkError",
    "ConflictError",
    "InvalidRequestError",
    "NoResponseError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitError",
    "RefusedError",
    "ServerError",
    "UnexpectedAnswerError",
)

# Public names, imported on first use so that `import autotalk_prefect` stays cheap.
_LAZY_EXPORTS: dict[str, str] = {
    "AutoTalkClient": "autotalk_prefect.api.client",
    "AsyncAutoTalkClient": "autotalk_prefect.api.client",
    "AutoTalkCredentials": "autotalk_prefect.credentials",
    "AutoTalkSettings": "autotalk_prefect.api.settings",
    "RetryPolicy": "autotalk_prefect.api.retries",
    **dict.fromkeys(_ERRORS, "autotalk_prefect.api.errors"),
}

__all__ = sorted([*_LAZY_EXPORTS, "__version__"])

__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)


if TYPE_CHECKING:  # explicit re-exports (``X as X``) for type checkers
    from autotalk_prefect.api.client import AsyncAutoTalkClient as AsyncAutoTalkClient
    from autotalk_prefect.api.client import AutoTalkClient as AutoTalkClient
    from autotalk_prefect.api.errors import AuthenticationError as AuthenticationError
    from autotalk_prefect.api.errors import AutoTalkConnectionError as AutoTalkConnectionError
    from autotalk_prefect.api.errors import AutoTalkError as AutoTalkError
    from autotalk_prefect.api.errors import ConflictError as ConflictError
    from autotalk_prefect.api.errors import InvalidRequestError as InvalidRequestError
    from autotalk_prefect.api.errors import NoResponseError as NoResponseError
    from autotalk_prefect.api.errors import NotFoundError as NotFoundError
    from autotalk_prefect.api.errors import OutcomeUnknownError as OutcomeUnknownError
    from autotalk_prefect.api.errors import PermissionDeniedError as PermissionDeniedError
    from autotalk_prefect.api.errors import RateLimitError as RateLimitError
    from autotalk_prefect.api.errors import RefusedError as RefusedError
    from autotalk_prefect.api.errors import ServerError as ServerError
    from autotalk_prefect.api.errors import UnexpectedAnswerError as UnexpectedAnswerError
    from autotalk_prefect.api.retries import RetryPolicy as RetryPolicy
    from autotalk_prefect.api.settings import AutoTalkSettings as AutoTalkSettings
    from autotalk_prefect.credentials import AutoTalkCredentials as AutoTalkCredentials
