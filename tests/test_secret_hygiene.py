"""The API key never leaves the SecretStr: not in logs (httpx/httpcore DEBUG included), artifacts,
events, flow/task runs, exception texts, block documents, nor anywhere in Prefect's database.

Every prebuilt flow runs with a recognisable key, and every error path of the client happens.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterStartTime,
    LogFilter,
    LogFilterTimestamp,
)
from prefect.events.filters import EventFilter, EventOccurredFilter
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL
from pydantic import SecretStr

from autotalk_prefect.api.client import AutoTalkClient
from autotalk_prefect.api.errors import AutoTalkError
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.onboarding.flow import onboard_contact
from autotalk_prefect.flows.outreach.engine import Audience
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.flows.replies.flow import handle_reply
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle, run_sandbox

KEY = "sk-HYGIENE-4b9e1f7a3c5d"
WRONG_KEY = "sk-WRONG-0a8d6c4e2f"


class Capture(logging.Handler):
    """Every record of every logger, formatted with its exception if any."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.getMessage()} {record.__dict__!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.texts.append(text)


@pytest.fixture
def everything_logged() -> Iterator[Capture]:
    handler = Capture()
    names = ["", "prefect", "autotalk_prefect", "httpx", "httpcore", "uvicorn"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _error_paths(sandbox: SandboxHandle, creds: AutoTalkCredentials) -> list[str]:
    """Make every client failure happen; return each exception's text and traceback."""
    texts: list[str] = []
    fast = RetryPolicy(attempts=2, max_seconds=2, retry_after_cap=0.01, sleep=lambda _: None)

    def record(call: Any) -> None:
        try:
            call()
        except AutoTalkError as exc:
            texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])
            texts.append(repr(exc.__dict__))
        else:
            pytest.fail(f"{call} did not fail")

    contact = sandbox.contact_ids()[0]
    with AutoTalkClient(WRONG_KEY, sandbox.base_url) as wrong:
        record(wrong.get_self)  # 401
    with creds.get_client(retry_policy=fast) as client:
        record(lambda: client.get_dynadata_item("clients", "f" * 24))  # 404
        record(lambda: client.create_dynadata_item("clients", {"name": "no phone"}))  # 422
        record(lambda: client.execute_dynadata_function("clients", "nope"))  # 404 function
        sandbox.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=0.01))
        record(client.get_self)  # 429 exhausted
        sandbox.set_faults(FaultConfig(error_rate=1.0, error_statuses=(500,)))
        record(lambda: client.send_message(contact, "hi"))  # 500 on a send: outcome unknown
        sandbox.set_faults(FaultConfig(drop_after_processing=1.0))
        record(lambda: client.send_message(contact, "hi"))  # dropped: outcome unknown
        record(client.get_self)  # dropped on a GET: retried, then no response
    sandbox.clear_faults()
    return texts


def _run_every_flow(sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger: Path) -> None:
    sandbox.set_faults(FaultConfig(rate_429=0.1, drop_after_processing=0.05, seed=2))
    outreach_campaign(
        campaign_id="hygiene",
        message_template="Hello {{ name }}",
        ledger_storage=str(ledger),
        credentials=creds,
    )
    sandbox.clear_faults()
    outreach_campaign(  # every contact fails to render: the failure path of the flow
        campaign_id="hygiene-typo",
        message_template="Hello {{ nickname }}",
        audience=Audience(contact_ids=sandbox.contact_ids()[:3]),
        ledger_storage=str(ledger),
        credentials=creds,
    )
    record = {"name": "Hygiene Test", "phone": "+15550001111"}
    onboard_contact("clients", record, "Welcome {{ name }}", credentials=creds)
    onboard_contact(  # a failed run: the record is invalid
        "clients", {"name": "x"}, "Welcome", credentials=creds, return_state=True
    )
    event = sandbox.simulate_reply(sandbox.contact_ids()[1], "STOP")
    payload = {
        "id": "evt-hygiene",
        "event": "message.received",
        "client": {"_id": sandbox.contact_ids()[1]},
        "message": {
            "_id": event.get("_id"),
            "conversationId": event.get("conversationId"),
            "text": "STOP",
        },
    }
    handle_reply(payload, credentials=creds)


def _all_pages(read: Callable[..., list[Any]], **filters: Any) -> list[Any]:
    """Every object ``read`` returns for ``filters``, 200 at a time (the API's largest page)."""
    found: list[Any] = []
    while True:
        page = read(**filters, limit=200, offset=len(found))
        found += page
        if len(page) < 200:
            return found


def _everything_prefect_holds(since: Any) -> list[str]:
    """What the API holds from since the test began (other test processes share the API: their
    objects are read too, but the newest N would not be enough to be sure of ours)."""
    APILogHandler().flush()
    texts: list[str] = []
    with get_client(sync_client=True) as client:
        runs = _all_pages(
            client.read_flow_runs,
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
        )
        texts += [r.model_dump_json() for r in runs]
        ran = FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in runs]))
        texts += [
            r.model_dump_json() for r in _all_pages(client.read_task_runs, flow_run_filter=ran)
        ]
        logs = LogFilter(timestamp=LogFilterTimestamp(after_=since))
        texts += [r.model_dump_json() for r in _all_pages(client.read_logs, log_filter=logs)]
        artifacts = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in runs]))
        texts += [
            a.model_dump_json()
            for a in _all_pages(client.read_artifacts, artifact_filter=artifacts)
        ]
        # what the UI and API show (secrets obfuscated); the raw store is scanned below
        texts += [d.model_dump_json() for d in client.read_block_documents(include_secrets=False)]
        page = client.read_events(EventFilter(occurred=EventOccurredFilter(since=since)), limit=50)
        for _ in range(40):  # every event since the test began, page by page
            texts += [e.model_dump_json() for e in page.events]
            if not page.next_page:
                break
            page = client.read_events_page(str(page.next_page))
    return texts


def _database_bytes() -> bytes:
    url = str(PREFECT_API_DATABASE_CONNECTION_URL.value() or "")
    path = Path(urlsplit(url.replace("sqlite+aiosqlite:///", "file:///")).path)
    chunks = [p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file()]
    assert chunks, f"Prefect's database not found at {path}"
    return b"".join(chunks)


def test_the_key_is_nowhere(everything_logged: Capture, tmp_path: Path) -> None:
    from prefect.types._datetime import now

    since = now("UTC")
    with run_sandbox(api_key=KEY, contacts=30, seed=4) as sandbox:
        creds = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url)
        creds.save("hygiene", overwrite=True)
        loaded = AutoTalkCredentials.load("hygiene")
        exception_texts = _error_paths(sandbox, loaded)
        _run_every_flow(sandbox, loaded, tmp_path)
        admin_texts = [str(sandbox.stats()), repr(sandbox)]

    shown = [repr(loaded), str(loaded), str(loaded.model_dump()), loaded.model_dump_json()]
    stored = _everything_prefect_holds(since)
    assert everything_logged.texts and exception_texts and stored  # the scan saw real data
    assert any("x-api-key" in t.lower() or "send_message" in t for t in everything_logged.texts)
    places = {
        "log records": everything_logged.texts,
        "exceptions": exception_texts,
        "block displays": shown,
        "Prefect API objects": stored,
        "sandbox admin views": admin_texts,
    }
    for place, texts in places.items():
        for secret in (KEY, WRONG_KEY):
            hits = [t[:300] for t in texts if secret in t]
            assert not hits, f"{secret} found in {place}: {hits[:2]}"
    database = _database_bytes()
    assert KEY.encode() not in database and WRONG_KEY.encode() not in database
