"""The demo's event step: a customer's reply travels the whole path a production setup uses.

sandbox webhook -> our receiver -> Prefect event ``autotalk.message.received`` -> the server's
automation (a deployment trigger) -> a flow run of the replies deployment, executed by a runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import SecretStr

from autotalk_prefect._compat import block_reference, event_value, runner_add_flow, runner_stop
from autotalk_prefect.demo.context import DemoContext
from autotalk_prefect.serving import serve_in_thread
from autotalk_prefect.webhooks import WebhookSettings, create_webhook_app

DEPLOYMENT_NAME = "autotalk-demo-replies"
EVENT_NAME = "autotalk.message.received"


@dataclass
class RoundTrip:
    """What the event step observed."""

    flow_run_name: str | None
    flow_run_state: str | None
    contact_status: str | None
    answers: int


@contextlib.contextmanager
def _serving_runner(flow: Any, block: Any) -> Iterator[UUID]:
    """Serve ``flow`` as a deployment triggered by inbound-message events, in a thread."""
    from prefect.events import DeploymentEventTrigger
    from prefect.runner import Runner
    from prefect.types.entrypoint import EntrypointType

    # Its websocket is cut when the demo stops the API, which is expected, not worth a traceback.
    logging.getLogger("prefect.FlowRunCancellingObserver").setLevel(logging.ERROR)
    loop = asyncio.new_event_loop()
    runner = Runner(name="autotalk-demo", query_seconds=1, limit=2)
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def serve() -> None:
        try:
            ready["deployment_id"] = await runner_add_flow(
                runner,
                flow,
                name=DEPLOYMENT_NAME,
                # the installed package's module path: the flow's file is in site-packages, not
                # under the working directory a file-path entrypoint would be relative to
                entrypoint_type=EntrypointType.MODULE_PATH,
                description="The demo's reply handler: runs handle_reply for each inbound "
                "customer message (autotalk.message.received) the webhook receiver emits.",
                tags=["autotalk", "replies", "demo"],
                parameters={"credentials": block_reference(block)},
                triggers=[
                    DeploymentEventTrigger(
                        name="autotalk-demo: reply received -> handle_reply",
                        description="Runs the replies deployment with the event's payload for "
                        "every autotalk.message.received event about a contact.",
                        expect={EVENT_NAME},
                        match={"prefect.resource.id": "autotalk.contact.*"},
                        parameters={
                            "event": event_value("event.payload"),
                            "event_id": "{{ event.id | string }}",
                        },
                    )
                ],
            )
        except BaseException as exc:
            ready["error"] = exc
            raise
        finally:
            started.set()
        await runner.start(webserver=False)

    thread = threading.Thread(
        target=lambda: loop.run_until_complete(serve()), name="autotalk-demo-runner", daemon=True
    )
    thread.start()
    started.wait(timeout=60)
    if "deployment_id" not in ready:
        raise RuntimeError(f"the replies deployment could not be served: {ready.get('error')!r}")
    try:
        yield ready["deployment_id"]
    finally:
        _wait_until_idle(runner, timeout=60)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(runner_stop(runner), loop).result(timeout=15)
        thread.join(timeout=15)


def _wait_until_idle(runner: Any, timeout: float) -> None:
    """Wait for the runner's flow-run processes to exit before stopping it.

    A run's Completed state is stored before its process ends; stopping the runner then cancels
    the still-tracked run ("Runner is shutting down"), turning a finished run Cancelled.
    """
    manager = getattr(runner, "_process_manager", None)
    count = getattr(manager, "flow_run_count", None)
    if count is None:  # another Prefect version: nothing to wait on
        return
    deadline = time.monotonic() + timeout
    while count() and time.monotonic() < deadline:
        time.sleep(0.2)


def _runs_of(deployment_id: UUID) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def _wait_for_run(
    deployment_id: UUID, earlier: set[UUID], timeout: float
) -> tuple[str | None, str | None]:
    """Wait for a new flow run of the deployment to finish; (name, state type) or Nones."""
    deadline = time.monotonic() + timeout
    name: str | None = None
    state: str | None = None
    while time.monotonic() < deadline:
        runs = [r for r in _runs_of(deployment_id) if r.id not in earlier]
        if runs:
            run = runs[0]
            name = run.name
            state = run.state.type.value if run.state else None
            if run.state and run.state.is_final():
                return name, state
        time.sleep(0.5)
    return name, state


def reply_round_trip(
    ctx: DemoContext, sandbox: Any, block: Any, contact_id: str, *, text: str
) -> RoundTrip:
    """Fire one customer reply through the webhook path and report what came of it."""
    secret = secrets.token_urlsafe(24)
    receiver = create_webhook_app(WebhookSettings(secret=SecretStr(secret)))
    handle_reply = ctx.flow("handle_reply")
    with (
        serve_in_thread(receiver, name="autotalk-webhooks") as port,
        _serving_runner(handle_reply, block) as deployment_id,
    ):
        receiver_url = f"http://127.0.0.1:{port}"
        ctx.report.note(f"receiver: {receiver_url}/autotalk/<event>; deployment served by a runner")
        sandbox.configure_webhook(receiver_url, secret, events=["message.received"])
        before = len(sandbox.sent_messages())
        earlier = {run.id for run in _runs_of(deployment_id)}  # runs of earlier demos
        sandbox.simulate_reply(contact_id, text)
        name, state = _wait_for_run(deployment_id, earlier, timeout=150)
        sandbox.clear_webhook()
    answers = sum(1 for m in sandbox.sent_messages()[before:] if m.get("contactId") == contact_id)
    with block.get_client() as client:
        status = client.get_dynadata_item("clients", contact_id).data.get("status")
    return RoundTrip(name, state, status, answers)
