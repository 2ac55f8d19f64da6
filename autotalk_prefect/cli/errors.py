"""One line per failure for every ``autotalk-prefect`` command: what was wrong, what to do.

A traceback is for the people who write this package; a user needs the cause and the next
step. ``autotalk-prefect --debug <command>`` (or ``AUTOTALK_DEBUG=1``) re-raises instead.

Two exits, one path: a failure while working is ``error: <cause and what to do>`` and exit 1;
input that cannot work (a bad option value, a ledger URL that does not parse, no credentials) is
:class:`InputError`, raised by the command, printed the same way with exit code 2 (no traceback
even with ``--debug``: nothing in the package went wrong).
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from autotalk_prefect._compat import TyperException
from autotalk_prefect.api.errors import (
    AuthenticationError,
    AutoTalkConnectionError,
    AutoTalkError,
    PermissionDeniedError,
)

P = ParamSpec("P")
R = TypeVar("R")

#: set by the top-level ``--debug`` option
DEBUG: dict[str, bool] = {"on": False}
#: the exit code of input that cannot work (as typer's own usage errors)
INPUT_ERROR_EXIT = 2


class CommandFailed(Exception):
    """The command worked and the answer is a failure (a limit that does not exist): it stops
    with ``error: <message>``, exit 1, the message as written (no ``--debug`` hint)."""


class InputError(Exception):
    """What the user gave cannot work: the command stops with ``error: <message>``, exit 2.

    Raise it (``raise InputError(str(exc)) from exc``) rather than echoing by hand; a command
    wrapped by :func:`one_line_errors` prints it.
    """


def _prefect_api() -> str:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    try:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value() or "Prefect's ephemeral API"
    except Exception:
        return "the Prefect API"


def describe_failure(exc: BaseException) -> str:
    """The one line a user reads: the cause, then what to do about it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, AuthenticationError):
        return (
            f"AutoTalk refused the API key ({text}): check AUTOTALK_API_KEY (or --api-key) "
            "and AUTOTALK_BASE_URL; nothing was saved or sent"
        )
    if isinstance(exc, PermissionDeniedError):
        return f"the API key may not do this ({text}): use a key with the needed permission"
    if isinstance(exc, AutoTalkConnectionError):
        return text  # names the URL it tried and what to check
    if isinstance(exc, AutoTalkError):
        return f"AutoTalk answered with an error: {text}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"{text}: the port is in use; pick another with --port (0 picks a free one)"
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("httpx") or name in {"ConnectError", "PrefectHTTPStatusError"}:
        return (
            f"could not use {_prefect_api()} ({name}: {text}): start a server "
            "(prefect server start) and set PREFECT_API_URL, or unset it for the ephemeral API"
        )
    if isinstance(exc, ValueError):
        return text
    return f"{name}: {text} (run again with --debug for the traceback)"


def _address_in_use(exc: BaseException) -> OSError | None:
    """The EADDRINUSE behind ``exc`` (uvicorn and thread helpers wrap it), if any."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return seen
        if "address already in use" in str(seen).lower():
            return OSError(errno.EADDRINUSE, " ".join(str(seen).split()))
        seen = seen.__cause__ or seen.__context__
    return None


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a typer command: an exception becomes ``error: <one line>`` and exit code 1
    (an :class:`InputError`: its message, exit code 2)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException, KeyboardInterrupt):
            raise  # typer prints its own usage errors (one line under the usage)
        except SystemExit as exc:
            if DEBUG["on"] or exc.code in (0, None):
                raise
            raise typer.Exit(code=exc.code if isinstance(exc.code, int) else 1) from None
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=INPUT_ERROR_EXIT) from None
        except CommandFailed as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        except Exception as exc:
            if DEBUG["on"]:
                raise
            busy = _address_in_use(exc)
            typer.echo(f"error: {describe_failure(busy or exc)}", err=True)
            raise typer.Exit(code=1) from None

    return wrapper


__all__ = [
    "DEBUG",
    "INPUT_ERROR_EXIT",
    "CommandFailed",
    "InputError",
    "describe_failure",
    "one_line_errors",
]
