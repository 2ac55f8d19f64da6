"""Every AutoTalk task, sync and async, inside real Prefect flows against the sandbox."""

from __future__ import annotations

import inspect
import logging
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect import flow, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.filters import EventFilter, EventRelatedFilter
from prefect.logging.handlers import APILogHandler
from prefect.tasks import Task

import autotalk_prefect.tasks as tasks
from autotalk_prefect.api.client import AutoTalkClient
from autotalk_prefect.api.errors import AuthenticationError, NotFoundError, OutcomeUnknownError
from autotalk_prefect.api.models import Company, Message
from autotalk_prefect.credentials import AutoTalkCredentials, MissingCredentialsError
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle, run_sandbox

KEY = "sk-tasks-test-5e4d3c2b1a09"
PRIVATE_TEXT = "PRIVATE-customer-text-7731"

ENDPOINTS = [
    "get_self",
    "send_message",
    "list_conversations",
    "create_conversation",
    "process_messages",
    "list_messages",
    "list_dynadata_types",
    "list_dynadata_items",
    "get_dynadata_item",
    "create_dynadata_item",
    "update_dynadata_item",
    "validate_dynadata_item",
    "get_dynadata_schema",
    "get_dynadata_zod_schema",
    "execute_dynadata_function",
    "execute_dynadata_item_function",
    "list_channels",
    "list_assistants",
]


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxHandle]:
    with run_sandbox(api_key=KEY, seed=0, contacts=25) as handle:
        yield handle


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> SandboxHandle:
    sandbox_server.reset()
    sandbox_server.clear_faults()
    return sandbox_server


@pytest.fixture
def creds(sandbox: SandboxHandle) -> AutoTalkCredentials:
    return AutoTalkCredentials(api_key=KEY, base_url=sandbox.base_url, retry_max_seconds=10)


