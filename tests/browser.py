"""A real browser for tests: Playwright driving the system's chromium, one per test module.

Registered as a plugin in tests/conftest.py, so any test can ask for ``browser`` (module) or
``browser_page`` (a fresh context and page per test, closed afterwards). Playwright's own
browser download needs the network, so it launches Debian's chromium (``apt-get install
chromium``; ``AUTOTALK_TEST_CHROMIUM`` names another binary). Without a browser the tests skip
with the reason; in CI (``CI=true``) they fail instead, so a missing install is never silent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("AUTOTALK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_TIMEOUT_MS = 15_000


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs a browser for these tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium per test module (launching costs ~1 s).

    Not per session: Playwright's sync API keeps an asyncio loop running in the main thread for
    as long as it is open, and every later test that runs a loop of its own (``asyncio.run``,
    an async flow, an async task) would then fail with "cannot be called from a running event
    loop". Closed at the end of the module, it leaves no loop behind.
    """
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (it is in the dev extra: make install)")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        except Error as exc:
            _unavailable(f"chromium at {CHROMIUM} did not start: {exc}")
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser_page(browser: Browser) -> Iterator[Page]:
    """A fresh page (own cookies and storage) in the session's browser, 1280x800."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
