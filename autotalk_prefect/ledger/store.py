"""The outreach ledger: what was sent to whom, so a campaign never messages a contact twice.

Keyed by (campaign id, contact id). Every send is an *attempt* with its own id and two records:
``pending`` is made durable BEFORE the request leaves, and an outcome (``sent`` with the message
id, ``failed`` when the message was definitely not applied, ``unknown`` when it may have been)
follows it. A crash between the two leaves an unresolved ``pending``: the outcome is unknown, so
a re-run reports it instead of sending again.

Storage is append-only, so concurrent writers (chunk tasks, workers on other machines) never
overwrite each other:

* a local directory (default ``.autotalk/ledger/<campaign_id>/``): one JSONL file per writer,
  fsync'd on every flush; a torn last line (the process died mid-write) is ignored on read;
* any Prefect ``WritableFileSystem`` block (``LocalFileSystem``, ``RemoteFileSystem``,
  ``S3Bucket``, ...): one new object per flush (``autotalk-ledger/<campaign_id>/<writer>-<seq>
  .jsonl``) written with ``write_path``, read back with ``get_directory``.

Writers batch records by *group commit*: many sends waiting for their ``pending`` to be durable
share one fsync (or one object write), so the ledger costs little throughput.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import os
import re
import tempfile
import uuid
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from prefect.filesystems import WritableFileSystem

__all__ = [
    "DEFAULT_LEDGER_DIR",
    "BlockLedgerStore",
    "ContactStatus",
    "Ledger",
    "LedgerCorruptError",
    "LedgerSnapshot",
    "LedgerState",
    "LedgerStore",
    "LedgerWriter",
    "LocalLedgerStore",
    "resolve_ledger_store",
    "validate_campaign_id",
]

DEFAULT_LEDGER_DIR = Path(".autotalk") / "ledger"
BLOCK_PREFIX = "autotalk-ledger"
_CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_BLOCK_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_. -]*$")
_MAX_REASON = 500


class LedgerState(str, enum.Enum):
    """Where one contact stands in a campaign."""

    PENDING = "pending"  # written before a send; alone, it means the outcome is unknown
    SENT = "sent"  # confirmed by AutoTalk (message id recorded)
    FAILED = "failed"  # definitely not applied: safe to try again
    UNKNOWN = "unknown"  # may have been applied: never re-sent unless the caller opts in


class LedgerCorruptError(RuntimeError):
    """A ledger line other than a file's last one cannot be read: refuse to guess."""


def validate_campaign_id(campaign_id: object) -> str:
    """Check that a campaign id is a safe single file name (it names a directory/prefix)."""
    if not isinstance(campaign_id, str) or not _CAMPAIGN_ID.fullmatch(campaign_id):
        raise ValueError(
            f"Invalid campaign_id {campaign_id!r}: use 1-128 characters from letters, digits, "
            "'.', '_' and '-', starting with a letter or digit (it names the ledger directory)."
        )
    return campaign_id


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- reading --------------------------------------------------------------------------------


@dataclass
class ContactStatus:
    """The resolved state of one contact, from all its attempts."""

    state: LedgerState
    message_id: str | None = None
    reason: str | None = None
    attempts: int = 0


@dataclass
class _Attempts:
    pending: set[str] = field(default_factory=set)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class LedgerSnapshot:
    """Every contact the ledger knows, resolved (``sent`` wins; then ``unknown``; then an
    unresolved ``pending``; then ``failed``)."""

    contacts: dict[str, ContactStatus] = field(default_factory=dict)

    def get(self, contact_id: str) -> ContactStatus | None:
        return self.contacts.get(contact_id)

    def counts(self) -> dict[str, int]:
        result = {state.value: 0 for state in LedgerState}
        for status in self.contacts.values():
            result[status.state.value] += 1
        return result

    def __len__(self) -> int:
        return len(self.contacts)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> LedgerSnapshot:
        by_contact: dict[str, _Attempts] = {}
        for record in records:
            contact_id, state, attempt = record["contact_id"], record["state"], record["attempt"]
            entry = by_contact.setdefault(contact_id, _Attempts())
            if state == LedgerState.PENDING.value:
                entry.pending.add(attempt)
            else:
                entry.outcomes[attempt] = dict(record)
        return cls({cid: _resolve(entry) for cid, entry in by_contact.items()})


