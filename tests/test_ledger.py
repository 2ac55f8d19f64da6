"""The claim ledger and THE outcome rule: atomic claims in SQLite (threads and processes) and
PostgreSQL, group commit, where a ledger lives, and how every answer and error is classified."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from autotalk_prefect.api.errors import (
    AuthenticationError,
    AutoTalkConnectionError,
    AutoTalkError,
    ConflictError,
    InvalidRequestError,
    NoResponseError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnexpectedAnswerError,
    error_from_response,
)
from autotalk_prefect.api.outcomes import find_id, from_answer, from_exception
from autotalk_prefect.ledger.once import OnceLedger
from autotalk_prefect.ledger.report import counts_text, write_export
from autotalk_prefect.ledger.store import (
    Claim,
    ClaimLedger,
    LedgerState,
    Resolution,
    ledger_url,
    validate_campaign_id,
)
from autotalk_prefect.ledger.writer import ClaimWriter

PG_DSN = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a b", "-x", "x" * 129, None, 3])
def test_campaign_id_must_be_safe(bad: object) -> None:
    with pytest.raises(ValueError, match="Invalid campaign_id"):
        validate_campaign_id(bad)


# ---- the outcome rule ------------------------------------------------------------------------


def _http_error(status: int, body: str = '{"message": "no"}', **headers: str) -> AutoTalkError:
    response = httpx.Response(status, text=body, headers=headers)
    return error_from_response(response, "POST", "/contacts/c1/send_message")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 429])
def test_refusals_are_failed(status: int) -> None:
    assert from_exception(_http_error(status)).state == "failed"


def test_503_with_retry_after_is_failed_without_it_unknown() -> None:
    assert from_exception(_http_error(503, **{"retry-after": "2"})).state == "failed"
    assert from_exception(_http_error(503)).state == "unknown"


@pytest.mark.parametrize("status", [500, 502, 504, 405, 418])
def test_other_statuses_are_unknown(status: int) -> None:
    assert from_exception(_http_error(status)).state == "unknown"


def test_409_is_already_applied_for_a_create_else_unknown() -> None:
    created = from_exception(_http_error(409), create=True)
    assert (created.state, created.already) == ("sent", True)
    assert from_exception(_http_error(409)).state == "unknown"


@pytest.mark.parametrize(
    "exc",
    [
        OutcomeUnknownError("no answer"),
        NoResponseError("dropped"),
        AutoTalkError("something we cannot place"),
        KeyboardInterrupt(),
        asyncio.CancelledError(),
        RuntimeError("a bug"),
    ],
)
def test_no_answer_and_anything_unplaceable_is_unknown(exc: BaseException) -> None:
    assert from_exception(exc).state == "unknown"


def test_never_connected_is_failed() -> None:
    assert from_exception(AutoTalkConnectionError("connect refused")).state == "failed"


@pytest.mark.parametrize(
    "body, expected",
    [
        ('{"_id": "m1"}', "m1"),
        ('{"id": "m2"}', "m2"),
        ('{"messageId": "m3"}', "m3"),
        ('{"message": {"_id": "m4", "conversationId": "c"}}', "m4"),
        ('{"data": {"_id": "m5"}}', "m5"),
        ('{"data": {"message": {"_id": "m6"}}}', "m6"),
        ("null", None),
        ("", None),
        ("queued", None),
    ],
)
def test_any_2xx_is_sent_with_the_id_when_one_can_be_found(body: str, expected: str | None) -> None:
    decoded = UnexpectedAnswerError("unexpected answer: not a Message", body=body or None)
    outcome = from_exception(decoded)
    assert outcome.state == "sent" and outcome.ref == expected
    assert outcome.raw == (body or None)
    # a 2xx status on any AutoTalkError is sent too, whatever the class
    assert from_exception(AutoTalkError("odd", status_code=202, body=body)).state == "sent"


def test_no_status_ever_turns_a_2xx_into_not_applied() -> None:
    for status in range(200, 300):
        for cls in (AutoTalkError, InvalidRequestError, ServerError, NotFoundError):
            assert from_exception(cls("x", status_code=status)).state == "sent", (cls, status)


def test_from_answer_and_find_id() -> None:
    class Model:
        id = "m9"

    assert from_answer(Model()).ref == "m9"
    assert from_answer({"data": {"_id": "m10"}}).ref == "m10"
    assert find_id({"data": {"id": 7}}) == "7"
    assert find_id({"_id": True}) is None


def test_auth_errors_are_failed_classes() -> None:
    for exc in (
        AuthenticationError("x", status_code=401),
        PermissionDeniedError("x", status_code=403),
    ):
        assert from_exception(exc).state == "failed"
    assert from_exception(RateLimitError("x", status_code=429)).state == "failed"
    assert from_exception(ConflictError("x", status_code=409), create=True).state == "sent"


# ---- where a ledger lives --------------------------------------------------------------------


def test_ledger_url_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTALK_LEDGER_URL", raising=False)
    assert ledger_url(str(tmp_path)) == f"sqlite:///{tmp_path.resolve()}/ledger.sqlite3"
    assert ledger_url(tmp_path / "x.sqlite3") == f"sqlite:///{(tmp_path / 'x.sqlite3').resolve()}"
    assert ledger_url("postgresql://u:p@h/db") == "postgresql://u:p@h/db"
    assert ledger_url(None).endswith(".autotalk/ledger/ledger.sqlite3")
    monkeypatch.setenv("AUTOTALK_LEDGER_URL", f"sqlite:///{tmp_path}/env.sqlite3")
    assert ledger_url(None) == f"sqlite:///{tmp_path}/env.sqlite3"
    with pytest.raises(ValueError, match="empty"):
        ledger_url("  ")
    with pytest.raises(ValueError, match="only sqlite"):
        ledger_url("mysql://u@h/db")


def test_the_ledger_url_setting_is_read_from_a_dotenv_file_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AUTOTALK_LEDGER_URL`` sits beside ``AUTOTALK_API_KEY`` in a ``.env`` file; the
    environment wins over the file, as for every ``AUTOTALK_*`` setting."""
    monkeypatch.delenv("AUTOTALK_LEDGER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        f"AUTOTALK_API_KEY=sk-from-dotenv\nAUTOTALK_LEDGER_URL={tmp_path}/from-dotenv\n"
    )
    assert ledger_url(None) == f"sqlite:///{tmp_path.resolve()}/from-dotenv/ledger.sqlite3"
    monkeypatch.setenv("AUTOTALK_LEDGER_URL", f"sqlite:///{tmp_path}/env.sqlite3")
    assert ledger_url(None) == f"sqlite:///{tmp_path}/env.sqlite3"
    monkeypatch.setenv("AUTOTALK_LEDGER_URL", "  ")  # blank: the default
    assert (
        ledger_url(None) == f"sqlite:///{(tmp_path / '.autotalk/ledger').resolve()}/ledger.sqlite3"
    )


