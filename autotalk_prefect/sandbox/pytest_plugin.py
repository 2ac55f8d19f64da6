"""pytest plugin (entry point ``pytest11: autotalk_sandbox``): test your flows against a sandbox.

Fixtures:

- ``autotalk_sandbox_server`` (session): one sandbox on a free loopback port for the whole run.
- ``autotalk_sandbox`` (function): the same server, with its state reset and faults cleared
  before the test, so every test starts from the seeded data.
- ``autotalk_sandbox_env`` (function): ``autotalk_sandbox`` plus ``AUTOTALK_API_KEY`` and
  ``AUTOTALK_BASE_URL`` pointing at it, so code that reads ``AutoTalkSettings`` finds it.
- ``autotalk_sandbox_config`` (session): the ``SandboxConfig`` used; override it in your
  conftest.py to change the key, seed or number of contacts.

The sandbox is imported lazily, so merely having the plugin installed costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from autotalk_prefect.sandbox.config import SandboxConfig
    from autotalk_prefect.sandbox.server import SandboxHandle


@pytest.fixture(scope="session")
def autotalk_sandbox_config() -> SandboxConfig:
    """Start-up settings of the session's sandbox (key ``sk-test``, seed 0, 25 contacts)."""
    from autotalk_prefect.sandbox.config import SandboxConfig

    return SandboxConfig()


@pytest.fixture(scope="session")
def autotalk_sandbox_server(autotalk_sandbox_config: SandboxConfig) -> Iterator[SandboxHandle]:
    """One sandbox for the session (uvicorn on 127.0.0.1, a free port)."""
    from autotalk_prefect.sandbox.server import run_sandbox

    with run_sandbox(config=autotalk_sandbox_config) as handle:
        yield handle


@pytest.fixture
def autotalk_sandbox(autotalk_sandbox_server: SandboxHandle) -> SandboxHandle:
    """The session's sandbox, reset to its seeded state with no faults."""
    autotalk_sandbox_server.reset()
    autotalk_sandbox_server.clear_faults()
    return autotalk_sandbox_server


@pytest.fixture
def autotalk_sandbox_env(
    autotalk_sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> SandboxHandle:
    """``autotalk_sandbox`` with ``AUTOTALK_API_KEY``/``AUTOTALK_BASE_URL`` set to reach it."""
    monkeypatch.setenv("AUTOTALK_API_KEY", autotalk_sandbox.api_key)
    monkeypatch.setenv("AUTOTALK_BASE_URL", autotalk_sandbox.base_url)
    return autotalk_sandbox
