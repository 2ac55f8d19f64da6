"""autotalk-prefect: Prefect 3 integration for the AutoTalk customer-messaging API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotalk_prefect._lazy import lazy_exports
from autotalk_prefect._version import __version__ as __version__

# Public names, imported on first use so that `import autotalk_prefect` stays cheap.
_LAZY_EXPORTS: dict[str, str] = {
    "AutoTalkClient": "autotalk_prefect.api.client",
    "AsyncAutoTalkClient": "autotalk_prefect.api.client",
    "AutoTalkCredentials": "autotalk_prefect.credentials",
    "AutoTalkSettings": "autotalk_prefect.api.settings",
    "RetryPolicy": "autotalk_prefect.api.retries",
}
#: the exception tree: every name of ``api/errors.py``'s ``__all__`` (listed there, once)
_ERRORS_MODULE = "autotalk_prefect.api.errors"

__getattr__, __dir__ = lazy_exports(
    __name__, _LAZY_EXPORTS, every_name_of=[_ERRORS_MODULE], own=["__version__"]
)


if TYPE_CHECKING:  # explicit re-exports (``X as X``) for type checkers
    from autotalk_prefect.api.client import AsyncAutoTalkClient as AsyncAutoTalkClient
    from autotalk_prefect.api.client import AutoTalkClient as AutoTalkClient
    from autotalk_prefect.api.errors import *  # noqa: F403  (the tree, as its __all__ lists it)
    from autotalk_prefect.api.retries import RetryPolicy as RetryPolicy
    from autotalk_prefect.api.settings import AutoTalkSettings as AutoTalkSettings
    from autotalk_prefect.credentials import AutoTalkCredentials as AutoTalkCredentials