def test_a_block_is_refused_with_the_reason_and_what_to_use(tmp_path: Path) -> None:
    from prefect.filesystems import LocalFileSystem

    with pytest.raises(TypeError, match=r"cannot write conditionally.*SQLAlchemy URL.*Secret"):
        ClaimLedger("c1", LocalFileSystem(basepath=str(tmp_path)))
    with pytest.raises(ValueError, match=r"local-file-system block.*postgresql"):
        ClaimLedger("c1", "local-file-system/my-ledger")


def test_the_url_from_a_secret_block_by_slug_or_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DSN with a password lives in a Secret block: ``secret/<name>`` (a flow parameter, the
    CLI's --ledger, $AUTOTALK_LEDGER_URL) or the block itself; it never shows in an error."""
    from prefect.blocks.system import Secret

    url = f"sqlite:///{tmp_path.resolve()}/from-secret.sqlite3"
    Secret(value=url).save("ledger-dsn-test", overwrite=True)
    assert ledger_url("secret/ledger-dsn-test") == url
    assert ledger_url(Secret(value=url)) == url
    monkeypatch.setenv("AUTOTALK_LEDGER_URL", "secret/ledger-dsn-test")
    ledger = ClaimLedger("c-secret", None)
    assert ledger.url == url and set(ledger.claim([Claim("a")], "run-1")) == {"a"}
    assert (tmp_path / "from-secret.sqlite3").exists()
    with pytest.raises(ValueError, match=r"no Secret block named 'nope-missing'.*save one"):
        ledger_url("secret/nope-missing")
    Secret(value="not a url at all").save("ledger-dsn-bad", overwrite=True)
    with pytest.raises(ValueError, match=r"must hold a SQLAlchemy URL") as caught:
        ledger_url("secret/ledger-dsn-bad")
    assert "not a url at all" not in str(caught.value)
    Secret(value="postgresql://u:hunter2-pw@h/db").save("ledger-dsn-pg", overwrite=True)
    assert ledger_url("secret/ledger-dsn-pg") == "postgresql://u:hunter2-pw@h/db"
    shown = ClaimLedger.__new__(ClaimLedger)  # what reports and logs print: no password
    shown.campaign_id, shown.url = "c1", ledger_url("secret/ledger-dsn-pg")
    assert "hunter2" not in shown.describe() and "h/db" in shown.describe()


# ---- claims ----------------------------------------------------------------------------------


def _ledger(tmp_path: Path, campaign: str = "c1") -> ClaimLedger:
    return ClaimLedger(campaign, str(tmp_path))


def test_a_claim_is_won_once_and_only_failed_is_reclaimed(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    won = ledger.claim([Claim("a", "hi a"), Claim("b"), Claim("c"), Claim("d")], "run-1")
    assert set(won) == {"a", "b", "c", "d"}
    assert ledger.claim([Claim("a"), Claim("b")], "run-2") == {}  # held: pending
    ledger.resolve(
        [
            Resolution("a", won["a"], LedgerState.SENT, message_id="m-a"),
            Resolution("b", won["b"], LedgerState.FAILED, reason="404"),
            Resolution("c", won["c"], LedgerState.UNKNOWN, reason="no answer"),
        ]
    )
    again = ledger.claim([Claim(k) for k in "abcde"], "run-2")
    assert set(again) == {"b", "e"}  # failed -> re-claimed; new -> claimed; others held
    forced = ledger.claim([Claim(k) for k in "acd"], "run-3", reclaim=list(LedgerState))
    assert set(forced) == {"a", "c", "d"}
    status = ledger.statuses(["b", "zz"])
    assert status["b"].state is LedgerState.PENDING and status["b"].attempts == 2
    assert "zz" not in status


def test_a_stale_attempt_cannot_overwrite_a_newer_claim(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    first = ledger.claim([Claim("a")], "run-1")["a"]
    ledger.resolve([Resolution("a", first, LedgerState.FAILED)])
    second = ledger.claim([Claim("a")], "run-2")["a"]
    ledger.resolve([Resolution("a", first, LedgerState.SENT, message_id="late")])
    assert ledger.status("a").state is LedgerState.PENDING  # type: ignore[union-attr]
    ledger.resolve([Resolution("a", second, LedgerState.SENT, message_id="m")])
    assert ledger.status("a").message_id == "m"  # type: ignore[union-attr]


async def test_group_commit_batches_claims(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    async with ClaimWriter(ledger, "run-1") as writer:

        async def one(i: int) -> None:
            attempt = await writer.claim(f"c{i}", f"text {i}")
            assert attempt is not None
            writer.resolve(Resolution(f"c{i}", attempt, LedgerState.SENT, message_id=f"m{i}"))

        await asyncio.gather(*(one(i) for i in range(300)))
    assert writer.claims_made == 300
    assert writer.commits < 100  # many claims share one transaction
    assert ledger.counts()["sent"] == 300


async def test_the_same_key_twice_in_one_batch_is_claimed_once(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    async with ClaimWriter(ledger, "run-1") as writer:
        results = await asyncio.gather(*(writer.claim("same") for _ in range(5)))
    assert sum(bool(r) for r in results) == 1  # one attempt id ...
    assert results.count("") == 4  # ... the others told this run holds it already (OURS)


async def test_a_broken_database_fails_the_waiting_claims(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    writer = ClaimWriter(ledger, "run-1")
    writer.ledger = ClaimLedger.__new__(ClaimLedger)  # an engine that cannot connect
    writer.ledger.campaign_id = "c1"
    writer.ledger.engine = sa.create_engine(f"sqlite:///{tmp_path}/missing-dir/x/y.sqlite3")
    with pytest.raises(sa.exc.OperationalError):
        await writer.claim("a")
    with pytest.raises(sa.exc.OperationalError):
        await writer.close()


def test_threads_claim_each_key_exactly_once(tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(400)]
    won: list[dict[str, str]] = []

    def claimant(n: int) -> None:
        ledger = _ledger(tmp_path)
        for start in range(0, len(keys), 50):
            won.append(ledger.claim([Claim(k) for k in keys[start : start + 50]], f"run-{n}"))

    threads = [threading.Thread(target=claimant, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [k for batch in won for k in batch]
    assert sorted(claimed) == sorted(keys)


def _claim_in_process(url: str, run: str, queue: Any) -> None:
    ledger = ClaimLedger("multi", url)
    got: list[str] = []
    for start in range(0, 600, 25):
        got += ledger.claim([Claim(f"k{i}") for i in range(start, start + 25)], run)
    queue.put(got)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_claim_each_key_exactly_once(tmp_path: Path, backend: str) -> None:
    if backend == "postgresql":
        if not PG_DSN:
            pytest.skip("AUTOTALK_TEST_POSTGRES_DSN is not set")
        url = PG_DSN
        _clear_pg("multi")
    else:
        url = str(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(url, f"p{n}", queue)) for n in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    claimed = [k for r in results for k in r]
    assert sorted(claimed) == sorted(f"k{i}" for i in range(600))


def _clear_pg(campaign: str) -> None:
    from autotalk_prefect.ledger.store import TABLE

    ledger = ClaimLedger(campaign, PG_DSN)
    with ledger.engine.begin() as conn:
        conn.execute(sa.delete(TABLE).where(TABLE.c.campaign == campaign))


# ---- once per key, show, export ---------------------------------------------------------------


def test_once_runs_a_call_once_and_classifies_its_error(tmp_path: Path) -> None:
    once = OnceLedger("steps", str(tmp_path))
    calls: list[int] = []

    def call() -> dict[str, str]:
        calls.append(1)
        raise UnexpectedAnswerError("unexpected answer", body='{"data": {"_id": "m1"}}')

    first = once.run("send", call)
    assert first.claimed and first.outcome is not None and first.outcome.state == "sent"
    assert first.outcome.ref == "m1" and isinstance(first.error, UnexpectedAnswerError)
    second = once.run("send", call)
    assert not second.claimed and second.status is not None
    assert second.status.state is LedgerState.SENT and calls == [1]

    refused = once.run("other", lambda: (_ for _ in ()).throw(_http_error(404)))
    assert refused.outcome is not None and refused.outcome.state == "failed"
    retried = once.run("other", lambda: {"_id": "m2"})
    assert retried.outcome is not None and retried.outcome.ref == "m2"


def test_show_and_export(tmp_path: Path) -> None:
    import io

    ledger = _ledger(tmp_path, "shown")
    won = ledger.claim([Claim("a", "hi"), Claim("b")], "run-1")
    ledger.resolve([Resolution("a", won["a"], LedgerState.SENT, message_id="m-a")])
    text = counts_text(ledger)
    assert "sent     1" in text and "pending  1" in text and "total    2" in text
    out = io.StringIO()
    assert write_export(ledger, "csv", out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "contact_id,state,message_id,attempts,reason,claimed_at,updated_at"
    assert lines[1].startswith("a,sent,m-a,1,")
    out = io.StringIO()
    write_export(ledger, "json", out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[1]["contact_id"] == "b" and rows[1]["state"] == "pending"
    with pytest.raises(ValueError, match="csv"):
        write_export(ledger, "xml", out)


def test_cli_show_export_and_bad_ledger(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autotalk_prefect.cli import app

    ledger = _ledger(tmp_path, "cli")
    won = ledger.claim([Claim("a")], "run-1")
    ledger.resolve([Resolution("a", won["a"], LedgerState.FAILED, reason="404: gone")])
    runner = CliRunner()
    shown = runner.invoke(app, ["ledger", "show", "cli", "--ledger", str(tmp_path)])
    assert shown.exit_code == 0 and "failed   1" in shown.output
    exported = runner.invoke(
        app, ["ledger", "export", "cli", "--ledger", str(tmp_path), "--format", "json"]
    )
    assert exported.exit_code == 0
    assert json.loads(exported.output.splitlines()[0])["reason"] == "404: gone"
    bad = runner.invoke(app, ["ledger", "show", "cli", "--ledger", "mysql://x/y"])
    assert bad.exit_code == 2 and "only sqlite" in bad.output


def test_a_read_does_not_wait_for_a_writer_holding_the_lock(tmp_path: Path) -> None:
    """Reads take no write lock (WAL snapshot): a planner reads while another process writes."""
    ledger = _ledger(tmp_path)
    ledger.claim([Claim("a")], "run-1")
    holder = sqlite3.connect(tmp_path / "ledger.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, held
    holder.execute("UPDATE autotalk_ledger SET reason = 'held' WHERE key = 'a'")
    read: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: read.append(ledger.statuses(["a"])))
    reader.start()
    reader.join(timeout=30)
    still_held = holder.in_transaction
    holder.execute("ROLLBACK")
    holder.close()
    assert still_held and read, "the read waited for the writer's lock"
    assert read[0]["a"].state is LedgerState.PENDING and read[0]["a"].reason is None


@contextlib.contextmanager
def _on_begin(ledger: ClaimLedger, hook: Any) -> Iterator[None]:
    """``hook`` runs at every BEGIN of the ledger's engine while the block runs."""
    sa.event.listen(ledger.engine, "begin", hook)
    try:
        yield
    finally:
        sa.event.remove(ledger.engine, "begin", hook)


def _sqlite_error(message: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError(message))


def test_a_transaction_sqlite_refused_as_locked_is_run_again_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAL mode answers "database is locked" at once in some moments (another process opening or
    closing the file): the rolled-back transaction is run again and commits once."""
    from autotalk_prefect.ledger import database

    ledger = _ledger(tmp_path)
    refusals = {"left": 3}

    def refuse_some(conn: Any, *_: Any) -> None:
        if refusals["left"]:
            refusals["left"] -= 1
            raise _sqlite_error("database is locked")

    with _on_begin(ledger, refuse_some):
        won = ledger.claim([Claim("a"), Claim("b")], "run-1")
    assert refusals["left"] == 0 and set(won) == {"a", "b"}
    assert ledger.counts()["pending"] == 2
    # any other database error is raised at once, never retried
    calls = {"n": 0}

    def broken(conn: Any, *_: Any) -> None:
        calls["n"] += 1
        raise _sqlite_error("disk I/O error")

    with _on_begin(ledger, broken), pytest.raises(sa.exc.OperationalError, match="disk I/O"):
        ledger.claim([Claim("c")], "run-1")
    assert calls["n"] == 1
    monkeypatch.setattr(database, "_BUSY_BUDGET_S", 0.0)  # a lock that never clears: raised
    refusals["left"] = 10**6
    with (
        _on_begin(ledger, refuse_some),
        pytest.raises(sa.exc.OperationalError, match="database is locked"),
    ):
        ledger.claim([Claim("d")], "run-1")
    assert "d" not in ledger.statuses(["d"])


def test_which_database_errors_are_run_again() -> None:
    """Only errors that guarantee nothing was written: SQLite's locked, PostgreSQL's deadlock
    and serialization failures; never a lost connection (its COMMIT may have happened)."""

    from autotalk_prefect.ledger.database import _rolled_back_whole

    def error(orig: BaseException) -> sa.exc.OperationalError:
        return sa.exc.OperationalError("COMMIT", {}, orig)

    class PgError(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(f"pg error {sqlstate}")
            self.sqlstate = sqlstate

    pg: Any = SimpleNamespace(dialect=SimpleNamespace(name="postgresql"))
    lite: Any = SimpleNamespace(dialect=SimpleNamespace(name="sqlite"))
    assert _rolled_back_whole(pg, error(PgError("40P01")))  # deadlock detected
    assert _rolled_back_whole(pg, error(PgError("40001")))  # serialization failure
    assert not _rolled_back_whole(pg, error(PgError("08006")))  # connection failure
    assert not _rolled_back_whole(pg, error(PgError("57P01")))  # admin shutdown
    assert _rolled_back_whole(lite, error(sqlite3.OperationalError("database is locked")))
    assert not _rolled_back_whole(lite, error(sqlite3.OperationalError("disk I/O error")))
