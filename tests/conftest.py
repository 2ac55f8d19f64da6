"""Session-wide test setup: one Prefect test harness for the whole run (it costs ~10 s)."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("DO_NOT_TRACK", "1")

from collections.abc import Iterator

import pytest

# ``browser`` / ``browser_page``: a real chromium, for any test that asks (tests/browser.py).
pytest_plugins = ("tests.browser",)


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    """A real (ephemeral, SQLite) Prefect API for the session; tests that run flows use it.

    Flow-run heartbeats are off in this process, as in Prefect's own test profile
    (PrefectHQ/prefect#21062): on by default (every 180 s, PrefectHQ/prefect#21058), their
    thread sleeps in 1 s steps and is joined when a sync flow run ends, so every flow run would
    end up to 1 s late. Nothing here tests them; child processes keep Prefect's default.
    """
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    # Prefect < 3.6 has no flow-run heartbeats (nor their setting): nothing to switch off there.
    heartbeat = getattr(prefect.settings, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    with (
        prefect.settings.temporary_settings(
            updates={heartbeat: None} if heartbeat is not None else {}
        ),
        prefect_test_harness(server_startup_timeout=180),  # polled: a bound for loaded machines
    ):
        yield
