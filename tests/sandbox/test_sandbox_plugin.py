"""The pytest plugin, loaded through its pytest11 entry point, gives working fixtures."""

from __future__ import annotations

import os
from importlib.metadata import entry_points

import httpx

from autotalk_prefect.sandbox import SandboxHandle


def test_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("autotalk_sandbox") == "autotalk_prefect.sandbox.pytest_plugin"


def test_function_fixture_starts_clean(autotalk_sandbox: SandboxHandle) -> None:
    contact = autotalk_sandbox.contact_ids()[0]
    response = httpx.post(
        f"{autotalk_sandbox.base_url}/contacts/{contact}/send_message",
        json={"message": "from a user's test"},
        headers={"x-api-key": autotalk_sandbox.api_key},
    )
    assert response.status_code == 201
    autotalk_sandbox.set_faults(error_rate=1.0)
    assert len(autotalk_sandbox.sent_messages()) == 1


def test_state_and_faults_do_not_leak_between_tests(
    autotalk_sandbox: SandboxHandle, autotalk_sandbox_server: SandboxHandle
) -> None:
    assert autotalk_sandbox is autotalk_sandbox_server
    assert autotalk_sandbox.sent_messages() == []
    assert not autotalk_sandbox.faults().active


def test_env_fixture_points_settings_at_the_sandbox(autotalk_sandbox_env: SandboxHandle) -> None:
    assert os.environ["AUTOTALK_BASE_URL"] == autotalk_sandbox_env.base_url
    response = httpx.get(
        f"{os.environ['AUTOTALK_BASE_URL']}/self",
        headers={"x-api-key": os.environ["AUTOTALK_API_KEY"]},
    )
    assert response.status_code == 200
