"""End to end on real processes: deployments/prefect.yaml on a self-hosted Prefect server.

``prefect server start`` (SQLite, only the services automations need), the webhook receiver
(``autotalk-prefect webhooks``) and a process worker run as separate processes; the sandbox
runs in this process. The deployments are made with the documented commands (``prefect
work-pool create``, ``prefect deploy --all``) from a copy of the repository's layout, so the
flow-run processes' working directory (and the ledgers they write) is a temporary one.

Two paths are checked: a customer reply in the sandbox -> its webhook -> the receiver ->
``autotalk.message.received`` -> the replies deployment's trigger -> a flow run the worker
completes, whose answer reaches the sandbox; and ``prefect deployment run`` of the weekly
outreach, which the worker completes with one message to every active client.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from autotalk_prefect.api.client import AutoTalkClient
from autotalk_prefect.sandbox import SandboxHandle, run_sandbox
from tests.prefect_processes import (
    PATIENCE_S,
    background,
    clean_env,
    deployments_layout_copy,
    free_port,
    http_ok,
    log_tail,
    prefect_server,
    server_log,
    wait_until,
    working_directory_pull_steps,
)

KEY = "sk-e2e-deploy-5c1d"
SECRET = "e2e-webhook-secret-9f27"
POOL = "autotalk-process"
REPLIES = ("autotalk-handle-reply", "autotalk-replies")
OUTREACH = ("autotalk-outreach-campaign", "autotalk-outreach-weekly")
ALL_DEPLOYMENTS = {
    "autotalk-reminders-schedule",
    "autotalk-reminders-send",
    "autotalk-follow-up",
    "autotalk-outreach-weekly",
    "autotalk-onboarding-on-client-created",
    "autotalk-replies",
    "autotalk-sync-hourly",
    "autotalk-warehouse-to-clients",
}
HELP_ANSWER = "reply YES to confirm, STOP to unsubscribe"  # the default rules' "help" answer
CLI_TIMEOUT_S = PATIENCE_S
RUN_TIMEOUT_S = PATIENCE_S
CLI = Path(sys.executable).with_name("autotalk-prefect")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="process groups (POSIX)"),
    pytest.mark.timeout(1500),  # above the waits' PATIENCE_S: a slow machine waits, never fails
]


@dataclass
class Stack:
    """The running pieces and where their output goes."""

    api: str
    sandbox: SandboxHandle
    project: Path
    logs: dict[str, Path]
    env: dict[str, str]

    def diagnostics(self) -> str:
        """The tails of the worker's, receiver's and server's output (for failure messages)."""
        return "\n".join(log_tail(self.logs[n]) for n in ("worker", "receiver", "server"))

    def prefect(self, *args: str) -> str:
        """Run a ``prefect`` CLI command against the server; its output, or a failure with logs."""
        log = self.logs["cli"]
        start = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "prefect", *args],
                env=self.env,
                cwd=self.project,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"prefect {args}: no end in {CLI_TIMEOUT_S} s") from exc
        with log.open("a") as out:
            took = time.monotonic() - start
            out.write(f"$ prefect {' '.join(args)}  ({took:.1f} s)\n{done.stdout}{done.stderr}\n")
        assert done.returncode == 0, (
            f"prefect {' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}\n{self.diagnostics()}"
        )
        return done.stdout

    def api_call(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.api}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def deployment_id(self, flow_name: str, name: str) -> str:
        return str(self.api_call("GET", f"/deployments/name/{flow_name}/{name}")["id"])

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
        runs: list[dict[str, Any]] = self.api_call("POST", "/flow_runs/filter", body)
        return runs

    def wait_for_run(self, deployment_id: str, what: str) -> dict[str, Any]:
        """The deployment's single flow run once it is terminal (bounded wait)."""

        def terminal() -> dict[str, Any] | None:
            runs = self.flow_runs(deployment_id)
            assert len(runs) <= 1, f"{what}: more than one flow run: {runs}"
            if runs and runs[0]["state_type"] in TERMINAL:
                return runs[0]
            return None

        run = wait_until(
            terminal, RUN_TIMEOUT_S, f"{what}: a terminal flow run", diagnostics=self.diagnostics
        )
        assert run["state_type"] == "COMPLETED", (
            f"{what}: flow run {run['name']} ended {run['state_type']}: "
            f"{(run.get('state') or {}).get('message')}\n{self.diagnostics()}"
        )
        return run


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Server, sandbox, receiver, pool, deployments and worker, all up; all stopped after."""
    logs = {
        "server": server_log(tmp_path / "server-home"),
        "receiver": tmp_path / "logs" / "receiver.log",
        "worker": tmp_path / "logs" / "worker.log",
        "cli": tmp_path / "logs" / "cli.log",
    }
    project = deployments_layout_copy(tmp_path / "project")
    with ExitStack() as stack:
        api = stack.enter_context(prefect_server(tmp_path / "server-home", services={"triggers"}))
        sandbox = stack.enter_context(run_sandbox(api_key=KEY, seed=5, contacts=25))
        env = clean_env(
            PREFECT_API_URL=api,
            PREFECT_HOME=str(tmp_path / "client-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_HEARTBEAT_SECONDS="5",
            AUTOTALK_API_KEY=KEY,
            AUTOTALK_BASE_URL=sandbox.base_url,
            # a stale PWD (a script's subprocess inherits its parent's) must not matter: with no
            # pull section, prefect deploy records its real working directory
            PWD=str(tmp_path),
        )
        running = Stack(api, sandbox, project, logs, env)

        port = free_port()
        receiver = stack.enter_context(
            background(
                [str(CLI), "webhooks", "--port", str(port)],
                env={**env, "AUTOTALK_WEBHOOK_SECRET": SECRET, "AUTOTALK_WEBHOOK_HMAC": "true"},
                log=logs["receiver"],
            )
        )
        running.prefect("work-pool", "create", POOL, "--type", "process")
        worker = stack.enter_context(
            background(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
                env=env,
                cwd=project,
                log=logs["worker"],
            )
        )
        running.prefect(
            "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"
        )

        def receiver_up() -> bool:
            assert receiver.poll() is None, f"the receiver exited\n{log_tail(logs['receiver'])}"
            return http_ok(f"http://127.0.0.1:{port}/healthz")

        wait_until(receiver_up, PATIENCE_S, "the webhook receiver", diagnostics=running.diagnostics)
        sandbox.configure_webhook(
            f"http://127.0.0.1:{port}", SECRET, events=["message.received"], hmac=True
        )

        def worker_online() -> bool:
            assert worker.poll() is None, f"the worker exited\n{running.diagnostics()}"
            workers = running.api_call("POST", f"/work_pools/{POOL}/workers/filter", {})
            return any(w["status"] == "ONLINE" for w in workers)

        wait_until(worker_online, PATIENCE_S, "the worker", diagnostics=running.diagnostics)
        yield running


def _clients(sandbox: SandboxHandle) -> dict[str, dict[str, Any]]:
    with AutoTalkClient(KEY, sandbox.base_url) as client:
        return {item.id: item.data for item in client.list_dynadata_items("clients")}


def test_reply_webhook_and_deployment_run_complete_through_the_worker(stack: Stack) -> None:
    deployments = stack.api_call("POST", "/deployments/filter", {})
    assert {d["name"] for d in deployments} == ALL_DEPLOYMENTS, stack.diagnostics()
    for d in deployments:  # where `prefect deploy` ran, whatever PWD said
        assert d["pull_steps"] == working_directory_pull_steps(stack.project), d["name"]
    replies_id = stack.deployment_id(*REPLIES)
    automations = stack.api_call("POST", "/automations/filter", {})
    assert any(
        a["enabled"]
        and a["trigger"].get("expect") == ["autotalk.message.received"]
        and any(x.get("deployment_id") == replies_id for x in a["actions"])
        for a in automations
    ), f"no automation runs the replies deployment: {automations}"

    clients = _clients(stack.sandbox)
    active = {cid for cid, data in clients.items() if data.get("status") == "active"}
    assert active and active != set(clients)  # the audience filter has something to do
    replier = next(iter(clients))

    # Both runs at once: the outreach through `prefect deployment run` (quiet hours off, so the
    # clock does not matter), the reply through the sandbox's webhook and the automation.
    outreach_id = stack.deployment_id(*OUTREACH)
    stack.prefect("deployment", "run", "/".join(OUTREACH), "--param", "quiet_hours=null")
    inbound = stack.sandbox.simulate_reply(replier, "Hi, I need help with my order")

    def delivered() -> list[dict[str, Any]] | None:
        deliveries = stack.sandbox.webhook_deliveries()
        return deliveries if deliveries and deliveries[0]["attempts"] else None

    (delivery,) = wait_until(
        delivered, PATIENCE_S, "the webhook delivery", diagnostics=stack.diagnostics
    )
    assert delivery["delivered"] and delivery["statusCode"] == 202, (
        f"{delivery}\n{stack.diagnostics()}"
    )

    reply_run = stack.wait_for_run(replies_id, "the replies deployment")
    outreach_run = stack.wait_for_run(outreach_id, "the outreach deployment")

    # The automation passed the webhook's payload as the run's event parameter.
    event = reply_run["parameters"]["event"]
    assert isinstance(event, dict), f"the event parameter arrived as {type(event)}: {event!r}"
    assert event["client"]["_id"] == replier
    assert event["message"]["_id"] == inbound["_id"]
    # Its answer is in the sandbox: one, to the replier, in the reply's conversation.
    sent = stack.sandbox.sent_messages()
    answers = [m for m in sent if HELP_ANSWER in m["message"]]
    assert [(m["contactId"], m["conversationId"]) for m in answers] == [
        (replier, inbound["conversationId"])
    ], f"answers: {answers}\n{stack.diagnostics()}"
    assert answers[0]["message"].startswith(f"Hi {clients[replier]['name']},")
    # The outreach: every active client exactly once, with the deployment's template.
    campaign = [m for m in sent if m not in answers]
    assert collections.Counter(m["contactId"] for m in campaign) == collections.Counter(active), (
        f"campaign sends: {campaign}\n{stack.diagnostics()}"
    )
    for message in campaign:
        name = clients[message["contactId"]]["name"]
        assert message["message"] == f"Hi {name}, this week's offer is waiting for you."
    assert outreach_run["parameters"]["quiet_hours"] is None
    # The flow runs worked in the deployed directory (their ledgers are there, not in the repo).
    ledger = stack.project / ".autotalk" / "ledger" / "ledger.sqlite3"
    assert ledger.is_file()
    from autotalk_prefect.ledger.store import ClaimLedger

    assert ClaimLedger("weekly-offer", str(ledger.parent)).counts()["sent"] == 12
    # Nothing else ran: no schedule fired, no other trigger matched.
    assert len(stack.api_call("POST", "/flow_runs/filter", {})) == 2
    # Neither the API key nor the webhook secret is in any process's output or in the server's
    # database (the worker had the key in its environment, the receiver the secret).
    database = sorted(stack.logs["server"].parent.glob("prefect.db*"))
    assert database
    for path in [*stack.logs.values(), *database]:
        data = path.read_bytes()
        assert KEY.encode() not in data and SECRET.encode() not in data, f"a secret in {path}"
