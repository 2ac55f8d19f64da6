"""Session-wide test setup: one Prefect test harness for the whole run (it costs ~10 s)."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("DO_NOT_TRACK", "1")
# dlt keeps each pipeline's state (its incremental cursors) under ~/.dlt by pipeline name: one
# folder per test process, or two pytest-xdist workers syncing "autotalk" at once share a cursor
os.environ.setdefault("DLT_DATA_DIR", tempfile.mkdtemp(prefix="autotalk-tests-dlt-"))

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
        # generous: under pytest-xdist every worker starts its own harness on a busy machine
        prefect_test_harness(server_startup_timeout=600),
    ):
        yield


# The files whose tests wait on real processes, schedules or a browser, slowest first. They run
# first, so that under pytest-xdist (`make test`: one file per worker at a time) their waits
# overlap the rest of the suite instead of ending it; `make test-fast` leaves them out.
SLOW_FILES = (
    "tests/test_e2e.py",
    "tests/test_ui_screenshots.py",
    "tests/test_scale_rate_limit.py",
    "tests/test_scale_dask.py",
    "tests/test_demo.py",
    "tests/sandbox/test_inbox_browser.py",
    "tests/test_outreach_exactly_once.py",
    "tests/soak/test_soak.py",
    "tests/sandbox/test_sandbox_cli.py",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: real processes, schedules or a browser (SLOW_FILES)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(SLOW_FILES)}
    root = config.rootpath

    def file_rank(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(root).as_posix(), len(SLOW_FILES))

    for item in items:
        if file_rank(item) < len(SLOW_FILES):
            item.add_marker(pytest.mark.slow)
    items.sort(key=file_rank)  # stable: the order inside a file and among the rest is kept
