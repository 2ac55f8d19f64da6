"""Outreach fanned out over a Dask LocalCluster of 2 processes: every contact exactly once."""

from __future__ import annotations

import asyncio
import collections
import sys
import uuid
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from pydantic import SecretStr

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.flows.task_runners import (
    DaskNotInstalledError,
    chunk_submitter,
    task_runner_for,
)
from autotalk_prefect.ratelimit import (
    describe_rate_limit,
    ensure_rate_limit,
    remove_rate_limit,
)
from autotalk_prefect.sandbox import run_sandbox

pytest.importorskip("prefect_dask")

KEY = "sk-scale-dask-7c21"


def test_1200_contacts_on_two_dask_processes_each_exactly_once(tmp_path: Path) -> None:
    with run_sandbox(api_key=KEY, seed=21, contacts=1200) as sandbox:
        creds = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url)
        state = outreach_campaign(
            campaign_id="dask-1200",
            message_template="Hi {{ name }}, news from the cluster.",
            chunk_size=200,
            parallel_chunks=2,
            max_concurrency=16,
            ledger_storage=str(tmp_path),
            credentials=creds,
            task_runner="dask",
            return_state=True,
        )
        summary = state.result()
        counts = collections.Counter(str(m["contactId"]) for m in sandbox.sent_messages())
        contacts = set(sandbox.contact_ids())
    assert len(contacts) == 1200
    assert set(counts) == contacts and set(counts.values()) == {1}
    assert (summary.total, summary.sent, summary.failed, summary.unknown) == (1200, 1200, 0, 0)
    # The chunk task runs ran in the Dask worker processes and still reported to this Prefect
    # API under this flow run (the settings context, with PREFECT_API_URL, reached them).
    runs = asyncio.run(_task_runs(state.state_details.flow_run_id))
    assert sorted(r.name for r in runs) == [f"send-chunk-{n}-200-contacts" for n in range(1, 7)]
    assert all(r.state is not None and r.state.is_completed() for r in runs)


def _prepare_worker() -> None:
    """In a Dask worker: import what a chunk runs, and dump every thread's stack if stuck."""
    import faulthandler
    import importlib

    for module in (
        "prefect.task_engine",
        "prefect.concurrency.asyncio",
        "autotalk_prefect.flows.outreach.flow",
    ):
        importlib.import_module(module)
    faulthandler.dump_traceback_later(150, exit=False)


def test_an_existing_cluster_by_address_takes_global_rate_limit_slots(tmp_path: Path) -> None:
    """Sends in Dask workers of an existing cluster take their slots from the Prefect GCL."""
    from distributed import Client, LocalCluster

    name = f"autotalk-dask-{uuid.uuid4().hex[:8]}"
    # barely decays: every slot the workers take is still counted when we look
    ensure_rate_limit(name, requests_per_second=0.01, burst=1000)
    try:
        with (
            run_sandbox(api_key=KEY, seed=22, contacts=40) as sandbox,
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as dask_client,
        ):
            # Once in CI one worker never finished its first chunk (the other did; the flow waited
            # until pytest's timeout, and no worker stack was shown). Workers now import the
            # chunk's code before the run, and dump their stacks to stderr if still busy at 150 s.
            dask_client.run(_prepare_worker)
            summary = outreach_campaign(
                campaign_id="dask-gcl",
                message_template="Hi {{ name }}.",
                chunk_size=20,
                parallel_chunks=2,
                ledger_storage=str(tmp_path),
                credentials=AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url),
                task_runner="dask",
                dask_address=cluster.scheduler_address,
                global_rate_limit_name=name,
            )
            sent = len(sandbox.sent_messages())
        info = describe_rate_limit(name)
    finally:
        remove_rate_limit(name)
    assert (summary.sent, sent) == (40, 40)
    assert info is not None and info.active_slots >= 38, info


async def _task_runs(flow_run_id: UUID | None) -> list[TaskRun]:
    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def test_task_runner_choice_is_checked_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="dask_address is only used with task_runner='dask'"):
        task_runner_for("threads", dask_address="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="task_runner must be one of"):
        task_runner_for("ray")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_workers must be an integer from 1 to 64"):
        task_runner_for("dask", n_workers=0)
    with pytest.raises(ValueError, match="scheduler address"):
        task_runner_for("dask", dask_address=" ")


def test_runners_built_for_each_choice() -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask.task_runners import DaskTaskRunner

    threads = task_runner_for("threads", n_workers=3)
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    local = task_runner_for("dask", n_workers=3)
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"] is True
    remote = task_runner_for("dask", dask_address="tcp://127.0.0.1:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"


def test_dask_without_the_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prefect_dask.task_runners", None)
    with pytest.raises(DaskNotInstalledError, match=r"autotalk-prefect\[dask\]"):
        task_runner_for("dask")
    with pytest.raises(DaskNotInstalledError), chunk_submitter("dask"):
        pass
