"""What every AutoTalk task shares: its options, its client, its logger, list truncation.

Tasks stay thin: resolve credentials, open a client for the call, call one method, log ids and
counts (never the key, never message text or item contents), return the client's models.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from itertools import islice
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.tasks import Task

from autotalk_prefect.api.errors import AutoTalkError
from autotalk_prefect.api.outcomes import from_exception
from autotalk_prefect.credentials import AutoTalkCredentials, resolve_credentials

if TYPE_CHECKING:
    from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

_fallback_logger = logging.getLogger("autotalk_prefect.tasks")


def autotalk_task(
    name: str, task_run_name: str | Callable[[], str]
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task`` with the options every AutoTalk task shares.

    ``retries=0``: HTTP retries live in the client (retries.py), which knows which calls are
    safe to repeat; Prefect retries on top would multiply attempts and could re-send a message.
    ``NO_CACHE``: reads must return live data and writes must never be skipped; the inputs also
    hold the credentials block, which has no place in a cache key.
    """
    return task(
        name=f"autotalk-{name}",
        task_run_name=task_run_name,
        retries=0,
        cache_policy=NO_CACHE,
    )


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The task run's logger, or a module logger when called through ``.fn()``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return _fallback_logger


@contextmanager
def sync_client(credentials: AutoTalkCredentials | None) -> Iterator[AutoTalkClient]:
    """A client for one task call, closed when the call ends."""
    with resolve_credentials(credentials).get_client() as client:
        yield client


@asynccontextmanager
async def async_client(
    credentials: AutoTalkCredentials | None,
) -> AsyncIterator[AsyncAutoTalkClient]:
    """The async twin of :func:`sync_client`."""
    async with resolve_credentials(credentials).get_async_client() as client:
        yield client


#: what the task's log says for each verdict of the outcome rule
_VERDICTS = {
    "failed": "not applied (AutoTalk refused it before doing anything): safe to try again",
    "unknown": "outcome unknown (it may have been applied): do not repeat it blindly; look it "
    "up in AutoTalk first",
    "sent": "applied (AutoTalk accepted it) although the call raised",
}


@contextmanager
def outcome_reported(what: str, *, create: bool = False) -> Iterator[None]:
    """Around a non-idempotent call: if it raises, one log line with the outcome rule's
    verdict (:mod:`autotalk_prefect.api.outcomes`), so whoever reads the failed task knows
    whether the call may be repeated. The exception propagates unchanged."""
    try:
        yield
    except AutoTalkError as exc:
        outcome = from_exception(exc, create=create)
        run_logger().warning("%s: %s (%s)", what, _VERDICTS[outcome.state], type(exc).__name__)
        raise


def check_max_items(max_items: int | None) -> int | None:
    """``None`` (everything) or a non-negative int; anything else is refused clearly."""
    if max_items is None:
        return None
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0:
        raise ValueError(f"max_items must be None or a non-negative int, got {max_items!r}")
    return max_items


def take(items: Iterable[T], max_items: int | None) -> list[T]:
    """The first ``max_items`` of a lazy listing (all when ``None``); stops paging early."""
    limit = check_max_items(max_items)
    iterator = iter(items)
    try:
        return list(iterator if limit is None else islice(iterator, limit))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


async def atake(items: AsyncIterator[T], max_items: int | None) -> list[T]:
    """The async twin of :func:`take`."""
    limit = check_max_items(max_items)
    result: list[T] = []
    if limit == 0:
        return result
    async with aclosing(items) as iterator:  # type: ignore[type-var]
        async for item in iterator:
            result.append(item)
            if limit is not None and len(result) >= limit:
                break
    return result


def plural(count: int, noun: str) -> str:
    """``"1 item"`` / ``"3 items"`` for log lines."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
