"""Exactly-once that holds: any accepted answer shape, and overlapping runs of one campaign
(threads in one process, processes on one machine with SQLite, processes sharing PostgreSQL).

Real sandbox over loopback, real Prefect API, real flow. The sandbox cannot yet be told to
answer ``send_message`` in other shapes, so a tiny ASGI wrapper rewrites its answers.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.outreach.engine import Audience, OutreachSummary
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.ledger.store import ClaimLedger, LedgerState
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle
from autotalk_prefect.sandbox.app import create_app
from autotalk_prefect.sandbox.server import SandboxHandle as Handle
from autotalk_prefect.serving import serve_in_thread

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-exactly-once-7a1d"
TEMPLATE = "Hello {{ name }}, once."
PG_DSN = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")

Rewrite = Callable[[int, bytes], tuple[int, bytes]]

SHAPES: dict[str, Rewrite] = {
    # the message with only its id: every optional (and our "required") field gone
    "bare": lambda status, body: (status, json.dumps({"_id": json.loads(body)["_id"]}).encode()),
    "envelope": lambda status, body: (status, json.dumps({"data": json.loads(body)}).encode()),
    "202-empty": lambda status, body: (202, b""),
    "204": lambda status, body: (204, b""),
}


class RewriteSendAnswers:
    """ASGI middleware: pass everything through, but answer a successful send_message with
    ``rewrite(status, body)`` (the request itself reaches the sandbox and is applied)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rewrite: Rewrite | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        rewrite = self.rewrite
        if (
            scope["type"] != "http"
            or rewrite is None
            or not scope["path"].endswith("/send_message")
        ):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, body = start["status"], b"".join(chunks)
            if 200 <= status < 300:
                status, body = rewrite(status, body)
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            if body:
                headers.append((b"content-length", str(len(body)).encode()))
            else:
                headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxHandle, RewriteSendAnswers]]:
    app = create_app(api_key=KEY, seed=21, contacts=120)
    wrapper = RewriteSendAnswers(app)
    try:
        with serve_in_thread(wrapper, name="sandbox-rewriter") as port:
            yield Handle(app, port), wrapper
    finally:
        app.runtime.close()


@pytest.fixture
def sandbox(served: tuple[SandboxHandle, RewriteSendAnswers]) -> SandboxHandle:
    handle, wrapper = served
    handle.reset()
    handle.clear_faults()
    wrapper.rewrite = None
    return handle


@pytest.fixture
def creds(sandbox: SandboxHandle) -> AutoTalkCredentials:
    return AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url)


def _counts(sandbox: SandboxHandle) -> collections.Counter[str]:
    return collections.Counter(str(m["contactId"]) for m in sandbox.sent_messages())


def _run(creds: AutoTalkCredentials, ledger: str, **params: Any) -> OutreachSummary:
    params.setdefault("campaign_id", "once")
    params.setdefault("message_template", TEMPLATE)
    return outreach_campaign(ledger_storage=ledger, credentials=creds, **params)


# ---- any accepted answer ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_any_accepted_answer_is_sent_and_a_rerun_sends_nothing(
    shape: str,
    served: tuple[SandboxHandle, RewriteSendAnswers],
    sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    tmp_path: Path,
) -> None:
    served[1].rewrite = SHAPES[shape]
    audience = set(sandbox.contact_ids())
    first = _run(creds, str(tmp_path), chunk_size=40)
    assert (first.total, first.sent, first.failed, first.unknown) == (120, 120, 0, 0)
    second = _run(creds, str(tmp_path), chunk_size=40)
    assert (second.sent, second.skipped_already_sent, second.failed) == (0, 120, 0)
    counts = _counts(sandbox)
    assert set(counts) == audience and set(counts.values()) == {1}
    rows = {row.key: row for row in ClaimLedger("once", str(tmp_path)).rows()}
    assert {row.state for row in rows.values()} == {LedgerState.SENT}
    by_contact = {str(m["contactId"]): m["_id"] for m in sandbox.sent_messages()}
    if shape in ("bare", "envelope"):  # the id was in the answer: it is recorded
        assert all(rows[c].message_id == by_contact[c] for c in audience)
    else:
        assert all(rows[c].message_id is None for c in audience)


# ---- overlapping runs ------------------------------------------------------------------------


