"""Everything that differs between the Prefect (and typer) releases we support, in one place.

The package supports Prefect from the floor in ``pyproject.toml`` to the latest 3.x; where an
API moved or appeared in between, the difference is bridged here and nowhere else, so a Prefect
upgrade (or the floor test, ``make test-floor``) breaks one file, not many. Importing this module
is cheap: Prefect is imported only when one of its names is first used.

- ``async_dispatch`` lets one public name (``send_message``) run the sync task in a sync context
  and return the async task's coroutine in an async one, the way Prefect's own integrations
  (prefect-aws) do it. Prefect keeps it under a private path
  (``prefect._internal.compatibility.async_dispatch``); if that path ever disappears, the
  fallback below implements the same rule: an explicit ``_sync=`` keyword wins, otherwise the
  sync path runs unless the current flow or task run is async (or, outside any run, an event
  loop is running).
- ``refresh_settings_context`` re-reads ``PREFECT_*`` from the environment after Prefect was
  imported (``refresh_global_settings_context`` from Prefect 3.6 on; the same two lines before).
- ``runner_add_flow`` / ``runner_stop``: a ``Runner``'s coroutines, ``aadd_flow``/``astop`` from
  Prefect 3.6 on (where ``add_flow``/``stop`` became sync), ``add_flow``/``stop`` before.
- ``event_value``: a deployment trigger's parameter that passes an event field with its type (the
  payload as a dict). Prefect servers from 3.6 on read a bare ``"{{ event.payload }}"`` that way;
  older ones render it to its Python text. The explicit json-of-jinja form reads the same on all.
- ``block_reference``: a saved block as a deployment parameter, stored as a reference that the
  flow run loads. Prefect 3.8+ stores a block that way by itself; older releases store a copy
  with its secrets masked, so the run would get ``**********`` for the API key.
- ``TyperException``: the base of typer's own usage errors. Typer releases without click have
  ``typer.exceptions.TyperException``; the ones older Prefect releases pin are built on click,
  whose usage errors derive from ``click.ClickException``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

if TYPE_CHECKING:
    from uuid import UUID

    import typer.exceptions
    from prefect.blocks.core import Block
    from prefect.runner import Runner

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


def async_dispatch(
    async_impl: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Prefect's ``async_dispatch`` where the installed Prefect has it, else the fallback."""
    try:
        from prefect._internal.compatibility.async_dispatch import (
            async_dispatch as prefect_async_dispatch,
        )
    except ImportError:  # pragma: no cover - depends on the installed Prefect
        return fallback_async_dispatch(async_impl)
    decorator: Callable[[Callable[P, R]], Callable[P, Any]] = prefect_async_dispatch(async_impl)
    return decorator


def refresh_settings_context() -> None:
    """Make Prefect's global settings reflect ``os.environ`` as it is now."""
    import prefect.context

    refresh = getattr(prefect.context, "refresh_global_settings_context", None)
    if refresh is not None:
        refresh()
    else:  # Prefect < 3.6: what refresh_global_settings_context does
        prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.root_settings_context()


async def runner_add_flow(runner: Runner, flow: Any, **options: Any) -> UUID:
    """``runner.aadd_flow(flow, **options)``: register ``flow`` as a deployment the runner serves."""
    # Prefect < 3.6: add_flow is the coroutine
    add = cast("Callable[..., Awaitable[UUID]]", getattr(runner, "aadd_flow", runner.add_flow))
    return await add(flow, **options)


async def runner_stop(runner: Runner) -> None:
    """``runner.astop()``: stop serving and cancel what the runner started."""
    # Prefect < 3.6: stop is the coroutine
    stop = cast("Callable[[], Awaitable[None]]", getattr(runner, "astop", runner.stop))
    await stop()


def event_value(expression: str) -> dict[str, Any]:
    """The trigger parameter for ``{{ expression }}`` with its JSON type, on any Prefect server.

    ``event_value("event.payload")`` is what Prefect 3.6+ makes of ``"{{ event.payload }}"``.
    """
    template = "{{ " + expression + " | tojson }}"
    return {"__prefect_kind": "json", "value": {"__prefect_kind": "jinja", "template": template}}


def block_reference(block: Block) -> dict[str, Any]:
    """``block`` as a deployment parameter: a reference, resolved (secrets and all) at run time."""
    document_id = getattr(block, "_block_document_id", None)
    if document_id is None:
        raise ValueError(
            f"{type(block).__name__} must be saved (block.save(name)) or loaded by name before "
            "it can be a deployment parameter"
        )
    return {"$ref": {"block_document_id": str(document_id)}}


if TYPE_CHECKING:
    TyperException = typer.exceptions.TyperException
else:
    try:
        from typer.exceptions import TyperException
    except ImportError:  # typer built on click (the releases Prefect < 3.5 allows)
        from click import ClickException as TyperException

__all__ = [
    "TyperException",
    "async_dispatch",
    "block_reference",
    "event_value",
    "fallback_async_dispatch",
    "is_in_async_context",
    "refresh_settings_context",
    "runner_add_flow",
    "runner_stop",
]