def _resolve(entry: _Attempts) -> ContactStatus:
    attempts = len(entry.pending | set(entry.outcomes))
    outcomes = list(entry.outcomes.values())
    for wanted in (LedgerState.SENT, LedgerState.UNKNOWN):
        hits = [o for o in outcomes if o["state"] == wanted.value]
        if hits:
            last = hits[-1]
            return ContactStatus(wanted, last.get("message_id"), last.get("reason"), attempts)
    if entry.pending - set(entry.outcomes):
        return ContactStatus(
            LedgerState.PENDING,
            reason="a send was started but never confirmed (the run stopped in between)",
            attempts=attempts,
        )
    last = outcomes[-1]
    return ContactStatus(LedgerState.FAILED, None, last.get("reason"), attempts)


def parse_jsonl(data: bytes, source: str) -> Iterator[dict[str, Any]]:
    """Records of one ledger file; a torn (unterminated, unreadable) last line is skipped."""
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not {"contact_id", "state", "attempt"} <= set(
                record
            ):
                raise ValueError("not a ledger record")
            LedgerState(record["state"])
        except ValueError as exc:
            if number == len(lines):  # no newline after it: the write was cut short
                continue
            raise LedgerCorruptError(f"{source}, line {number}: unreadable ledger record") from exc
        yield record


# ---- storage --------------------------------------------------------------------------------


class LedgerSink(Protocol):
    """Where one writer appends; each ``write`` is durable when it returns."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class LedgerStore(Protocol):
    """A campaign's ledger storage: many append-only sinks, read back all together."""

    def describe(self) -> str: ...

    def open_sink(self, writer_id: str) -> LedgerSink: ...

    def read_records(self) -> Iterator[dict[str, Any]]: ...


class _LocalSink:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def _write_sync(self, data: bytes) -> None:
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _fsync_dir(self._path.parent)  # the new file's name survives a crash too
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._write_sync, data)

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class LocalLedgerStore:
    """A local directory: ``<root>/<campaign_id>/<writer_id>.jsonl``, fsync'd per flush."""

    def __init__(self, root: str | os.PathLike[str], campaign_id: str) -> None:
        self.root = Path(root).expanduser()
        self.campaign_id = validate_campaign_id(campaign_id)
        self.directory = self.root / self.campaign_id

    def describe(self) -> str:
        return f"local directory {self.directory}"

    def open_sink(self, writer_id: str) -> LedgerSink:
        return _LocalSink(self.directory / f"{writer_id}.jsonl")

    def read_records(self) -> Iterator[dict[str, Any]]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.jsonl")):
            yield from parse_jsonl(path.read_bytes(), str(path))