def _check_overlap(sandbox: SandboxHandle, summaries: list[OutreachSummary], n: int) -> None:
    counts = _counts(sandbox)
    assert set(counts) == set(sandbox.contact_ids()), "somebody was never messaged"
    assert set(counts.values()) == {1}, "somebody was messaged twice"
    assert sum(s.sent for s in summaries) == n
    for s in summaries:  # each run accounts for everyone: sent, or skipped and why
        assert (s.failed, s.unknown) == (0, 0)
        assert s.sent + s.skipped_already_sent + s.skipped_claimed == n, s
        assert len(s.claimed) == min(s.skipped_claimed, 200)


@pytest.mark.parametrize("runs", [2, 4])
def test_overlapping_runs_as_threads_message_everyone_once(
    runs: int, sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    sandbox.set_faults(FaultConfig(latency_ms=5, path_pattern="send_message"))
    barrier = threading.Barrier(runs)
    summaries: list[OutreachSummary] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            summaries.append(_run(creds, str(tmp_path), chunk_size=20, max_concurrency=4))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    _check_overlap(sandbox, summaries, 120)
    assert any(s.skipped_claimed or s.skipped_already_sent for s in summaries)


def _processes(
    sandbox: SandboxHandle, ledger: str, runs: int, tmp_path: Path, campaign: str
) -> list[OutreachSummary]:
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "AUTOTALK_API_KEY": KEY,
        "AUTOTALK_BASE_URL": sandbox.base_url,
    }
    go = tmp_path / "go"
    code = (
        "import os, sys, time, pathlib\n"
        "from autotalk_prefect.flows.outreach.flow import outreach_campaign\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.01)\n"
        f"s = outreach_campaign(campaign_id={campaign!r}, message_template={TEMPLATE!r}, "
        f"ledger_storage={ledger!r}, chunk_size=20, max_concurrency=4)\n"
        "print('SUMMARY ' + s.model_dump_json())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / f"ready-{n}"), str(go)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for n in range(runs)
    ]
    try:
        deadline = time.monotonic() + 180
        while not all((tmp_path / f"ready-{n}").exists() for n in range(runs)):
            assert all(p.poll() is None for p in procs), "a run died before it started"
            assert time.monotonic() < deadline, "the runs never got ready"
            time.sleep(0.05)
        go.touch()  # all at once
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), outputs
    return [
        OutreachSummary.model_validate_json(line.removeprefix("SUMMARY "))
        for out in outputs
        for line in out.splitlines()
        if line.startswith("SUMMARY ")
    ]


# Processes are the expensive case (each imports Prefect and runs its own flow): three at once, once
# per ledger dialect; the thread tests above cover two and four.
@pytest.mark.parametrize("runs", [3])
def test_overlapping_runs_as_processes_on_sqlite_message_everyone_once(
    runs: int, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    sandbox.set_faults(FaultConfig(latency_ms=5, path_pattern="send_message"))
    summaries = _processes(sandbox, str(tmp_path / "ledger"), runs, tmp_path, "procs")
    assert len(summaries) == runs
    _check_overlap(sandbox, summaries, 120)


@pytest.mark.parametrize("runs", [3])
def test_overlapping_runs_as_processes_on_postgresql_message_everyone_once(
    runs: int, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    if not PG_DSN:
        pytest.skip("AUTOTALK_TEST_POSTGRES_DSN is not set")
    campaign = f"pg-{runs}-{os.getpid()}-{time.time_ns()}"
    sandbox.set_faults(FaultConfig(latency_ms=5, path_pattern="send_message"))
    summaries = _processes(sandbox, PG_DSN, runs, tmp_path, campaign)
    assert len(summaries) == runs
    _check_overlap(sandbox, summaries, 120)
    assert ClaimLedger(campaign, PG_DSN).counts()["sent"] == 120


def test_a_contact_list_with_duplicates_is_messaged_once(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    ids = sandbox.contact_ids()[:5]
    summary = _run(
        creds,
        str(tmp_path),
        campaign_id="dups",
        audience=Audience(contact_ids=ids + ids[:3]),
        chunk_size=3,
    )
    assert (summary.total, summary.sent) == (5, 5)
    assert set(_counts(sandbox).values()) == {1}
