"""Real processes for tests: ``prefect server start``, background CLIs, bounded waits, log tails.

Shared by the tests that need a real Prefect server rather than the session's test harness
(a global concurrency limit seen by several processes, deployments run by a worker). Each
process gets its own output file so a failing test can show what the process said.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prefect.settings.models.server.services import ServerServicesSettings

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]

#: How long a live process may take to reach the state a test waits for (a server answering, a
#: worker online, a flow run terminal). A bound against a hang, not a statement about speed: on
#: a 2-core machine running the suite's four workers, a Prefect server has taken over 120 s to
#: answer its health check. A process that exits fails the wait at once, whatever the bound.
PATIENCE_S = 600.0
SERVER_STARTUP_S = PATIENCE_S
#: every server loop service `prefect server start` knows (``PREFECT_SERVER_SERVICES_<NAME>_ENABLED``)
SERVER_SERVICES = tuple(sorted(ServerServicesSettings.model_fields))


def deployments_layout_copy(project: Path) -> Path:
    """The repository's ``flows/`` and ``deployments/`` (its link included) copied into ``project``.

    ``prefect deploy`` run there records ``project`` as the flows' working directory, so the
    flow runs' files (ledgers) land in the test's temporary directory, not in the checkout.
    """
    for part in ("flows", "deployments"):
        shutil.copytree(
            REPO / part, project / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    return project


def working_directory_pull_steps(directory: Path) -> list[dict[str, Any]]:
    """The pull steps ``prefect deploy`` records for a yaml without a ``pull`` section."""
    step = {"directory": str(directory.resolve())}
    return [{"prefect.deployments.steps.set_working_directory": step}]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (free now; the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any ``PREFECT_*`` setting, plus ``overrides``.

    Child processes must talk to the server the test names, never to the session's harness or
    a profile's server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(overrides)
    return env


def server_log(home: Path) -> Path:
    """Where ``prefect_server(home)`` writes the server's output."""
    return home / "server.log"


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a process's output file, for assertion messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path.name}: no output file)"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last {lines} lines of {path.name} ---\n{tail}"


def wait_until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.3,
    diagnostics: Callable[[], str] = lambda: "",
) -> T:
    """Call ``probe`` until it returns something other than None/False; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{diagnostics()}")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the process's session (it and its children), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def background(
    command: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own session, output to ``log``; stopped (with its children) on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process)


def http_ok(url: str) -> bool:
    """True if ``GET url`` answers 200 (False while the server is not up yet)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def prefect_server(
    home: Path, services: Collection[str] = (), *, ui: bool = False
) -> Iterator[str]:
    """``prefect server start`` on a free loopback port with its own SQLite database.

    Yields the API URL (``http://127.0.0.1:PORT/api``). ``services`` names the server loop
    services to run (names of ``SERVER_SERVICES``, e.g. ``{"triggers"}`` for automations);
    every other one is off. Without any, the server runs with ``--no-services``. ``ui=True``
    serves the Prefect UI at ``http://127.0.0.1:PORT/``, pointed at this port's API. Output
    goes to ``server_log(home)``.
    """
    unknown = set(services) - set(SERVER_SERVICES)
    if unknown:
        raise ValueError(f"unknown Prefect server services {sorted(unknown)}; {SERVER_SERVICES}")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_UI_ENABLED=str(ui).lower(),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="CRITICAL" if ui else "WARNING",
        PREFECT_API_EVENTS_STREAM_OUT_ENABLED="false",
    )
    if ui:  # the UI's scripts call this API (the default names port 4200)
        env["PREFECT_UI_API_URL"] = url
    for name in SERVER_SERVICES:
        env[f"PREFECT_SERVER_SERVICES_{name.upper()}_ENABLED"] = str(name in services).lower()
    command = [sys.executable, "-m", "prefect", "server", "start"]
    if not services:
        command.append("--no-services")
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = server_log(home)
    with background(command, env=env, log=log) as process:

        def up() -> bool:
            assert process.poll() is None, f"prefect server start exited\n{log_tail(log)}"
            return http_ok(f"{url}/health")

        wait_until(up, SERVER_STARTUP_S, "prefect server start", diagnostics=lambda: log_tail(log))
        yield url
