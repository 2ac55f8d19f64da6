"""_compat.async_dispatch: Prefect's and our fallback choose the same path in every context."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from prefect import flow, task

from autotalk_prefect._compat import async_dispatch, fallback_async_dispatch

pytestmark = pytest.mark.floor  # the compat module's dispatch, on each Prefect we support

IMPLEMENTATIONS = [async_dispatch, fallback_async_dispatch]
IDS = ["installed", "fallback"]


def _pair(dispatch: Callable[..., Any]) -> Callable[..., Any]:
    async def ahow(x: int) -> str:
        return f"async {x}"

    @dispatch(ahow)
    def how(x: int) -> str:
        return f"sync {x}"

    return how


@pytest.mark.parametrize("dispatch", IMPLEMENTATIONS, ids=IDS)
def test_sync_flow_and_plain_sync_code_take_the_sync_path(dispatch: Callable[..., Any]) -> None:
    how = _pair(dispatch)

    @flow
    def sync_flow() -> str:
        return how(1)

    assert sync_flow() == "sync 1"
    assert how(2) == "sync 2"


@pytest.mark.parametrize("dispatch", IMPLEMENTATIONS, ids=IDS)
async def test_async_flow_gets_a_coroutine_unless_sync_is_forced(
    dispatch: Callable[..., Any],
) -> None:
    how = _pair(dispatch)

    @flow
    async def async_flow() -> tuple[str, str]:
        pending = how(1)
        assert inspect.iscoroutine(pending)
        return await pending, how(2, _sync=True)

    assert await async_flow() == ("async 1", "sync 2")
    assert await how(3) == "async 3"  # a running loop outside any run counts as async


@pytest.mark.parametrize("dispatch", IMPLEMENTATIONS, ids=IDS)
def test_a_sync_task_inside_an_async_flow_takes_the_sync_path(
    dispatch: Callable[..., Any],
) -> None:
    how = _pair(dispatch)

    @task
    def inner() -> str:
        return how(1)

    @flow
    async def outer() -> str:
        return inner()

    assert asyncio.run(outer()) == "sync 1"


@pytest.mark.parametrize("dispatch", IMPLEMENTATIONS, ids=IDS)
def test_aio_names_the_async_implementation_and_sync_impls_are_refused(
    dispatch: Callable[..., Any],
) -> None:
    how = _pair(dispatch)
    assert inspect.iscoroutinefunction(how.aio)
    with pytest.raises(TypeError):
        dispatch(lambda: None)
