"""One real sandbox (uvicorn on loopback) per test module; state reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from autotalk_prefect.sandbox import SandboxHandle, run_sandbox

API_KEY = "sk-test"


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxHandle]:
    with run_sandbox(api_key=API_KEY, seed=0, contacts=25) as handle:
        yield handle


@pytest.fixture
def api(sb: SandboxHandle) -> Iterator[httpx.Client]:
    sb.reset()
    sb.clear_faults()
    with httpx.Client(base_url=sb.base_url, headers={"x-api-key": API_KEY}, timeout=10) as client:
        yield client


@pytest.fixture
def admin(sb: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sb.root_url}/_sandbox", timeout=10) as client:
        yield client