class Capture(logging.Handler):
    """Every log record, from Prefect's run loggers to httpx's debug lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: dict[int, logging.LogRecord] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records[id(record)] = record

    def texts(self) -> Iterator[str]:
        for record in list(self.records.values()):  # other threads may still be logging
            yield record.getMessage()
            yield repr(record.__dict__)
            if record.exc_info and record.exc_info[1] is not None:
                yield "".join(traceback.format_exception(*record.exc_info))

    def task_run_names(self) -> set[str]:
        records = list(self.records.values())
        return {r.task_run_name for r in records if getattr(r, "task_run_name", None)}

    def task_names(self) -> set[str]:
        records = list(self.records.values())
        return {r.task_name for r in records if getattr(r, "task_name", None)}


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    names = ["", "prefect", "autotalk_prefect", "httpx", "httpcore"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.name in ("autotalk_prefect", "httpx", "httpcore"):
            logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def assert_no_secrets(capture: Capture, *secrets: str) -> None:
    assert capture.records, "no log records were captured"
    for text in capture.texts():
        for secret in secrets:
            assert secret not in text


# ---- the shape of the task API ------------------------------------------------------------------


def test_one_sync_and_one_async_task_per_client_method() -> None:
    client_methods = {
        name
        for name, _ in inspect.getmembers(AutoTalkClient, inspect.isfunction)
        if not name.startswith(("_", "iter_")) and name not in ("close", "from_settings")
    }
    assert client_methods == set(ENDPOINTS)
    assert set(tasks.__all__) == set(ENDPOINTS) | {f"a{name}" for name in ENDPOINTS}
    for name in ENDPOINTS:
        async_task = getattr(tasks, f"a{name}")
        sync_task = getattr(tasks, name).__wrapped__
        assert getattr(tasks, name).aio is async_task
        for task_obj in (async_task, sync_task):
            assert isinstance(task_obj, Task)
            assert task_obj.retries == 0
            assert task_obj.cache_policy is NO_CACHE
            assert task_obj.name == "autotalk-" + name.replace("_", "-")
        assert async_task.isasync and not sync_task.isasync
        sync_params = inspect.signature(sync_task.fn).parameters
        assert list(inspect.signature(async_task.fn).parameters) == list(sync_params)
        assert sync_params["credentials"].default is None


# ---- every task, three ways ---------------------------------------------------------------------


def _check_results(sandbox: SandboxHandle, r: dict[str, Any]) -> None:
    """What the scenario below must have produced, whichever way the tasks were called."""
    contact = sandbox.contact_ids()[0]
    assert isinstance(r["company"], Company) and r["company"].name
    assert len(r["channels"]) >= 1 and len(r["assistants"]) >= 1
    assert {"clients", "orders", "tickets"} <= {t.name for t in r["types"]}
    assert len(r["clients"]) == 25
    assert [c.id for c in r["first3"]] == [c.id for c in r["clients"][:3]]
    assert r["client"].id == contact and r["client"].data["name"]
    assert r["schema"]["required"] == ["clientId", "items"]
    assert "z.object" in r["zod"]
    assert r["invalid"].valid is False
    assert "phone" in {issue.path for issue in r["invalid"].errors}
    assert r["valid"].valid is True
    assert r["order"].data["clientId"] == contact
    assert r["updated"].id == r["order"].id and r["updated"].data["status"] == "paid"
    assert r["total"].result == 7.0
    assert r["count"].result == 25
    sent: Message = r["sent"]
    assert sent.contactId == contact and sent.message == PRIVATE_TEXT and sent.status == "sent"
    assert sent.conversationId in {c.id for c in r["contact_conversations"]}
    assert all(c.contactId == contact for c in r["contact_conversations"])
    assert r["conversation"].contactId == contact
    fed = r["processed"]
    assert fed.conversationId == r["conversation"].id
    assert fed.messages[0].message == "Where is my order?"
    assert [m.id for m in r["history"]][: len(fed.messages)] == [m.id for m in fed.messages]
    assert [m["message"] for m in sandbox.sent_messages()] == [PRIVATE_TEXT]


def _expected_run_names(sandbox: SandboxHandle, r: dict[str, Any]) -> set[str]:
    contact = sandbox.contact_ids()[0]
    order = r["order"].id
    return {
        "get_self",
        f"send_message-{contact}",
        "list_conversations",
        f"create_conversation-{contact}",
        f"process_messages-{r['conversation'].id}",
        f"list_messages-{r['conversation'].id}",
        "list_dynadata_types",
        "list_dynadata_items-clients",
        f"get_dynadata_item-clients-{contact}",
        "create_dynadata_item-orders",
        f"update_dynadata_item-orders-{order}",
        "validate_dynadata_item-clients",
        "get_dynadata_schema-orders",
        "get_dynadata_zod_schema-orders",
        "execute_dynadata_function-clients-count",
        f"execute_dynadata_item_function-orders-{order}-total",
        "list_channels",
        "list_assistants",
    }


def _order(contact: str) -> dict[str, Any]:
    return {"clientId": contact, "items": [{"sku": "A-1", "quantity": 2, "unitPrice": 3.5}]}


@pytest.mark.floor
def test_every_sync_task_in_a_sync_flow(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, captured: Capture
) -> None:
    contact = sandbox.contact_ids()[0]

    @flow
    def every_task() -> dict[str, Any]:
        t, c = tasks, creds
        r: dict[str, Any] = {"company": t.get_self(credentials=c)}
        assert not inspect.iscoroutine(r["company"])  # the sync path ran
        r["channels"] = t.list_channels(credentials=c)
        r["assistants"] = t.list_assistants(credentials=c)
        r["types"] = t.list_dynadata_types(credentials=c)
        r["clients"] = t.list_dynadata_items("clients", credentials=c)
        r["first3"] = t.list_dynadata_items("clients", credentials=c, max_items=3)
        r["client"] = t.get_dynadata_item("clients", contact, credentials=c)
        r["schema"] = t.get_dynadata_schema("orders", credentials=c)
        r["zod"] = t.get_dynadata_zod_schema("orders", credentials=c)
        r["invalid"] = t.validate_dynadata_item("clients", {"name": "No Phone"}, credentials=c)
        r["valid"] = t.validate_dynadata_item(
            "clients", {"name": "Ok", "phone": "+15550109999"}, credentials=c
        )
        r["order"] = t.create_dynadata_item("orders", _order(contact), credentials=c)
        r["updated"] = t.update_dynadata_item(
            "orders", r["order"].id, {"status": "paid"}, credentials=c
        )
        r["total"] = t.execute_dynadata_item_function(
            "orders", r["order"].id, "total", credentials=c
        )
        r["count"] = t.execute_dynadata_function("clients", "count", credentials=c)
        r["sent"] = t.send_message(contact, PRIVATE_TEXT, credentials=c)
        r["contact_conversations"] = t.list_conversations(credentials=c, contactId=contact)
        channel = r["channels"][0].id
        r["conversation"] = t.create_conversation(
            credentials=c, contactId=contact, channelId=channel
        )
        r["processed"] = t.process_messages(
            r["conversation"].id, [{"role": "user", "message": "Where is my order?"}], c
        )
        r["history"] = t.list_messages(r["conversation"].id, credentials=c)
        return r

    results = every_task()
    _check_results(sandbox, results)
    assert _expected_run_names(sandbox, results) <= captured.task_run_names()
    assert {f"autotalk-{n.replace('_', '-')}" for n in ENDPOINTS} <= captured.task_names()
    assert_no_secrets(captured, KEY, PRIVATE_TEXT)


@pytest.mark.floor
@pytest.mark.parametrize("prefix", ["", "a"], ids=["dispatched", "async-tasks"])
async def test_every_task_in_an_async_flow(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, captured: Capture, prefix: str
) -> None:
    """``await name(...)`` dispatches to the async task; ``await aname(...)`` calls it."""
    contact = sandbox.contact_ids()[0]
    t = SimpleNamespace(**{name: getattr(tasks, prefix + name) for name in ENDPOINTS})

    @flow
    async def every_task() -> dict[str, Any]:
        c = creds
        pending = t.get_self(credentials=c)
        assert inspect.iscoroutine(pending)  # the async path was chosen
        r: dict[str, Any] = {"company": await pending}
        r["channels"] = await t.list_channels(credentials=c)
        r["assistants"] = await t.list_assistants(credentials=c)
        r["types"] = await t.list_dynadata_types(credentials=c)
        r["clients"] = await t.list_dynadata_items("clients", credentials=c)
        r["first3"] = await t.list_dynadata_items("clients", credentials=c, max_items=3)
        r["client"] = await t.get_dynadata_item("clients", contact, credentials=c)
        r["schema"] = await t.get_dynadata_schema("orders", credentials=c)
        r["zod"] = await t.get_dynadata_zod_schema("orders", credentials=c)
        r["invalid"] = await t.validate_dynadata_item(
            "clients", {"name": "No Phone"}, credentials=c
        )
        r["valid"] = await t.validate_dynadata_item(
            "clients", {"name": "Ok", "phone": "+15550109999"}, credentials=c
        )
        r["order"] = await t.create_dynadata_item("orders", _order(contact), credentials=c)
        r["updated"] = await t.update_dynadata_item(
            "orders", r["order"].id, {"status": "paid"}, credentials=c
        )
        r["total"] = await t.execute_dynadata_item_function(
            "orders", r["order"].id, "total", credentials=c
        )
        r["count"] = await t.execute_dynadata_function("clients", "count", credentials=c)
        r["sent"] = await t.send_message(contact, PRIVATE_TEXT, credentials=c)
        r["contact_conversations"] = await t.list_conversations(credentials=c, contactId=contact)
        r["conversation"] = await t.create_conversation(
            credentials=c, contactId=contact, channelId=r["channels"][0].id
        )
        r["processed"] = await t.process_messages(
            r["conversation"].id, [{"role": "user", "message": "Where is my order?"}], c
        )
        r["history"] = await t.list_messages(r["conversation"].id, credentials=c)
        return r

    results = await every_task()
    _check_results(sandbox, results)
    assert _expected_run_names(sandbox, results) <= captured.task_run_names()
    assert_no_secrets(captured, KEY, PRIVATE_TEXT)


def test_submit_and_map_through_the_task_objects(
    sandbox: SandboxHandle, creds: AutoTalkCredentials
) -> None:
    """The dispatching name is a plain function; the Task objects keep submit/map/with_options."""

    @flow
    def fan_out() -> tuple[Company, Company, list[list[Any]], list[Any]]:
        via_async = tasks.aget_self.submit(credentials=creds)
        via_sync = tasks.get_self.__wrapped__.submit(credentials=creds)
        mapped = tasks.alist_dynadata_items.map(
            ["clients", "orders"], credentials=unmapped(creds), max_items=2
        )
        quiet = tasks.list_channels.__wrapped__.with_options(name="channels-again")(
            credentials=creds
        )
        return via_async.result(), via_sync.result(), [f.result() for f in mapped], quiet

    company_a, company_s, pages, channels = fan_out()
    assert company_a.id == company_s.id
    assert [len(page) for page in pages] == [2, 2]
    assert channels and channels[0].id


# ---- credentials from the environment -----------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AUTOTALK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_tasks_fall_back_to_the_environment(
    sandbox: SandboxHandle, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("AUTOTALK_API_KEY", KEY)
    clean_env.setenv("AUTOTALK_BASE_URL", sandbox.base_url)

    @flow
    def from_env() -> tuple[Company, list[Any]]:
        return tasks.get_self(), tasks.list_dynadata_items("clients", max_items=5)

    company, clients = from_env()
    assert company.name and len(clients) == 5


async def test_async_tasks_fall_back_to_the_environment(
    sandbox: SandboxHandle, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("AUTOTALK_API_KEY", KEY)
    clean_env.setenv("AUTOTALK_BASE_URL", sandbox.base_url)

    @flow
    async def from_env() -> Company:
        return await tasks.get_self()

    assert (await from_env()).name


def test_no_key_anywhere_fails_with_a_clear_error(clean_env: pytest.MonkeyPatch) -> None:
    @flow
    def no_key() -> Company:
        return tasks.get_self()

    with pytest.raises(MissingCredentialsError, match="AUTOTALK_API_KEY"):
        no_key()


# ---- failures --------------------------------------------------------------------------------------


def test_a_wrong_key_fails_without_showing_either_key(
    sandbox: SandboxHandle, captured: Capture
) -> None:
    wrong = "sk-wrong-key-0f1e2d3c4b5a"
    bad = AutoTalkCredentials(api_key=wrong, base_url=sandbox.base_url)

    @flow
    def wrong_key() -> Message:
        return tasks.send_message(sandbox.contact_ids()[0], PRIVATE_TEXT, credentials=bad)

    with pytest.raises(AuthenticationError) as excinfo:
        wrong_key()
    assert excinfo.value.status_code == 401
    assert wrong not in str(excinfo.value) and wrong not in repr(excinfo.value)
    assert any(r.levelno >= logging.ERROR for r in captured.records.values())
    assert_no_secrets(captured, wrong, KEY, PRIVATE_TEXT)
    assert sandbox.sent_messages() == []


def test_an_ambiguous_send_is_not_repeated_by_task_or_client(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, captured: Capture
) -> None:
    sandbox.set_faults(FaultConfig(drop_after_processing=1.0, methods=("POST",)))

    @flow
    def send_once() -> Message:
        return tasks.send_message(sandbox.contact_ids()[0], PRIVATE_TEXT, credentials=creds)

    with pytest.raises(OutcomeUnknownError):
        send_once()
    assert len(sandbox.sent_messages()) == 1
    run_names = [
        r.task_run_name
        for r in captured.records.values()
        if getattr(r, "task_run_name", "").startswith("send_message-")
        and "Finished in state" in r.getMessage()
    ]
    assert len(run_names) == 1  # one task run, no Prefect retry
    verdicts = [
        r.getMessage() for r in captured.records.values() if "outcome unknown" in r.getMessage()
    ]
    assert verdicts and "do not repeat it blindly" in verdicts[0]  # the outcome rule's verdict
    assert_no_secrets(captured, KEY, PRIVATE_TEXT)


def test_a_refused_send_says_it_was_not_applied(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, captured: Capture
) -> None:
    @flow
    def send_to_nobody() -> Message:
        return tasks.send_message("0" * 24, PRIVATE_TEXT, credentials=creds)

    with pytest.raises(NotFoundError):
        send_to_nobody()
    verdicts = [
        r.getMessage() for r in captured.records.values() if "not applied" in r.getMessage()
    ]
    assert verdicts and "safe to try again" in verdicts[0]
    assert sandbox.sent_messages() == []
    assert_no_secrets(captured, KEY, PRIVATE_TEXT)


def test_a_missing_item_raises_not_found(creds: AutoTalkCredentials) -> None:
    @flow
    def missing() -> Any:
        return tasks.get_dynadata_item("clients", "0" * 24, credentials=creds)

    with pytest.raises(NotFoundError):
        missing()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_max_items_must_be_a_non_negative_int(creds: AutoTalkCredentials, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_items"):
        tasks.list_conversations.__wrapped__.fn(credentials=creds, max_items=bad)


async def test_max_items_zero_reads_nothing(creds: AutoTalkCredentials) -> None:
    assert tasks.list_dynadata_items.__wrapped__.fn("clients", creds, max_items=0) == []
    assert await tasks.alist_dynadata_items.fn("clients", creds, max_items=0) == []


def test_credentials_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(TypeError, match="AutoTalkCredentials"):
        tasks.get_self.__wrapped__.fn(credentials={"api_key": KEY})


# ---- what reaches the Prefect API ---------------------------------------------------------------


def _wait_for(predicate: Any, what: str, limit: float = 60.0) -> Any:
    """Poll the API until records it writes in the background arrive (not a timing assertion)."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the Prefect API never showed {what}")
        time.sleep(0.25)


