"""What a user sees in the Prefect UI after the demo's flows ran (issue 17), read back through
the Prefect client: run names and tags, every artifact keyed and described, nothing failed
where the outcome was designed (a refused record, an existing item, a re-run), and the
completion events emitted with their counts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.states import State

import autotalk_prefect.flows.runinfo as runinfo
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows import handle_reply, onboard_contact, outreach_campaign
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle

WELCOME = "Welcome aboard, {{ name }}!"


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A spy on the completion events (the real emit still runs)."""
    calls: list[dict[str, Any]] = []
    real = runinfo.emit_event

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(runinfo, "emit_event", spy)
    return calls


async def _read(flow_run_id: UUID) -> tuple[Any, list[Any], list[Any]]:
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        tasks = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return run, tasks, artifacts


def _seen(state: State[Any]) -> tuple[Any, list[Any], list[Any]]:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    run, tasks, artifacts = asyncio.run(_read(flow_run_id))
    assert state.is_completed(), state.message
    assert run.state.is_completed()
    failed = [t.name for t in tasks if t.state is not None and not t.state.is_completed()]
    assert failed == [], f"{run.name}: failed tasks {failed}"
    assert artifacts, f"{run.name}: no artifact"
    for artifact in artifacts:
        if artifact.type == "progress":
            assert artifact.key and artifact.description
            continue
        assert artifact.key, (run.name, artifact.type)
        assert artifact.description, (run.name, artifact.key)
    assert "autotalk" in run.tags
    return run, tasks, artifacts


def test_the_demo_flows_read_at_a_glance(
    autotalk_sandbox: SandboxHandle, tmp_path: Path, emitted: list[dict[str, Any]]
) -> None:
    creds = AutoTalkCredentials(
        api_key=autotalk_sandbox.api_key, base_url=autotalk_sandbox.base_url
    )
    ledger = str(tmp_path / "ledger")
    common: dict[str, Any] = {"credentials": creds, "ledger_storage": ledger}

    # onboarding: a refused record, a new client, the same client again (the 409 path)
    refused = onboard_contact("clients", {"name": "Ana Demo"}, WELCOME, return_state=True, **common)
    run, _, artifacts = _seen(refused)
    assert run.name == "onboard-clients-ana-demo" and {"onboarding", "clients"} <= set(run.tags)
    assert refused.result().refused
    assert any("refused by validation" in (a.description or "") for a in artifacts)

    record = {"name": "Bo Demo", "phone": "+15550100777"}
    first = onboard_contact("clients", record, WELCOME, return_state=True, **common)
    again = onboard_contact("clients", record, WELCOME, return_state=True, **common)
    _seen(first)
    run, tasks, artifacts = _seen(again)  # the existing item: a result, not a failed task
    assert any(t.name == "create_dynadata_item-clients" for t in tasks)
    (summary,) = [a for a in artifacts if a.type == "markdown"]
    assert "Bo Demo" in summary.description and "already existed" in summary.description
    assert "+15550100777" not in str(summary.data)

    # outreach under 429s and 503s, then its re-run
    autotalk_sandbox.set_faults(
        FaultConfig(
            rate_429=0.1,
            error_rate=0.05,
            error_statuses=(503,),
            retry_after_on_503=True,
            retry_after_seconds=0.01,
            methods=("POST",),
            path_pattern="send_message",
            seed=3,
        )
    )
    params: dict[str, Any] = {"campaign_id": "ui-story", "message_template": "Hi {{ name }}"}
    one = outreach_campaign(**params, chunk_size=10, return_state=True, **common)
    two = outreach_campaign(**params, chunk_size=10, return_state=True, **common)
    autotalk_sandbox.clear_faults()
    run, tasks, artifacts = _seen(one)
    assert run.name == "outreach-ui-story" and {"outreach", "ui-story"} <= set(run.tags)
    total = one.result().total
    assert sorted(t.name for t in tasks)[0] == "send-chunk-1-10-contacts"
    assert one.result().retries, "the injected faults were retried and counted"
    descriptions = {a.key: a.description for a in artifacts}
    assert descriptions["outreach-ui-story-summary"].startswith(
        f"{total} sent, 0 failed, 0 unknown of {total}; "
    )
    assert "outreach-ui-story-outcomes" not in descriptions  # nothing per contact to show
    _, _, artifacts = _seen(two)
    (rerun,) = [a for a in artifacts if a.key == "outreach-ui-story-summary"]
    assert rerun.description.startswith(f"0 sent, {total} already sent")

    # a reply: the run is renamed once the rule is known; the artifact is keyed
    contact = autotalk_sandbox.contact_ids()[0]
    inbound = autotalk_sandbox.simulate_reply(contact, "STOP")
    payload = {
        "id": "evt-ui-story",
        "event": "message.received",
        "client": {"_id": contact, "name": "Cy Customer"},
        "message": {
            "_id": inbound.get("_id"),
            "conversationId": inbound.get("conversationId"),
            "text": "STOP",
        },
    }
    reply = handle_reply(payload, credentials=creds, ledger_storage=ledger, return_state=True)
    run, _, artifacts = _seen(reply)
    assert run.name.startswith("reply-") and run.name.endswith("-cy-customer")
    assert reply.result().rule and reply.result().rule.lower() in run.name
    assert [a.key for a in artifacts] == ["reply-evt-ui-story"]
    assert "Cy Customer" in (artifacts[0].description or "")

    # the completion events, with their counts and named resources
    by_event: dict[str, list[dict[str, Any]]] = {}
    for call in emitted:
        by_event.setdefault(call["event"], []).append(call)
    campaign = by_event["autotalk.campaign.completed"]
    assert [c["payload"]["sent"] for c in campaign] == [total, 0]
    assert campaign[0]["resource"] == {
        "prefect.resource.id": "autotalk.campaign.ui-story",
        "prefect.resource.name": "ui-story",
    }
    onboarding = by_event["autotalk.onboarding.completed"]
    assert [c["payload"]["refused"] for c in onboarding] == [1, 0, 0]
    assert [c["payload"]["created"] for c in onboarding] == [0, 1, 0]
    assert onboarding[1]["resource"]["prefect.resource.name"] == "Bo Demo"
    (handled,) = by_event["autotalk.reply.handled"]
    assert handled["related"][0]["prefect.resource.name"] == "Cy Customer"