async def _acall(block: Any, name: str, *args: Any) -> Any:
    """Call a block method from async code: its ``a<name>`` variant when it has one."""
    method = getattr(block, f"a{name}", None) or getattr(block, name)
    result = method(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _call(block: Any, name: str, *args: Any) -> Any:
    """Call a block method from sync code (async-only blocks are run to completion)."""
    result = getattr(block, name)(*args)
    if inspect.isawaitable(result):
        from prefect.utilities.asyncutils import run_coro_as_sync

        result = run_coro_as_sync(_await(result))
    return result


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _BlockSink:
    def __init__(self, block: WritableFileSystem, prefix: str, writer_id: str) -> None:
        self._block, self._prefix, self._writer_id = block, prefix, writer_id
        self._seq = 0

    async def write(self, data: bytes) -> None:
        self._seq += 1
        path = f"{self._prefix}/{self._writer_id}-{self._seq:06d}.jsonl"
        await _acall(self._block, "write_path", path, data)

    async def close(self) -> None:
        return None


class BlockLedgerStore:
    """A Prefect ``WritableFileSystem`` block: one object per flush under
    ``autotalk-ledger/<campaign_id>/``, so concurrent writers never overwrite each other.

    Reading needs a listing, which ``WritableFileSystem`` alone does not offer: the block must
    also be deployment storage (``get_directory``), as LocalFileSystem, RemoteFileSystem, SMB
    and the prefect-aws/gcp/azure buckets are.
    """

    def __init__(self, block: WritableFileSystem, campaign_id: str) -> None:
        if not callable(getattr(block, "write_path", None)):
            raise TypeError(f"{type(block).__name__} is not a WritableFileSystem (no write_path)")
        if not callable(getattr(block, "get_directory", None)):
            raise TypeError(
                f"{type(block).__name__} cannot list its contents (no get_directory), so the "
                "ledger could not be read back; use LocalFileSystem, RemoteFileSystem or a "
                "cloud bucket block."
            )
        self.block = block
        self.campaign_id = validate_campaign_id(campaign_id)
        self.prefix = f"{BLOCK_PREFIX}/{self.campaign_id}"

    def describe(self) -> str:
        name = getattr(self.block, "_block_document_name", None)
        kind = type(self.block).__name__
        return f"{kind} block {name!r} at {self.prefix}/" if name else f"{kind} at {self.prefix}/"

    def open_sink(self, writer_id: str) -> LedgerSink:
        return _BlockSink(self.block, self.prefix, writer_id)

    def read_records(self) -> Iterator[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="autotalk-ledger-") as tmp:
            try:
                _call(self.block, "get_directory", self.prefix, tmp)
            except FileNotFoundError:
                return  # nothing written yet: a new campaign
            for path in sorted(Path(tmp).rglob("*.jsonl")):
                yield from parse_jsonl(path.read_bytes(), f"{self.prefix}/{path.name}")


def resolve_ledger_store(
    storage: WritableFileSystem | str | os.PathLike[str] | None, campaign_id: str
) -> LedgerStore:
    """The store for ``storage``: ``None`` -> ``.autotalk/ledger``; a block -> that block; a
    string ``"<block-type-slug>/<block-name>"`` -> that saved block; any other string or path ->
    a local directory (write ``./a/b`` for a relative directory that looks like a slug)."""
    campaign_id = validate_campaign_id(campaign_id)
    if storage is None:
        return LocalLedgerStore(DEFAULT_LEDGER_DIR, campaign_id)
    if isinstance(storage, os.PathLike):
        return LocalLedgerStore(storage, campaign_id)
    if isinstance(storage, str):
        if not storage.strip():
            raise ValueError("ledger_storage must not be an empty string")
        if _BLOCK_SLUG.fullmatch(storage):
            return BlockLedgerStore(_load_block(storage), campaign_id)
        return LocalLedgerStore(storage, campaign_id)
    return BlockLedgerStore(storage, campaign_id)


def _load_block(slug: str) -> WritableFileSystem:
    from prefect.blocks.core import Block

    try:
        block = Block.load(slug)
    except ValueError as exc:
        raise ValueError(
            f"ledger_storage {slug!r} looks like a block slug '<block-type>/<block-name>' but no "
            f"such block could be loaded ({exc}); for a local directory write './{slug}'."
        ) from exc
    if inspect.isawaitable(block):  # pragma: no cover - async context
        raise TypeError("resolve_ledger_store must be called from sync code for a block slug")
    return cast("WritableFileSystem", block)


# ---- the ledger -----------------------------------------------------------------------------


class Ledger:
    """A campaign's ledger: ``snapshot()`` reads it, ``writer()`` appends to it."""

    def __init__(
        self,
        campaign_id: str,
        storage: WritableFileSystem | str | os.PathLike[str] | LedgerStore | None = None,
    ) -> None:
        self.campaign_id = validate_campaign_id(campaign_id)
        if storage is not None and callable(getattr(storage, "open_sink", None)):
            self.store: LedgerStore = storage  # type: ignore[assignment]
        else:
            self.store = resolve_ledger_store(storage, campaign_id)  # type: ignore[arg-type]

    def describe(self) -> str:
        return self.store.describe()

    def snapshot(self) -> LedgerSnapshot:
        """Every contact the ledger knows, resolved (reads the whole campaign)."""
        return LedgerSnapshot.from_records(self.store.read_records())

    def writer(self) -> LedgerWriter:
        """A new append-only writer with its own file/objects (one per chunk task)."""
        return LedgerWriter(self.store)


class LedgerWriter:
    """Appends records for one writer, batching concurrent callers into one durable write.

    ``await begin(contact_id)`` returns an attempt id once the ``pending`` record is durable:
    only then may the send go out. Outcomes (``sent``/``failed``/``unknown``) are buffered and
    ride along with the next write; ``await close()`` writes whatever is left. Use it as an
    async context manager.
    """

    def __init__(self, store: LedgerStore, writer_id: str | None = None) -> None:
        self.writer_id = writer_id or uuid.uuid4().hex
        self._sink = store.open_sink(self.writer_id)
        self._buffer: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._counter = 0
        self._error: BaseException | None = None
        self.records_written = 0
        self.writes = 0

    async def __aenter__(self) -> LedgerWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _append(self, contact_id: str, state: LedgerState, attempt: str, **extra: Any) -> None:
        record: dict[str, Any] = {
            "contact_id": contact_id,
            "state": state.value,
            "attempt": attempt,
            "at": _now(),
        }
        record.update({k: v for k, v in extra.items() if v is not None})
        self._buffer.append(json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def new_attempt(self) -> str:
        self._counter += 1
        return f"{self.writer_id[:16]}-{self._counter}"

    async def begin(self, contact_id: str) -> str:
        """Record ``pending`` durably; returns the attempt id to report the outcome under."""
        if self._error is not None:
            raise self._error
        attempt = self.new_attempt()
        self._append(contact_id, LedgerState.PENDING, attempt)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._kick()
        await waiter
        return attempt

    def sent(self, contact_id: str, attempt: str, message_id: str | None) -> None:
        self._append(contact_id, LedgerState.SENT, attempt, message_id=message_id)

    def failed(self, contact_id: str, attempt: str | None, reason: str) -> None:
        """Definitely not applied (``attempt=None`` when no send was even started)."""
        self._append(
            contact_id, LedgerState.FAILED, attempt or self.new_attempt(), reason=_cap(reason)
        )

    def unknown(self, contact_id: str, attempt: str, reason: str) -> None:
        self._append(contact_id, LedgerState.UNKNOWN, attempt, reason=_cap(reason))

    def _kick(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while self._buffer and self._error is None:
            batch, waiters = self._buffer, self._waiters
            self._buffer, self._waiters = [], []
            try:
                await self._sink.write(b"".join(batch))
            except Exception as exc:
                # The writer is broken for good: every waiting and later caller gets the error
                # (their sends must not go out), and close() re-raises it.
                self._error = exc
                for waiter in [*waiters, *self._waiters]:
                    if not waiter.done():
                        waiter.set_exception(exc)
                self._waiters = []
                return
            self.records_written += len(batch)
            self.writes += 1
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def flush(self) -> None:
        """Make every buffered record durable (raises if the storage failed)."""
        if self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)
        if self._buffer and self._error is None:
            self._kick()
            assert self._flushing is not None
            await self._flushing
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            await self._sink.close()


def _cap(reason: str) -> str:
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"
