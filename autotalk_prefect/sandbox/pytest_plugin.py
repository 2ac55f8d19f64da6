"""pytest plugin (entry point ``pytest11: autotalk_sandbox``): test your flows against a sandbox.

Fixtures:

- ``autotalk_sandbox_server`` (session): one sandbox on a free loopback port for the whole run.
- ``autotalk_sandbox`` (function): the same server, with its state reset and faults cleared
  before the test, so every test starts from the seeded data.
- ``autotalk_sandbox_env`` (function): ``autotalk_sandbox`` plus ``AUTOTALK_API_KEY`` and
  ``AUTOTALK_BASE_URL`` pointing at it, so code that reads ``AutoTalkSettings`` finds it.
- ``autotalk_sandbox_config`` (session): the ``SandboxConfig`` used; override it in your
  conftest.py to change the key, seed or number of contacts.
- ``autotalk_sandbox_in`` (function): a callable, ``autotalk_sandbox_in("cursor")``, giving the
  sandbox that speaks that dialect (one server per dialect for the session, started on first
  use), reset with no faults. Use ``handle.auth_headers()`` for the header it wants.
- ``autotalk_sandbox_each_dialect`` (function, parametrized over ``SANDBOX_DIALECTS``): a test
  that takes it runs once per dialect, ids ``[contract]``, ``[mongoose]``...
- ``autotalk_sandbox_paged`` (function): a callable, ``autotalk_sandbox_paged("json_link")``,
  giving a contract sandbox whose every list endpoint pages that way (``SANDBOX_PAGE_STYLES``;
  ``max_page_size=`` caps its pages lower), one server per style and cap, reset, no faults.
  Page styles change only paging, so they are options for cheap client tests, not dialects that
  every flow test runs again.

``SANDBOX_DIALECTS`` (importable from this module) lists the dialects, for
``@pytest.mark.parametrize("dialect", SANDBOX_DIALECTS)`` with ``autotalk_sandbox_in(dialect)``.

The sandbox is imported lazily, so merely having the plugin installed costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from autotalk_prefect.sandbox.config import SandboxConfig
    from autotalk_prefect.sandbox.server import SandboxHandle

#: the sandbox's dialects (sandbox/dialects.py DIALECT_NAMES; spelled out so that importing the
#: plugin does not import the sandbox)
SANDBOX_DIALECTS: tuple[str, ...] = ("contract", "mongoose", "cursor", "minimal")
#: the sandbox's page styles (sandbox/page_styles.py SERVED_STYLE_NAMES, spelled out likewise)
SANDBOX_PAGE_STYLES: tuple[str, ...] = (
    "json_link",
    "header_link",
    "cursor",
    "header_cursor",
    "offset",
    "page",
)


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


class DialectSandboxes:
    """One sandbox per dialect (or page style and cap), started on first use, all closed at the
    end of the session."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._stack = contextlib.ExitStack()
        self._handles: dict[tuple[str, str | None, int | None], SandboxHandle] = {}

    def get(
        self, dialect: str, paging: str | None = None, max_page_size: int | None = None
    ) -> SandboxHandle:
        from autotalk_prefect.sandbox.server import run_sandbox

        key = (dialect, paging, max_page_size)
        if key not in self._handles:
            cap = self.config.max_page_size if max_page_size is None else max_page_size
            # an unknown name is refused here
            config = replace(self.config, dialect=dialect, paging=paging, max_page_size=cap)
            self._handles[key] = self._stack.enter_context(run_sandbox(config=config))
        return self._handles[key]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def autotalk_sandbox_dialects(autotalk_sandbox_config: SandboxConfig) -> Iterator[DialectSandboxes]:
    """The session's per-dialect sandboxes (prefer ``autotalk_sandbox_in``, which resets)."""
    servers = DialectSandboxes(autotalk_sandbox_config)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
def autotalk_sandbox_in(
    autotalk_sandbox_dialects: DialectSandboxes,
) -> Callable[[str], SandboxHandle]:
    """``autotalk_sandbox_in(dialect)``: that dialect's sandbox, reset with no faults."""

    def get(dialect: str) -> SandboxHandle:
        handle = autotalk_sandbox_dialects.get(dialect)
        handle.reset()
        handle.clear_faults()
        return handle

    return get


@pytest.fixture
def autotalk_sandbox_paged(
    autotalk_sandbox_dialects: DialectSandboxes,
) -> Callable[..., SandboxHandle]:
    """``autotalk_sandbox_paged(style, max_page_size=None)``: a contract sandbox whose list
    endpoints page in ``style``, reset with no faults."""

    def get(style: str, max_page_size: int | None = None) -> SandboxHandle:
        handle = autotalk_sandbox_dialects.get("contract", style, max_page_size)
        handle.reset()
        handle.clear_faults()
        return handle

    return get


@pytest.fixture(params=SANDBOX_DIALECTS, ids=list(SANDBOX_DIALECTS))
def autotalk_sandbox_each_dialect(
    request: pytest.FixtureRequest, autotalk_sandbox_in: Callable[[str], SandboxHandle]
) -> SandboxHandle:
    """A reset sandbox in each dialect in turn (the test runs once per dialect)."""
    return autotalk_sandbox_in(str(request.param))
