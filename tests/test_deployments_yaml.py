"""deployments/prefect.yaml: every deployment loads, its parameters fit the flow, and its
schedules and triggers are what Prefect accepts (the same models `prefect deploy` builds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prefect.client.schemas.schedules import construct_schedule
from prefect.events import DeploymentEventTrigger
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENTS = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())["deployments"]


def test_every_prebuilt_flow_is_deployed() -> None:
    entrypoints = {d["entrypoint"] for d in DEPLOYMENTS}
    assert entrypoints == {
        "flows/outreach.py:outreach_campaign",
        "flows/onboarding.py:onboard_contact",
        "flows/replies.py:handle_reply",
        "flows/sync.py:sync_to_warehouse",
        "flows/warehouse_in.py:sync_from_warehouse",
        "flows/reminders.py:schedule_reminders",
        "flows/reminders.py:schedule_follow_up",
        "flows/reminders.py:send_reminder",
    }
    for deployment in DEPLOYMENTS:
        assert deployment["work_pool"]["name"] == "autotalk-process"
        assert "credentials" not in deployment.get("parameters", {})  # no key in parameters


@pytest.mark.floor
@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_parameters_fit_the_flow(deployment: dict[str, Any]) -> None:
    flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
    schema = parameter_schema(flow).model_dump_for_openapi()
    parameters = deployment.get("parameters", {})
    for trigger in deployment.get("triggers", []):
        parameters = {**parameters, **trigger.get("parameters", {})}
    templated = {k for k, v in parameters.items() if "{{" in str(v)}
    concrete = {k: v for k, v in parameters.items() if k not in templated}
    # the reminder sender's runs are made by the schedulers, each with its own parameters
    made_by_flows = deployment["name"] == "autotalk-reminders-send"
    required = set() if made_by_flows else set(schema.get("required", [])) - templated
    jsonschema.validate(concrete, {**schema, "required": sorted(required)})
    if not made_by_flows:
        flow.validate_parameters({**concrete, **{k: _example(k) for k in templated}})


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_parameters_survive_prefect_deploy_templating(deployment: dict[str, Any]) -> None:
    # `prefect deploy` fills `{{ placeholders }}` in a deployment's fields from its steps'
    # outputs and drops the ones it does not know: a Jinja `{{ name }}` would vanish.
    from prefect.utilities.templating import apply_values

    parameters = deployment.get("parameters", {})
    assert apply_values(parameters, {}, skip_prefixes=["ctx."]) == parameters


def _example(name: str) -> Any:
    """What a trigger's template renders to, for the parameter models to validate."""
    if name == "event":
        return {
            "id": "evt-1",
            "event": "message.received",
            "client": {"_id": "a" * 24, "name": "Ana"},
            "message": {"_id": "b" * 24, "conversationId": "c" * 24, "text": "STOP"},
        }
    if name == "event_name":
        return "autotalk.appointment.scheduled"
    if name == "occurred":
        return "2026-12-03 10:00:00+00:00"
    if name == "record":
        return {"clientId": "a" * 24, "subject": "Onboarding Ana", "priority": "normal"}
    return "evt-1"


@pytest.mark.floor
@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_schedules_and_triggers_are_well_formed(deployment: dict[str, Any]) -> None:
    for schedule in deployment.get("schedules", []):
        built = construct_schedule(
            cron=schedule.get("cron"),
            interval=schedule.get("interval"),
            timezone=schedule.get("timezone"),
        )
        assert built is not None
    for trigger in deployment.get("triggers", []):
        spec = {k: v for k, v in trigger.items() if k != "type"}
        built_trigger = DeploymentEventTrigger(**spec)
        resources = built_trigger.match.root["prefect.resource.id"]
        if deployment["entrypoint"] == "flows/warehouse_in.py:sync_from_warehouse":
            # after the warehouse load: a Prefect flow run's completion, not an AutoTalk event
            assert built_trigger.expect == {"prefect.flow-run.Completed"}
            assert resources == "prefect.flow-run.*" and not built_trigger.enabled
            continue
        assert built_trigger.expect and all(e.startswith("autotalk.") for e in built_trigger.expect)
        assert "autotalk.contact.*" in ([resources] if isinstance(resources, str) else resources)
    # the reminder sender runs only as the scheduled runs the two schedulers make
    made_by_flows = deployment["name"] == "autotalk-reminders-send"
    assert deployment.get("schedules") or deployment.get("triggers") or made_by_flows


def test_serve_builds_the_same_deployments_with_the_block_as_a_reference() -> None:
    import importlib.util

    from pydantic import SecretStr

    from autotalk_prefect.credentials import AutoTalkCredentials

    AutoTalkCredentials(
        api_key=SecretStr("sk-serve-test-91"), base_url="http://127.0.0.1:9/v1"
    ).save("serve-test", overwrite=True)
    spec = importlib.util.spec_from_file_location("serve_script", REPO / "deployments" / "serve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.runner_deployments("serve-test")
    assert [d.name for d in built] == [d["name"] for d in DEPLOYMENTS]
    replies = next(d for d in built if d.name == "autotalk-replies")
    assert replies.triggers and replies.triggers[0].expect == {"autotalk.message.received"}
    weekly = next(d for d in built if d.name == "autotalk-outreach-weekly")
    assert weekly.schedules and weekly.parameters["campaign_id"] == "weekly-offer"
    stored = weekly.model_dump_json(context={"serialize_blocks_as_references": True})
    assert "sk-serve-test-91" not in stored and "block_document_id" in stored
