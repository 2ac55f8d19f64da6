"""The outreach ledger: states, crash safety, concurrent writers, local and block storage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem

from autotalk_prefect.ledger.store import (
    BlockLedgerStore,
    Ledger,
    LedgerCorruptError,
    LedgerState,
    LedgerWriter,
    LocalLedgerStore,
    resolve_ledger_store,
    validate_campaign_id,
)


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a b", "-x", "x" * 129, None, 3])
def test_campaign_id_must_be_a_safe_file_name(bad: object) -> None:
    with pytest.raises(ValueError, match="Invalid campaign_id"):
        validate_campaign_id(bad)


@pytest.mark.parametrize("good", ["spring-2026", "A.b_c-1", "x" * 128])
def test_campaign_id_accepts_safe_names(good: str) -> None:
    assert validate_campaign_id(good) == good


async def _write(ledger: Ledger, script: list[tuple[str, str]]) -> None:
    async with ledger.writer() as writer:
        for contact_id, outcome in script:
            if outcome == "failed-before-send":
                writer.failed(contact_id, None, "template: 'name' is undefined")
                continue
            attempt = await writer.begin(contact_id)
            if outcome == "sent":
                writer.sent(contact_id, attempt, f"msg-{contact_id}")
            elif outcome == "failed":
                writer.failed(contact_id, attempt, "404: contact not found")
            elif outcome == "unknown":
                writer.unknown(contact_id, attempt, "no answer after sending")
            # "crash": pending only


async def test_states_resolve_per_contact(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)
    await _write(
        ledger,
        [
            ("a", "sent"),
            ("b", "failed"),
            ("c", "unknown"),
            ("d", "crash"),
            ("e", "failed-before-send"),
        ],
    )
    snap = ledger.snapshot()
    assert snap.get("a").state is LedgerState.SENT
    assert snap.get("a").message_id == "msg-a"
    assert snap.get("b").state is LedgerState.FAILED
    assert snap.get("b").reason == "404: contact not found"
    assert snap.get("c").state is LedgerState.UNKNOWN
    assert snap.get("d").state is LedgerState.PENDING
    assert "never confirmed" in snap.get("d").reason
    assert snap.get("e").state is LedgerState.FAILED
    assert snap.get("zzz") is None
    assert snap.counts() == {"pending": 1, "sent": 1, "failed": 2, "unknown": 1}


async def test_later_attempts_combine_with_earlier_ones(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)
    await _write(ledger, [("a", "failed"), ("b", "unknown"), ("c", "crash"), ("d", "failed")])
    # a second run: a retried, b re-sent on opt-in but failed, c confirmed, d crashed
    await _write(ledger, [("a", "sent"), ("b", "failed"), ("c", "sent"), ("d", "crash")])
    snap = ledger.snapshot()
    assert snap.get("a").state is LedgerState.SENT
    assert snap.get("a").attempts == 2
    assert snap.get("b").state is LedgerState.UNKNOWN  # may still have been applied once
    assert snap.get("c").state is LedgerState.SENT
    assert snap.get("d").state is LedgerState.PENDING
    # two writers -> two files, nobody overwrote anybody
    assert len(list((tmp_path / "c1").glob("*.jsonl"))) == 2


async def test_pending_is_durable_before_begin_returns(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)
    writer = ledger.writer()
    await writer.begin("a")
    # not closed: the process could die right now, and the record must already be on disk
    assert ledger.snapshot().get("a").state is LedgerState.PENDING
    await writer.close()


async def test_concurrent_begins_share_writes(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)
    async with ledger.writer() as writer:

        async def one(i: int) -> None:
            attempt = await writer.begin(f"c{i}")
            writer.sent(f"c{i}", attempt, f"m{i}")

        await asyncio.gather(*(one(i) for i in range(200)))
    assert writer.records_written == 400
    assert writer.writes < 200  # group commit: fewer writes than records
    snap = ledger.snapshot()
    assert snap.counts()["sent"] == 200


async def test_concurrent_writers_never_overwrite_each_other(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)

    async def run(prefix: str) -> None:
        await _write(ledger, [(f"{prefix}{i}", "sent") for i in range(50)])

    await asyncio.gather(*(run(p) for p in "abcd"))
    assert ledger.snapshot().counts()["sent"] == 200


async def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)
    await _write(ledger, [("a", "sent"), ("b", "crash")])
    (path,) = (tmp_path / "c1").glob("*.jsonl")
    with path.open("ab") as f:
        f.write(b'{"contact_id":"c","state":"pen')  # the process died mid-write
    snap = ledger.snapshot()
    assert snap.get("a").state is LedgerState.SENT
    assert snap.get("b").state is LedgerState.PENDING
    assert snap.get("c") is None


async def test_corruption_in_the_middle_is_an_error(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)
    await _write(ledger, [("a", "sent"), ("b", "sent")])
    (path,) = (tmp_path / "c1").glob("*.jsonl")
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(LedgerCorruptError, match="line 2"):
        ledger.snapshot()


def test_records_are_plain_jsonl(tmp_path: Path) -> None:
    ledger = Ledger("c1", tmp_path)
    asyncio.run(_write(ledger, [("a", "sent")]))
    (path,) = (tmp_path / "c1").glob("*.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["state"] for r in records] == ["pending", "sent"]
    assert records[0]["attempt"] == records[1]["attempt"]
    assert records[1]["message_id"] == "msg-a"
    assert records[0]["at"].endswith("Z")


def test_empty_campaign_reads_empty(tmp_path: Path) -> None:
    assert len(Ledger("new", tmp_path).snapshot()) == 0


async def test_a_failing_sink_fails_the_waiting_sends(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the ledger directory should be")
    writer = LedgerWriter(LocalLedgerStore(blocker, "c1"))
    with pytest.raises(OSError):
        await writer.begin("a")
    with pytest.raises(OSError):
        await writer.close()


async def test_local_file_system_block_ledger(tmp_path: Path) -> None:
    block = LocalFileSystem(basepath=str(tmp_path / "store"))
    ledger = Ledger("c1", block)
    assert isinstance(ledger.store, BlockLedgerStore)
    assert len(ledger.snapshot()) == 0  # nothing written yet
    await _write(ledger, [("a", "sent"), ("b", "unknown"), ("c", "crash")])
    await _write(ledger, [("d", "failed")])
    snap = ledger.snapshot()
    assert snap.get("a").state is LedgerState.SENT
    assert snap.get("b").state is LedgerState.UNKNOWN
    assert snap.get("c").state is LedgerState.PENDING
    assert snap.get("d").state is LedgerState.FAILED
    objects = sorted((tmp_path / "store" / "autotalk-ledger" / "c1").iterdir())
    assert len(objects) >= 2 and all(p.suffix == ".jsonl" for p in objects)


def test_block_without_listing_is_refused() -> None:
    class WriteOnly:
        def write_path(self, path: str, content: bytes) -> None: ...

        def read_path(self, path: str) -> bytes:
            return b""

    with pytest.raises(TypeError, match="cannot list"):
        BlockLedgerStore(WriteOnly(), "c1")  # type: ignore[arg-type]


def test_storage_resolution(tmp_path: Path) -> None:
    assert isinstance(resolve_ledger_store(None, "c1"), LocalLedgerStore)
    local = resolve_ledger_store(str(tmp_path / "x"), "c1")
    assert isinstance(local, LocalLedgerStore) and local.directory == tmp_path / "x" / "c1"
    assert isinstance(resolve_ledger_store("./a/b", "c1"), LocalLedgerStore)
    with pytest.raises(ValueError, match="empty"):
        resolve_ledger_store("  ", "c1")
    with pytest.raises(ValueError, match="Invalid campaign_id"):
        resolve_ledger_store(None, "../escape")


def test_storage_slug_loads_a_saved_block(tmp_path: Path) -> None:
    LocalFileSystem(basepath=str(tmp_path / "saved")).save("ledger-test-store", overwrite=True)
    store = resolve_ledger_store("local-file-system/ledger-test-store", "c1")
    assert isinstance(store, BlockLedgerStore)
    assert "ledger-test-store" in store.describe()
    with pytest.raises(ValueError, match="no such block"):
        resolve_ledger_store("local-file-system/does-not-exist", "c1")
