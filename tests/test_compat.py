"""autotalk_prefect._compat: each bridge gives the same result on the installed Prefect, whichever
release it is (`make test-floor` runs this file on the floor of pyproject.toml, `make test` on the
latest)."""

# No ``from __future__ import annotations``: a flow validates its parameters against the
# annotations as objects (as in the package's flow modules).

import asyncio
import time
from typing import Any

import pytest
import typer
from prefect import flow
from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate
from pydantic import SecretStr

from autotalk_prefect._compat import (
    TyperException,
    block_reference,
    event_value,
    refresh_settings_context,
    runner_add_flow,
    runner_stop,
)
from autotalk_prefect.credentials import AutoTalkCredentials

pytestmark = pytest.mark.floor

PAYLOAD = {"id": "evt-1", "client": {"_id": "c1", "tags": ["vip"]}, "count": 2, "ok": True}


def test_event_value_hydrates_to_the_payload_object_as_the_server_does() -> None:
    # the same hydration a Prefect server applies to a triggered run's parameters
    context = HydrationContext(render_jinja=True, jinja_context={"event": {"payload": PAYLOAD}})
    parameters = {"event": event_value("event.payload"), "n": event_value("event.payload.count")}
    assert hydrate(parameters, context) == {"event": PAYLOAD, "n": 2}


@flow
def takes(credentials: AutoTalkCredentials) -> str:
    return credentials.api_key.get_secret_value()


def test_block_reference_resolves_to_the_block_with_its_secret() -> None:
    block = AutoTalkCredentials(
        api_key=SecretStr("sk-compat-ref"), base_url="http://127.0.0.1:9/v1"
    )
    with pytest.raises(ValueError, match="must be saved"):
        block_reference(block)
    block.save("compat-reference", overwrite=True)
    reference = block_reference(AutoTalkCredentials.load("compat-reference"))
    assert "sk-compat-ref" not in str(reference)

    # what a flow run does with its stored parameters before it calls the function
    resolved = takes.validate_parameters({"credentials": reference})
    assert resolved["credentials"].api_key.get_secret_value() == "sk-compat-ref"


def test_refresh_settings_context_reads_the_environment_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prefect.context

    def global_level() -> str:  # what code outside any settings context sees
        return str(prefect.context.GLOBAL_SETTINGS_CONTEXT.settings.logging.level)

    other = "ERROR" if global_level() != "ERROR" else "WARNING"
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", other)
    try:
        refresh_settings_context()
        assert global_level() == other
    finally:
        monkeypatch.delenv("PREFECT_LOGGING_LEVEL")
        refresh_settings_context()
    assert global_level() != other


def test_runner_add_flow_registers_a_deployment_and_runner_stop_ends_start() -> None:
    from prefect.client.orchestration import get_client
    from prefect.runner import Runner

    @flow(name="autotalk-compat-served")
    def served() -> None:
        return None

    async def scenario() -> Any:
        runner = Runner(name="autotalk-compat", query_seconds=1)
        deployment_id = await runner_add_flow(runner, served, name="compat")
        serving = asyncio.create_task(runner.start(webserver=False))
        deadline = time.monotonic() + 120  # polled: a bound for a loaded machine
        while not runner.started:
            assert not serving.done() and time.monotonic() < deadline, "the runner did not start"
            await asyncio.sleep(0.05)
        await runner_stop(runner)
        await asyncio.wait_for(serving, timeout=120)
        async with get_client() as client:
            return await client.read_deployment(deployment_id)

    deployment = asyncio.run(scenario())
    assert deployment.name == "compat"


def test_typer_usage_errors_share_the_compat_base() -> None:
    assert issubclass(typer.BadParameter, TyperException)
    assert not issubclass(typer.Exit, TyperException)  # exits are re-raised on their own