def test_nothing_secret_reaches_the_prefect_api(
    sandbox: SandboxHandle, creds: AutoTalkCredentials
) -> None:
    """Flow parameters, task runs, logs and events of a run that used the block and sent text."""

    @flow
    def with_block(credentials: AutoTalkCredentials) -> Message:
        tasks.get_self(credentials=credentials)
        return tasks.send_message(sandbox.contact_ids()[0], PRIVATE_TEXT, credentials=credentials)

    state = with_block(creds, return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        runs_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        task_runs = _wait_for(
            lambda: (r := client.read_task_runs(flow_run_filter=runs_filter)) and len(r) >= 2 and r,
            "both task runs",
        )
        logs = _wait_for(
            lambda: (
                [
                    log
                    for log in client.read_logs(
                        LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
                    )
                    if log.message.startswith("Sent message")
                ]
                and client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            ),
            "the send_message log line",
        )
        related = EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"])
        events = _wait_for(
            lambda: [
                event
                for event in client.read_events(EventFilter(related=related), limit=50).events
                if event.event == "prefect.task-run.Completed"
            ],
            "the task-run Completed events",
        )
    assert flow_run.parameters["credentials"]["api_key"] == "**********"
    everything = [flow_run.model_dump_json()]
    everything += [record.model_dump_json() for record in [*task_runs, *logs, *events]]
    for text in everything:
        assert KEY not in text and PRIVATE_TEXT not in text
