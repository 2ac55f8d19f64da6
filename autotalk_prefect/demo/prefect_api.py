"""Prefect's ephemeral API for the demo: one local server process, quiet, and stopped cleanly.

The demo starts the server itself (rather than letting each Prefect client start its own) so that
flows, the webhook receiver's events, the automation and the runner all share one API.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from autotalk_prefect._compat import refresh_settings_context  # imports Prefect only when called

QUIET_ENVIRONMENT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "DO_NOT_TRACK": "1",
    # Every log still reaches the Prefect API (the UI shows each run's logs, retries included);
    # the terminal shows the demo's own report, which names every failed check. An expected
    # failure (the invalid record the demo feeds on purpose, a 409 on a re-run) is no noise there.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "autotalk_prefect",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
}


def prepare_environment(prefect_home: Path) -> None:
    """Set the quiet defaults and an isolated Prefect home before Prefect is imported."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(prefect_home.resolve()))
    if "prefect.context" in sys.modules:  # imported already (by another command's module)
        refresh_settings_context()


@contextlib.contextmanager
def ephemeral_prefect_api(timeout_seconds: int = 90) -> Iterator[str]:
    """Start Prefect's temporary server and point every Prefect client at it; yield its API URL.

    With PREFECT_API_URL already set (a real server), use that one instead and start nothing.
    """
    from prefect.logging.configuration import setup_logging
    from prefect.settings import PREFECT_API_URL, temporary_settings

    setup_logging(incremental=False)
    existing = PREFECT_API_URL.value()
    if existing:
        yield existing
        return

    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=timeout_seconds)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            os.environ["PREFECT_API_URL"] = server.api_url  # for subprocesses (the runner's flows)
            yield server.api_url
    finally:
        _drain_to(server.api_url)
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _drain_to(api_url: str) -> None:
    """Deliver buffered logs and events while the server is still up.

    Prefect's log and event workers otherwise drain at interpreter exit, after the server has
    stopped, and spend a minute retrying a closed port before the process can end.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        APILogWorker.drain_all(timeout=10, at_exit=False)
        EventsWorker.drain_all(timeout=10, at_exit=False)
