"""Where chunk tasks run: threads in the flow's process, or Dask processes/machines.

Prefect fixes a flow's task runner when the flow is decorated, so a flow that lets its caller
(or a deployment's parameters) choose one submits its chunk tasks through
:func:`chunk_submitter`: ``"threads"`` keeps the flow's own runner (``task.submit``), ``"dask"``
opens a ``prefect_dask.DaskTaskRunner`` for the duration of the block. Dask needs the optional
extra: ``pip install 'autotalk-prefect[dask]'``.

What crosses to a Dask worker is pickled: the task, its parameters (the credentials block goes
by value, its key still a ``SecretStr``) and Prefect's settings context, which carries
``PREFECT_API_URL``, so task runs, logs and global-rate-limit slots reach the same Prefect
server as the flow. Workers build their own AutoTalk clients; nothing with a socket is pickled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import Task
from prefect.utilities.annotations import quote
from prefect.utilities.callables import get_call_parameters

__all__ = [
    "DaskNotInstalledError",
    "Submit",
    "TaskRunnerChoice",
    "chunk_submitter",
    "task_runner_for",
]

TaskRunnerChoice = Literal["threads", "dask"]
#: ``submit(task, *args, **kwargs)`` -> a future, like ``task.submit(*args, **kwargs)``
Submit = Callable[..., PrefectFuture[Any]]

logger = logging.getLogger(__name__)


class DaskNotInstalledError(ImportError):
    """``task_runner="dask"`` was asked for without the ``dask`` extra installed."""


def _dask_task_runner() -> type[TaskRunner[Any]]:
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError as exc:
        raise DaskNotInstalledError(
            "task_runner='dask' needs prefect-dask: pip install 'autotalk-prefect[dask]'"
        ) from exc
    return DaskTaskRunner


def _check(choice: str, dask_address: str | None, n_workers: int) -> None:
    if choice not in get_args(TaskRunnerChoice):
        raise ValueError(f"task_runner must be one of {get_args(TaskRunnerChoice)}, got {choice!r}")
    if dask_address is not None and choice != "dask":
        raise ValueError("dask_address is only used with task_runner='dask'")
    if dask_address is not None and not dask_address.strip():
        raise ValueError("dask_address must be a scheduler address like 'tcp://10.0.0.5:8786'")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or not 1 <= n_workers <= 64:
        raise ValueError(f"n_workers must be an integer from 1 to 64, got {n_workers!r}")


def task_runner_for(
    choice: TaskRunnerChoice, dask_address: str | None = None, n_workers: int = 2
) -> TaskRunner[Any]:
    """A fresh task runner for ``choice``.

    ``"threads"``: a ``ThreadPoolTaskRunner`` with ``n_workers`` threads. ``"dask"``: a
    ``DaskTaskRunner`` on the existing cluster at ``dask_address``, or else on a new
    ``LocalCluster`` of ``n_workers`` processes (one thread each, no dashboard) that lives as long
    as the runner.
    """
    _check(choice, dask_address, n_workers)
    if choice == "threads":
        return ThreadPoolTaskRunner(max_workers=n_workers)
    runner = _dask_task_runner()
    if dask_address:
        return runner(address=dask_address)  # type: ignore[call-arg]
    return runner(  # type: ignore[call-arg]
        cluster_kwargs={
            "n_workers": n_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def _warn_if_ephemeral(choice: str) -> None:
    from prefect.settings import PREFECT_API_URL

    if choice == "dask" and not PREFECT_API_URL.value():
        logger.warning(
            "task_runner='dask' without PREFECT_API_URL: every Dask worker starts its own "
            "temporary Prefect server (slow; it shares runs and rate limits only through this "
            "machine's Prefect database). Point PREFECT_API_URL at a Prefect server."
        )


@contextmanager
def chunk_submitter(
    choice: TaskRunnerChoice, dask_address: str | None = None, n_workers: int = 2
) -> Iterator[Submit]:
    """Yield ``submit(task, *args, **kwargs)`` for the chosen runner (call inside a flow run).

    ``"threads"`` is exactly ``task.submit`` on the flow's own task runner (nothing is opened).
    ``"dask"`` opens a Dask task runner; leaving the block waits for nothing, so collect every
    future inside it (the cluster closes with the block).
    """
    _check(choice, dask_address, n_workers)
    if choice == "threads":

        def submit_here(task: Task[Any, Any], *args: Any, **kwargs: Any) -> PrefectFuture[Any]:
            future: PrefectFuture[Any] = task.submit(*args, **kwargs)
            return future

        yield submit_here
        return

    _warn_if_ephemeral(choice)
    with task_runner_for(choice, dask_address, n_workers) as runner:

        def submit_there(task: Task[Any, Any], *args: Any, **kwargs: Any) -> PrefectFuture[Any]:
            parameters = get_call_parameters(task.fn, args, kwargs)
            # DaskTaskRunner passes a quote() through to the task as is: unwrap it here
            parameters = {
                k: v.unquote() if isinstance(v, quote) else v for k, v in parameters.items()
            }
            future: PrefectFuture[Any] = runner.submit(task, parameters)
            return future

        yield submit_there
