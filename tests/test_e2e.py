"""End to end on real processes: deployments/prefect.yaml on a self-hosted Prefect server.

One stack serves every case (each Prefect process costs seconds of CPU on a 2-core machine):
``prefect server start`` (SQLite, only the triggers service automations need), the webhook
receiver (``autotalk-prefect webhooks``, HMAC signatures required), a process worker, and the
sandbox in this process. The deployments are made with the documented commands from a copy of
the repository's layout (so the flow runs' working directory, and the ledgers they write, are
temporary): ``prefect work-pool create``, then ``prefect deploy --all --prefect-file
deployments/prefect.yaml`` (the root form the README shows, whose recorded working directory is
checked), then ``cd deployments && prefect deploy --all`` (the folder form, which replaces them
and which the worker runs). The test copy switches the follow-up trigger on, with a short wait.

Checked on it:

- a customer reply in the sandbox -> its signed webhook -> the receiver ->
  ``autotalk.message.received`` -> the replies deployment's trigger -> a flow run the worker
  completes, whose answer reaches the sandbox; and ``prefect deployment run`` of the weekly
  outreach, which the worker completes with one message to every active client;
- reminders: appointment and conversation webhooks -> ``autotalk.*`` events -> the schedulers'
  triggers -> scheduled runs of ``autotalk-reminders-send`` -> the worker starts each when its
  time comes. One booking is made in the sandbox (it fires its own webhook); the others are
  posted to the receiver as an AutoTalk workflow would, all before the first case runs, each
  with its own appointment and an inactive client (the weekly outreach never writes to them).
  The reminders use the shipped offsets (24 h and 1 h): each appointment is a little more than
  24 h away, so its 24 h reminder is due within minutes (the 1 h one stays scheduled).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from autotalk_prefect.api.client import AutoTalkClient
from autotalk_prefect.flows.reminders.engine import subject_tag
from autotalk_prefect.sandbox import SandboxHandle, run_sandbox
from autotalk_prefect.webhooks.verify import sign
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
from tests.test_deploy_from_folder import check_deployed_from_folder

KEY = "sk-e2e-deploy-5c1d"
SECRET = "e2e-webhook-secret-9f27"
POOL = "autotalk-process"
REPLIES = ("autotalk-handle-reply", "autotalk-replies")
OUTREACH = ("autotalk-outreach-campaign", "autotalk-outreach-weekly")
SEND = ("autotalk-send-reminder", "autotalk-reminders-send")
SCHEDULE = ("autotalk-schedule-reminders", "autotalk-reminders-schedule")
FOLLOW_UP = ("autotalk-schedule-follow-up", "autotalk-follow-up")
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
LEAD = timedelta(seconds=150)  # how far past "24 h from now" each appointment is
# the follow-ups are posted last, after every appointment's scheduling: a wider margin, so that
# their scheduling runs start before the due time even on a busy machine (else "already past")
FOLLOW_UP_AFTER = timedelta(seconds=240)
MADRID = ZoneInfo("Europe/Madrid")

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="process groups (POSIX)"),
    # the shared set-up (minutes on a loaded machine) and the reminders' due times count; every
    # wait inside is bounded by PATIENCE_S, so a slow machine waits and only a hang fails
    pytest.mark.timeout(1800),
]


@dataclass
class Stack:
    """The running pieces, where their output goes, and how to call the server and its CLI."""

    api: str
    sandbox: SandboxHandle
    project: Path  # where `prefect deploy` ran last (deployments/, the folder form)
    logs: dict[str, Path]
    env: dict[str, str]

    def diagnostics(self) -> str:
        """The tails of the worker's, receiver's and server's output (for failure messages)."""
        return "\n".join(log_tail(self.logs[n]) for n in ("worker", "receiver", "server"))

    def prefect(self, *args: str, cwd: Path | None = None) -> str:
        """Run a ``prefect`` CLI command against the server; its output, or a failure with logs."""
        log = self.logs["cli"]
        start = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "prefect", *args],
                env=self.env,
                cwd=cwd or self.project,
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
        response = httpx.request(method, f"{self.api}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def deployment_id(self, flow_name: str, name: str) -> str:
        return str(self.api_call("GET", f"/deployments/name/{flow_name}/{name}")["id"])

    def runs(self, deployment: tuple[str, str], tag: str | None = None) -> list[dict[str, Any]]:
        """The deployment's flow runs (those carrying ``tag``, if given)."""
        flow_runs: dict[str, Any] = {"deployment_id": {"any_": [self.deployment_id(*deployment)]}}
        if tag:
            flow_runs["tags"] = {"all_": [tag]}
        found: list[dict[str, Any]] = self.api_call(
            "POST", "/flow_runs/filter", {"flow_runs": flow_runs}
        )
        return found

    def wait_for_run(
        self,
        deployment: tuple[str, str],
        what: str,
        match: Callable[[dict[str, Any]], bool] = lambda run: True,
    ) -> dict[str, Any]:
        """The deployment's single flow run that ``match``es, once terminal (bounded wait)."""

        def terminal() -> dict[str, Any] | None:
            runs = [run for run in self.runs(deployment) if match(run)]
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


@dataclass
class E2E:
    """The stack, the receiver's URL, the root form's deployments, and what the cases posted."""

    stack: Stack
    receiver: str
    root_form: list[dict[str, Any]]  # the deployments as `prefect deploy --prefect-file` made them
    root: Path  # the project copy, where the root form ran
    clients: dict[str, dict[str, Any]]
    contacts: list[str]  # inactive clients, one per reminders case
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def post(self, event: str, body: dict[str, Any]) -> None:
        """Deliver ``body`` as an AutoTalk workflow would: JSON, the secret, the HMAC signature."""
        raw = json.dumps(body).encode()
        timestamp = str(int(time.time()))
        response = httpx.post(
            f"{self.receiver}/autotalk/{event}",
            content=raw,
            headers={
                "content-type": "application/json",
                "x-autotalk-secret": SECRET,
                "x-autotalk-timestamp": timestamp,
                "x-autotalk-signature": sign(SECRET.encode(), timestamp, raw),
            },
            timeout=30,
        )
        assert response.status_code == 202, f"{response.text}\n{self.stack.diagnostics()}"

    def wait_settled(self, tag: str, what: str) -> list[dict[str, Any]]:
        """The subject's send runs once none due by now is still open (bounded wait)."""

        def settled() -> list[dict[str, Any]] | None:
            runs = self.stack.runs(SEND, tag)
            now = datetime.now(timezone.utc)
            for run in runs:
                due = datetime.fromisoformat(run["expected_start_time"])
                if run["state_type"] not in TERMINAL and due <= now + timedelta(hours=1):
                    return None
                if run["state_type"] in ("FAILED", "CRASHED"):
                    raise AssertionError(
                        f"{what}: {run['name']} {run['state']}\n{self.stack.diagnostics()}"
                    )
            return runs if runs else None

        return wait_until(settled, PATIENCE_S, what, interval=2, diagnostics=self.stack.diagnostics)


def _clients(sandbox: SandboxHandle) -> dict[str, dict[str, Any]]:
    with AutoTalkClient(KEY, sandbox.base_url) as client:
        return {item.id: item.data for item in client.list_dynadata_items("clients")}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """Server, sandbox, receiver, pool, both deploys and the worker, all up, every reminders
    case posted; all stopped after the module."""
    tmp = tmp_path_factory.mktemp("e2e")
    logs = {
        "server": server_log(tmp / "server-home"),
        "receiver": tmp / "logs" / "receiver.log",
        "worker": tmp / "logs" / "worker.log",
        "cli": tmp / "logs" / "cli.log",
    }
    project = deployments_layout_copy(tmp / "project")
    recipe = project / "deployments" / "prefect.yaml"
    spec = yaml.safe_load(recipe.read_text())
    for deployment in spec["deployments"]:
        if deployment["name"] == FOLLOW_UP[1]:
            deployment["parameters"]["after"] = f"{FOLLOW_UP_AFTER.seconds}s"
            deployment["triggers"][0]["enabled"] = True
    recipe.write_text(yaml.safe_dump(spec, sort_keys=False))
    with ExitStack() as stack:
        api = stack.enter_context(prefect_server(tmp / "server-home", services={"triggers"}))
        sandbox = stack.enter_context(run_sandbox(api_key=KEY, seed=5, contacts=25))
        env = clean_env(
            PREFECT_API_URL=api,
            PREFECT_HOME=str(tmp / "client-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="0",  # start each run at its time, not before
            PREFECT_WORKER_HEARTBEAT_SECONDS="5",
            AUTOTALK_API_KEY=KEY,
            AUTOTALK_BASE_URL=sandbox.base_url,
            # a stale PWD (a script's subprocess inherits its parent's) must not matter: with no
            # pull section, prefect deploy records its real working directory
            PWD=str(tmp),
        )
        running = Stack(api, sandbox, project / "deployments", logs, env)
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
        running.prefect(  # the root form, from the project's root
            "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml",
            cwd=project,
        )  # fmt: skip
        root_form = running.api_call("POST", "/deployments/filter", {})
        running.prefect("--no-prompt", "deploy", "--all")  # the folder form: cd deployments

        def receiver_up() -> bool:
            assert receiver.poll() is None, f"the receiver exited\n{log_tail(logs['receiver'])}"
            return http_ok(f"http://127.0.0.1:{port}/healthz")

        def worker_online() -> bool:
            assert worker.poll() is None, f"the worker exited\n{running.diagnostics()}"
            workers = running.api_call("POST", f"/work_pools/{POOL}/workers/filter", {})
            return any(w["status"] == "ONLINE" for w in workers)

        wait_until(receiver_up, PATIENCE_S, "the webhook receiver", diagnostics=running.diagnostics)
        wait_until(worker_online, PATIENCE_S, "the worker", diagnostics=running.diagnostics)
        clients = _clients(sandbox)
        inactive = [cid for cid, data in clients.items() if data.get("status") != "active"]
        state = E2E(
            running, f"http://127.0.0.1:{port}", root_form, project, clients, inactive
        )  # fmt: skip
        sandbox.configure_webhook(
            state.receiver,
            SECRET,
            events=["message.received", "appointment.scheduled"],
            hmac=True,
        )
        _post_every_case(state)
        yield state


def _appointment_body(
    apt: str, contact: str, starts: datetime, occurred: datetime, status: str = "scheduled",
    *, with_id: bool = True,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "occurredAt": occurred.isoformat(),
        "client": {"_id": contact, "name": "Ana", "timeZone": "Europe/Madrid"},
        "appointment": {"_id": apt, "startsAt": starts.isoformat(), "status": status},
    }
    if with_id:
        body["id"] = f"evt-{uuid.uuid4().hex[:12]}"
    return body


def _post_every_case(r: E2E) -> None:
    """All reminders cases' webhooks, at once (each case has its own appointment and contact)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    t1 = now + timedelta(hours=24) + LEAD
    t2 = t1 + timedelta(seconds=60)  # another minute on the clock: the text tells them apart
    c = iter(r.contacts)

    def case(name: str, **data: Any) -> dict[str, Any]:
        r.cases[name] = {"apt": f"{name}-{uuid.uuid4().hex[:6]}", "contact": next(c), **data}
        return r.cases[name]

    sandbox = r.stack.sandbox  # a booking made in the sandbox fires its own webhook
    s = case("sandbox", starts=t1)
    booked = httpx.post(
        f"{sandbox.root_url}/_sandbox/appointments",
        json={"contactId": s["contact"], "startsAt": t1.isoformat(), "timeZone": "Europe/Madrid"},
        timeout=30,
    )
    booked.raise_for_status()
    s["apt"] = booked.json()["_id"]
    a = case("book", starts=t1)
    r.post("appointment.scheduled", _appointment_body(a["apt"], a["contact"], t1, now))
    b = case("move", starts=t2, old=t1)
    r.post("appointment.scheduled", _appointment_body(b["apt"], b["contact"], t1, now))
    r.post(
        "appointment.updated",
        _appointment_body(b["apt"], b["contact"], t2, now + timedelta(seconds=1)),
    )
    x = case("cancel", starts=t1)
    r.post("appointment.scheduled", _appointment_body(x["apt"], x["contact"], t1, now))
    r.post(
        "appointment.updated",
        _appointment_body(x["apt"], x["contact"], t1, now + timedelta(seconds=1), "cancelled"),
    )
    d = case("thrice", starts=t1)
    same = _appointment_body(d["apt"], d["contact"], t1, now, with_id=False)  # as AutoTalk sends
    for _ in range(3):
        r.post("appointment.scheduled", same)
    e = case("late-older", starts=t2, old=t1)
    newer = _appointment_body(e["apt"], e["contact"], t2, now + timedelta(seconds=2))
    r.post("appointment.updated", newer)
    # the older update is delivered only once the newer one was acted on
    wait_until(
        lambda: any(
            run["state_type"] == "COMPLETED"
            for run in r.stack.runs(SCHEDULE, subject_tag("appointment", e["apt"]))
        ),
        PATIENCE_S,
        "the newer update's scheduling run",
        interval=1,
        diagnostics=r.stack.diagnostics,
    )
    r.post("appointment.updated", _appointment_body(e["apt"], e["contact"], t1, now))
    for name, reply in (("follow-up-answered", True), ("follow-up-silent", False)):
        f = case(name, reply=reply)
        opened = {
            "id": f"open-{f['apt']}",
            "occurredAt": now.isoformat(),
            "client": {"_id": f["contact"], "name": "Bo"},
        }
        r.post("conversation.opened", opened)
        if reply:
            r.post(
                "message.received",
                {
                    "id": f"reply-{f['apt']}",
                    "occurredAt": (now + timedelta(seconds=5)).isoformat(),
                    "client": {"_id": f["contact"]},
                    "message": {"text": "ok thanks"},
                },
            )
        f["due"] = now + FOLLOW_UP_AFTER


# ---- deployments: both forms, a reply through the trigger, a run through the CLI -----------------


def test_deploy_all_from_the_root_records_the_project_as_working_directory(e2e: E2E) -> None:
    assert {d["name"] for d in e2e.root_form} == ALL_DEPLOYMENTS, e2e.stack.diagnostics()
    for d in e2e.root_form:  # where `prefect deploy` ran, whatever PWD said
        assert d["pull_steps"] == working_directory_pull_steps(e2e.root), d["name"]


def test_deploy_all_from_the_deployments_folder_records_it_and_each_entrypoint_loads(
    e2e: E2E,
) -> None:
    deployments = e2e.stack.api_call("POST", "/deployments/filter", {})
    check_deployed_from_folder(deployments, e2e.stack.project, Path(e2e.stack.env["PREFECT_HOME"]))


def test_reply_webhook_and_deployment_run_complete_through_the_worker(e2e: E2E) -> None:
    stack = e2e.stack
    replies_id = stack.deployment_id(*REPLIES)
    automations = stack.api_call("POST", "/automations/filter", {})
    assert any(
        a["enabled"]
        and a["trigger"].get("expect") == ["autotalk.message.received"]
        and any(x.get("deployment_id") == replies_id for x in a["actions"])
        for a in automations
    ), f"no automation runs the replies deployment: {automations}"

    clients = e2e.clients
    active = {cid for cid, data in clients.items() if data.get("status") == "active"}
    assert active and active != set(clients)  # the audience filter has something to do
    replier = sorted(active)[0]  # not one of the reminders' (inactive) contacts

    # Both runs at once: the outreach through `prefect deployment run` (quiet hours off, so the
    # clock does not matter), the reply through the sandbox's webhook and the automation.
    stack.prefect("deployment", "run", "/".join(OUTREACH), "--param", "quiet_hours=null")
    inbound = stack.sandbox.simulate_reply(replier, "Hi, I need help with my order")

    def delivered() -> list[dict[str, Any]] | None:
        deliveries = [
            d for d in stack.sandbox.webhook_deliveries() if d["event"] == "message.received"
        ]
        return deliveries if deliveries and deliveries[0]["attempts"] else None

    (delivery,) = wait_until(
        delivered, PATIENCE_S, "the webhook delivery", diagnostics=stack.diagnostics
    )
    assert delivery["delivered"] and delivery["statusCode"] == 202, (
        f"{delivery}\n{stack.diagnostics()}"
    )

    def from_replier(run: dict[str, Any]) -> bool:  # a reminders case posts a reply of its own
        event = run["parameters"].get("event")
        return not isinstance(event, dict) or event.get("client", {}).get("_id") == replier

    reply_run = stack.wait_for_run(REPLIES, "the replies deployment", from_replier)
    outreach_run = stack.wait_for_run(OUTREACH, "the outreach deployment")

    # The automation passed the webhook's payload as the run's event parameter.
    event = reply_run["parameters"]["event"]
    assert isinstance(event, dict), f"the event parameter arrived as {type(event)}: {event!r}"
    assert event["client"]["_id"] == replier
    assert event["message"]["_id"] == inbound["_id"]
    # Its answer is in the sandbox: one, to the replier, in the reply's conversation.
    sent = [m for m in stack.sandbox.sent_messages() if m["contactId"] not in e2e.contacts]
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

    assert ClaimLedger("weekly-offer", str(ledger.parent)).counts()["sent"] == len(active)
    # Nothing else ran: no schedule fired, no other trigger matched (the reminders' deployments
    # run for the reminders cases, whose reply also reaches the replies deployment; the reply
    # here may also start a follow-up's scheduling run).
    reminders = {stack.deployment_id(*d) for d in (SEND, SCHEDULE, FOLLOW_UP)}
    others = [
        r for r in stack.api_call("POST", "/flow_runs/filter", {})
        if r["deployment_id"] not in reminders
        and not (r["deployment_id"] == replies_id and not from_replier(r))
    ]  # fmt: skip
    assert sorted(r["id"] for r in others) == sorted([reply_run["id"], outreach_run["id"]]), others


# ---- reminders: each case's appointment, posted by the fixture ---------------------------------


def _reminders_sent(r: E2E, contact: str) -> list[dict[str, Any]]:
    return [m for m in r.stack.sandbox.sent_messages(contact) if "reminder" in m["message"]]


def _clock(when: datetime) -> str:
    return f"{when.astimezone(MADRID):%H:%M}"


def _check_one_reminder_for(r: E2E, name: str) -> None:
    case = r.cases[name]
    runs = r.wait_settled(subject_tag("appointment", case["apt"]), f"{name}: reminder runs")
    due = case["starts"] - timedelta(hours=24)
    completed = [run for run in runs if run["state_type"] == "COMPLETED"]
    assert len(completed) == 1, f"{name}: {runs}"
    assert datetime.fromisoformat(completed[0]["expected_start_time"]) == due
    (sent,) = _reminders_sent(r, case["contact"])
    assert f"at {_clock(case['starts'])} (Europe/Madrid)" in sent["message"], sent
    # sent when due, not before (the worker started the run at its scheduled time)
    assert datetime.fromisoformat(sent["createdAt"].replace("Z", "+00:00")) >= due
    if "old" in case:  # the first time's reminder runs were cancelled, never sent
        old = [run for run in runs if run["parameters"]["basis"] == case["old"].isoformat()]
        assert all(run["state_type"] == "CANCELLED" for run in old), old


def test_a_booking_gets_its_reminder_at_the_right_time(e2e: E2E) -> None:
    _check_one_reminder_for(e2e, "book")


def test_a_booking_made_in_the_sandbox_gets_its_reminder(e2e: E2E) -> None:
    (delivery,) = [
        d for d in e2e.stack.sandbox.webhook_deliveries() if d["event"] == "appointment.scheduled"
    ]
    assert delivery["statusCode"] == 202, delivery
    _check_one_reminder_for(e2e, "sandbox")


def test_a_moved_booking_gets_only_the_new_times_reminder(e2e: E2E) -> None:
    _check_one_reminder_for(e2e, "move")


def test_a_booking_delivered_three_times_gets_one_reminder(e2e: E2E) -> None:
    tag = subject_tag("appointment", e2e.cases["thrice"]["apt"])
    # three deliveries without an id: three runs (each carries the tag once it has started)
    wait_until(
        lambda: len([r for r in e2e.stack.runs(SCHEDULE, tag) if r["state_type"] in TERMINAL]) >= 3,
        PATIENCE_S,
        "the three scheduling runs",
        diagnostics=e2e.stack.diagnostics,
    )
    assert len(e2e.stack.runs(SCHEDULE, tag)) == 3
    _check_one_reminder_for(e2e, "thrice")
    assert len(e2e.stack.runs(SEND, tag)) == 2  # one per offset, not one per delivery


def test_an_older_update_delivered_late_does_not_win(e2e: E2E) -> None:
    _check_one_reminder_for(e2e, "late-older")


def test_a_cancelled_booking_gets_no_reminder(e2e: E2E) -> None:
    case = e2e.cases["cancel"]
    tag = subject_tag("appointment", case["apt"])
    _check_one_reminder_for(e2e, "book")  # the same due time has come and gone

    def both_handled() -> bool:  # the booking and its cancellation, in whichever order
        scheduling = e2e.stack.runs(SCHEDULE, tag)
        return len(scheduling) == 2 and all(r["state_type"] in TERMINAL for r in scheduling)

    wait_until(
        both_handled, PATIENCE_S, "the two scheduling runs", diagnostics=e2e.stack.diagnostics
    )
    # handled first, the booking made runs the cancellation then cancelled; handled second (the
    # older event), it made none
    runs = e2e.stack.runs(SEND, tag)
    assert all(r["state_type"] == "CANCELLED" for r in runs), runs
    assert _reminders_sent(e2e, case["contact"]) == []


def test_a_follow_up_is_sent_after_silence_and_cancelled_by_a_reply(e2e: E2E) -> None:
    silent, answered = e2e.cases["follow-up-silent"], e2e.cases["follow-up-answered"]
    runs = e2e.wait_settled(subject_tag("follow-up", silent["contact"]), "the follow-up")
    assert [run["state_type"] for run in runs] == ["COMPLETED"]
    (nudge,) = e2e.stack.sandbox.sent_messages(silent["contact"])
    assert "haven't heard back" in nudge["message"]
    assert datetime.fromisoformat(nudge["createdAt"].replace("Z", "+00:00")) >= silent["due"]
    # the reply is newer than the opening: whichever was handled first, no follow-up stands
    gone = e2e.stack.runs(SEND, subject_tag("follow-up", answered["contact"]))
    assert all(run["state_type"] == "CANCELLED" for run in gone), gone
    assert e2e.stack.sandbox.sent_messages(answered["contact"]) == []


# ---- last: what every process wrote ------------------------------------------------------------


def test_no_secret_reached_any_log_or_the_servers_database(e2e: E2E) -> None:
    """Neither the API key nor the webhook secret is in any process's output or in the server's
    database (the worker had the key in its environment, the receiver the secret)."""
    database = sorted(e2e.stack.logs["server"].parent.glob("prefect.db*"))
    assert database
    for path in [*e2e.stack.logs.values(), *database]:
        if path.exists():
            data = path.read_bytes()
            assert KEY.encode() not in data and SECRET.encode() not in data, f"a secret in {path}"
