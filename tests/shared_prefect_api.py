"""One Prefect API for every pytest-xdist worker: started by the controller, used by them all.

Each worker used to start its own test harness (a server subprocess with its own SQLite
database: ~19 s of CPU each on a 2-core machine, all four at once while the workers collect).
Under xdist the controller now starts one server before the workers exist, without importing
Prefect, and hands them its URL in the environment (``ENV_URL``); the start overlaps their
collection, and each worker waits for it before its first test. The server is the one
``prefect_test_harness`` runs (``SubprocessASGIServer``'s command and settings), so tests see
the same API. Without xdist (``make test-floor``, a file run by hand) the session's harness
starts in the test process as before.

Sharing one API means a test must find its own objects by something it made (an id, a tag, a
unique name or parameter), never as "the latest" or "all of them": the other workers' runs are
there too.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

#: the API URL the controller's server answers on, for the workers
ENV_URL = "AUTOTALK_TEST_SHARED_PREFECT_API_URL"
#: its database URL (tests that scan Prefect's stored bytes read it from the settings)
ENV_DATABASE = "AUTOTALK_TEST_SHARED_PREFECT_DATABASE_URL"


def start() -> subprocess.Popen[bytes]:
    """Start the server (as ``SubprocessASGIServer`` does) and export its URLs; do not wait."""
    with socket.socket() as sock:  # free now; uvicorn binds it a moment later
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.origin is not None, "Prefect is not installed"
    home = Path(tempfile.mkdtemp(prefix="autotalk-tests-prefect-"))
    database = f"sqlite+aiosqlite:///{home / 'prefect-test.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="CRITICAL",
        PREFECT_UI_ENABLED="0",
        PREFECT__SERVER_EPHEMERAL="1",
        PREFECT__SERVER_FINAL="1",
    )
    command = [
        sys.executable, "-m", "uvicorn",
        "--app-dir", str(Path(spec.origin).parent.parent),
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    os.environ[ENV_URL] = f"http://127.0.0.1:{port}/api"
    os.environ[ENV_DATABASE] = database
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            process.send_signal(sig)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)


@contextmanager
def use(url: str, database: str, *, patience: float) -> Iterator[None]:
    """In a worker: point every Prefect client of this process at the shared server, as
    ``prefect_test_harness`` points them at its own (settings, the process-global settings
    context); drain the log and event workers at the end."""
    import prefect.context
    import prefect.settings
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    from tests.prefect_processes import http_ok, wait_until

    wait_until(lambda: http_ok(f"{url}/health"), patience, f"the shared Prefect API at {url}")
    with ExitStack() as stack:
        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={
                    prefect.settings.PREFECT_API_URL: url,
                    prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: database,
                }
            )
        )
        temporary_global = getattr(prefect.context, "_temporary_global_settings_context", None)
        if temporary_global is not None:  # Prefect 3.6+ (the harness does the same)
            stack.enter_context(temporary_global(prefect.context.get_settings_context()))
        yield

        async def drain() -> None:
            with suppress(RuntimeError):  # never started
                result = APILogWorker.instance().drain()
                if inspect.isawaitable(result):
                    await result
            result = EventsWorker.drain_all()
            if inspect.isawaitable(result):
                await result

        run_coro_as_sync(drain())
