"""Where the ledger lives: its URL from what the user gave, and the one reader of Secret blocks.

``ledger_storage`` may be a SQLAlchemy URL, a directory (a SQLite file inside it), a Prefect
``Secret`` block or its slug ``secret/<name>`` (so a DSN with a password stays out of flow
parameters and the UI), or ``None`` (``AUTOTALK_LEDGER_URL``, else ``.autotalk/ledger``).

:func:`read_secret_block` is the package's one way to load a ``Secret`` block by name: the
ledger reads its URL with it and the warehouse sync its destination credentials, and both say
the same thing when the block is missing.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from autotalk_prefect.ledger.settings import LedgerSettings

__all__ = [
    "DEFAULT_LEDGER_DIR",
    "LEDGER_FILE",
    "LEDGER_URL_ENV",
    "ledger_url",
    "read_secret_block",
    "shown_url",
]

DEFAULT_LEDGER_DIR = Path(".autotalk") / "ledger"
LEDGER_FILE = "ledger.sqlite3"
LEDGER_URL_ENV = "AUTOTALK_LEDGER_URL"

_secret_urls: dict[str, str] = {}
_secret_lock = threading.Lock()

_BLOCK_ERROR = (
    "ledger_storage cannot be a {what}: file-system blocks cannot write conditionally, so two "
    "runs could both claim a contact and message it twice. Use a SQLAlchemy URL: a SQLite file "
    "('sqlite:////path/ledger.sqlite3', or a directory path) for one machine, or PostgreSQL "
    "('postgresql://user:pass@host/db') shared by many machines; to keep a password out of "
    "parameters, save the URL in a Prefect Secret block and pass 'secret/<its name>'."
)
_BLOCK_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_. -]*$")
_SECRET_SLUG = "secret/"


def read_secret_block(name: str, *, parameter: str, holds: str, example: str = "...") -> Any:
    """The value of the Prefect ``Secret`` block ``name`` (read from the Prefect API).

    A missing block is a ValueError naming the ``parameter`` that named it and how to save one
    holding ``holds`` (what the caller needs in it, e.g. "the ledger's SQLAlchemy URL"), with
    ``example`` as the value shown.
    """
    from prefect.blocks.system import Secret  # Prefect only when a block is named

    try:
        block = cast(Secret[Any], Secret.load(name, _sync=True))  # type: ignore[call-arg]
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        raise ValueError(
            f"{parameter}: there is no Secret block named {name!r} in this Prefect API (save "
            f"one holding {holds}: Secret(value={example}).save({name!r}))"
        ) from None
    return block.get()


def ledger_url(storage: object = None) -> str:
    """The SQLAlchemy URL for ``storage``.

    A URL as given; a directory -> a SQLite file inside it; a Prefect ``Secret`` block, or its
    slug ``secret/<name>``, -> the URL it holds (a DSN with a password stays out of flow
    parameters and the UI); ``None`` -> ``AUTOTALK_LEDGER_URL`` from the environment or a
    ``.env`` file (any of the above), else ``.autotalk/ledger/ledger.sqlite3``.
    """
    if storage is None:
        storage = LedgerSettings().url_text() or DEFAULT_LEDGER_DIR
    if isinstance(storage, os.PathLike):
        storage = os.fspath(storage)
    if not isinstance(storage, str):
        storage = _url_from_block(storage)
    text = storage.strip()
    if not text:
        raise ValueError("ledger_storage must not be an empty string")
    if text.startswith(_SECRET_SLUG) and "://" not in text and not Path(text).exists():
        text = _url_from_secret(text[len(_SECRET_SLUG) :])
    if "://" in text:
        try:
            url = sa.engine.make_url(text)
        except sa.exc.ArgumentError as exc:
            raise ValueError(
                f"ledger_storage {shown_url(text)} is not a SQLAlchemy URL: {exc}"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"ledger_storage {shown_url(text)}: only sqlite:// and postgresql:// ledgers are "
                "supported (the claim needs INSERT ... ON CONFLICT ... RETURNING)"
            )
        return text
    if _BLOCK_SLUG.fullmatch(text) and not Path(text).exists():
        raise ValueError(_BLOCK_ERROR.format(what=f"{text.split('/')[0]} block ({text!r})"))
    path = Path(text).expanduser()
    if path.suffix in (".sqlite", ".sqlite3", ".db"):
        return f"sqlite:///{path.resolve()}"
    return f"sqlite:///{(path / LEDGER_FILE).resolve()}"


def _url_from_block(block: object) -> str:
    """The URL a ``Secret`` block holds; any other object is refused with what to use."""
    from prefect.blocks.system import Secret

    if isinstance(block, Secret):
        return _secret_text(block.get(), "the Secret block given")
    raise TypeError(_BLOCK_ERROR.format(what=f"{type(block).__name__}"))


def _url_from_secret(name: str) -> str:
    """The URL held by the Secret block ``name`` (read from the Prefect API once per process)."""
    with _secret_lock:
        cached = _secret_urls.get(name)
    if cached is not None:
        return cached
    value = read_secret_block(
        name,
        parameter=f"ledger_storage 'secret/{name}'",
        holds="the ledger's SQLAlchemy URL",
        example="'postgresql://...'",
    )
    url = _secret_text(value, f"the Secret block {name!r}")
    with _secret_lock:
        _secret_urls[name] = url
    return url


def _secret_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ValueError(
            f"ledger_storage: {what} must hold a SQLAlchemy URL as text "
            "('sqlite:////path/ledger.sqlite3' or 'postgresql://user:pass@host/db'), "
            f"not a {type(value).__name__}" + (" without '://'" if isinstance(value, str) else "")
        )
    return value.strip()


def shown_url(url: str) -> str:
    """A URL for an error message or a log line, password hidden (quoted)."""
    try:
        return repr(sa.engine.make_url(url).render_as_string(hide_password=True))
    except sa.exc.ArgumentError:
        return "(unreadable URL)"
