"""The one place that imports Prefect internals, so a Prefect upgrade breaks one file, not many.

``async_dispatch`` lets one public name (``send_message``) run the sync task in a sync context
and return the async task's coroutine in an async one, the way Prefect's own integrations
(prefect-aws) do it. Prefect keeps it under a private path
(``prefect._internal.compatibility.async_dispatch``); if that path ever disappears, the
fallback below implements the same rule: an explicit ``_sync=`` keyword wins, otherwise the
sync path runs unless the current flow or task run is async (or, outside any run, an event
loop is running).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def is_in_async_context() -> bool:
    """Whether the caller expects a coroutine: an async flow/task run, or a running loop."""
    from prefect.context import get_run_context
    from prefect.exceptions import MissingContextError

    try:
        run_context = get_run_context()
    except MissingContextError:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True
    owner = getattr(run_context, "task", None) or getattr(run_context, "flow", None)
    return bool(getattr(owner, "isasync", True))


def _is_async_callable(obj: Any) -> bool:
    fn = getattr(obj, "fn", obj)  # a Prefect Task keeps the decorated function in .fn
    return inspect.iscoroutinefunction(fn)


def fallback_async_dispatch(
    async_impl: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Same contract as Prefect's ``async_dispatch``; used only when Prefect's is gone."""
    if not _is_async_callable(async_impl):
        raise TypeError("async_dispatch needs an async function or an async Prefect task")

    def decorator(sync_fn: Callable[P, R]) -> Callable[P, Any]:
        @wraps(sync_fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            forced = kwargs.pop("_sync", None)
            run_sync = bool(forced) if forced is not None else not is_in_async_context()
            return sync_fn(*args, **kwargs) if run_sync else async_impl(*args, **kwargs)

        wrapper.aio = async_impl  # type: ignore[attr-defined]
        return wrapper

    return decorator


if TYPE_CHECKING:  # one precise signature for type checkers, whichever runs
    async_dispatch = fallback_async_dispatch
    USING_PREFECT_ASYNC_DISPATCH: bool
else:
    try:
        from prefect._internal.compatibility.async_dispatch import async_dispatch
    except ImportError:  # pragma: no cover - depends on the installed Prefect
        async_dispatch = fallback_async_dispatch
        USING_PREFECT_ASYNC_DISPATCH = False
    else:
        USING_PREFECT_ASYNC_DISPATCH = True

__all__ = [
    "USING_PREFECT_ASYNC_DISPATCH",
    "async_dispatch",
    "fallback_async_dispatch",
    "is_in_async_context",
]
