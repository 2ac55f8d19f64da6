"""Reminders end to end on real processes: AutoTalk appointment and conversation webhooks ->
the receiver -> ``autotalk.*`` events -> the schedulers' triggers -> Prefect scheduled runs of
``autotalk-reminders-send`` -> the worker starts each when its time comes -> the sandbox.

One set-up for every case (one booking is made in the sandbox, which fires its webhook; the
others are posted to the receiver as an AutoTalk workflow would) (server, receiver, worker, ``prefect deploy --all`` of
``deployments/prefect.yaml``, with only the follow-up trigger switched on and its wait shortened
in the test's copy): the cases' webhooks are all posted first, then each case checks its own
appointment. The reminders use the shipped offsets (24 h and 1 h): each appointment is a little
more than 24 h away, so its 24 h reminder is due within minutes (the 1 h one stays scheduled).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from autotalk_prefect.flows.reminders.engine import subject_tag
from autotalk_prefect.sandbox import run_sandbox
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
)
from tests.test_deploy_from_folder import check_deployed_from_folder
from tests.test_e2e_deployments import CLI, POOL, TERMINAL, Stack

KEY = "sk-e2e-reminders-77a1"
SECRET = "e2e-reminders-secret-41c9"
SEND = ("autotalk-send-reminder", "autotalk-reminders-send")
SCHEDULE = ("autotalk-schedule-reminders", "autotalk-reminders-schedule")
LEAD = timedelta(seconds=150)  # how far past "24 h from now" each appointment is
# the follow-ups are posted last, after every appointment's scheduling: a wider margin, so that
# their scheduling runs start before the due time even on a busy machine (else "already past")
FOLLOW_UP_AFTER = timedelta(seconds=240)
MADRID = ZoneInfo("Europe/Madrid")

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="process groups (POSIX)"),
    # the shared set-up (~3 min on a loaded machine) and the reminders' due times count
    pytest.mark.timeout(1500),
]


@dataclass
class Reminders:
    """The running stack, the receiver's URL, and what the cases posted."""

    stack: Stack
    receiver: str
    contacts: list[str]
    started: datetime
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def post(self, event: str, body: dict[str, Any]) -> None:
        response = httpx.post(
            f"{self.receiver}/autotalk/{event}",
            json=body,
            headers={"x-autotalk-secret": SECRET},
            timeout=30,
        )
        assert response.status_code == 202, f"{response.text}\n{self.stack.diagnostics()}"

    def runs(self, deployment: tuple[str, str], tag: str | None = None) -> list[dict[str, Any]]:
        flow_runs: dict[str, Any] = {
            "deployment_id": {"any_": [self.stack.deployment_id(*deployment)]}
        }
        if tag:
            flow_runs["tags"] = {"all_": [tag]}
        found: list[dict[str, Any]] = self.stack.api_call(
            "POST", "/flow_runs/filter", {"flow_runs": flow_runs}
        )
        return found

    def wait_settled(self, tag: str, what: str) -> list[dict[str, Any]]:
        """The subject's send runs once none due by now is still open (bounded wait)."""

        def settled() -> list[dict[str, Any]] | None:
            runs = self.runs(SEND, tag)
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

        return wait_until(settled, 600, what, interval=2, diagnostics=self.stack.diagnostics)


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


@pytest.fixture(scope="module")
def reminders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reminders]:
    tmp = tmp_path_factory.mktemp("e2e-reminders")
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
        if deployment["name"] == "autotalk-follow-up":
            deployment["parameters"]["after"] = f"{FOLLOW_UP_AFTER.seconds}s"
            deployment["triggers"][0]["enabled"] = True
    recipe.write_text(yaml.safe_dump(spec, sort_keys=False))
    with ExitStack() as stack:
        api = stack.enter_context(prefect_server(tmp / "server-home", services={"triggers"}))
        sandbox = stack.enter_context(run_sandbox(api_key=KEY, seed=11, contacts=12))
        env = clean_env(
            PREFECT_API_URL=api,
            PREFECT_HOME=str(tmp / "client-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="0",  # start each run at its time, not before
            PREFECT_WORKER_HEARTBEAT_SECONDS="5",
            AUTOTALK_API_KEY=KEY,
            AUTOTALK_BASE_URL=sandbox.base_url,
            PWD=str(tmp),
        )
        # the CLI runs in deployments/ (`cd deployments && prefect deploy --all`, the folder form)
        running = Stack(api, sandbox, project / "deployments", logs, env)
        port = free_port()
        receiver = stack.enter_context(
            background(
                [str(CLI), "webhooks", "--port", str(port)],
                env={**env, "AUTOTALK_WEBHOOK_SECRET": SECRET},
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
        running.prefect("--no-prompt", "deploy", "--all")

        def receiver_up() -> bool:
            assert receiver.poll() is None, f"the receiver exited\n{log_tail(logs['receiver'])}"
            return http_ok(f"http://127.0.0.1:{port}/healthz")

        def worker_online() -> bool:
            assert worker.poll() is None, f"the worker exited\n{running.diagnostics()}"
            workers = running.api_call("POST", f"/work_pools/{POOL}/workers/filter", {})
            return any(w["status"] == "ONLINE" for w in workers)

        wait_until(receiver_up, PATIENCE_S, "the webhook receiver", diagnostics=running.diagnostics)
        wait_until(worker_online, PATIENCE_S, "the worker", diagnostics=running.diagnostics)
        state = Reminders(
            running, f"http://127.0.0.1:{port}", sandbox.contact_ids(), datetime.now(timezone.utc)
        )
        _post_every_case(state)
        yield state


def _post_every_case(r: Reminders) -> None:
    """All cases' webhooks, at once (each case has its own appointment and contact)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    t1 = now + timedelta(hours=24) + LEAD
    t2 = t1 + timedelta(seconds=60)  # another minute on the clock: the text tells them apart
    c = iter(r.contacts)

    def case(name: str, **data: Any) -> dict[str, Any]:
        r.cases[name] = {"apt": f"{name}-{uuid.uuid4().hex[:6]}", "contact": next(c), **data}
        return r.cases[name]

    sandbox = r.stack.sandbox  # a booking made in the sandbox fires its own webhook
    sandbox.configure_webhook(r.receiver, SECRET, events=["appointment.scheduled"])
    s = case("sandbox", starts=t1)
    booked = httpx.post(
        f"{sandbox.root_url}/_sandbox/appointments",
        json={"contactId": s["contact"], "startsAt": t1.isoformat(), "timeZone": "Europe/Madrid"},
        timeout=10,
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
            for run in r.runs(SCHEDULE, subject_tag("appointment", e["apt"]))
        ),
        300,
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


def _reminders_sent(r: Reminders, contact: str) -> list[dict[str, Any]]:
    return [m for m in r.stack.sandbox.sent_messages(contact) if "reminder" in m["message"]]


def _clock(when: datetime) -> str:
    return f"{when.astimezone(MADRID):%H:%M}"


def _check_one_reminder_for(r: Reminders, name: str) -> None:
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


def test_a_booking_gets_its_reminder_at_the_right_time(reminders: Reminders) -> None:
    _check_one_reminder_for(reminders, "book")


def test_a_booking_made_in_the_sandbox_gets_its_reminder(reminders: Reminders) -> None:
    (delivery,) = reminders.stack.sandbox.webhook_deliveries()
    assert delivery["statusCode"] == 202, delivery
    _check_one_reminder_for(reminders, "sandbox")


def test_a_moved_booking_gets_only_the_new_times_reminder(reminders: Reminders) -> None:
    _check_one_reminder_for(reminders, "move")


def test_a_booking_delivered_three_times_gets_one_reminder(reminders: Reminders) -> None:
    schedules = reminders.runs(
        SCHEDULE, subject_tag("appointment", reminders.cases["thrice"]["apt"])
    )
    assert len(schedules) == 3  # three deliveries without an id: three events, three runs
    _check_one_reminder_for(reminders, "thrice")
    runs = reminders.runs(SEND, subject_tag("appointment", reminders.cases["thrice"]["apt"]))
    assert len(runs) == 2  # one per offset, not one per delivery


def test_an_older_update_delivered_late_does_not_win(reminders: Reminders) -> None:
    _check_one_reminder_for(reminders, "late-older")


def test_a_cancelled_booking_gets_no_reminder(reminders: Reminders) -> None:
    case = reminders.cases["cancel"]
    tag = subject_tag("appointment", case["apt"])
    _check_one_reminder_for(reminders, "book")  # the same due time has come and gone

    def both_handled() -> bool:  # the booking and its cancellation, in whichever order
        scheduling = reminders.runs(SCHEDULE, tag)
        return len(scheduling) == 2 and all(r["state_type"] in TERMINAL for r in scheduling)

    wait_until(
        both_handled, 300, "the two scheduling runs", diagnostics=reminders.stack.diagnostics
    )
    # handled first, the booking made runs the cancellation then cancelled; handled second (the
    # older event), it made none
    runs = reminders.runs(SEND, tag)
    assert all(r["state_type"] == "CANCELLED" for r in runs), runs
    assert _reminders_sent(reminders, case["contact"]) == []


def test_a_follow_up_is_sent_after_silence_and_cancelled_by_a_reply(reminders: Reminders) -> None:
    silent, answered = reminders.cases["follow-up-silent"], reminders.cases["follow-up-answered"]
    runs = reminders.wait_settled(subject_tag("follow-up", silent["contact"]), "the follow-up")
    assert [run["state_type"] for run in runs] == ["COMPLETED"]
    (nudge,) = reminders.stack.sandbox.sent_messages(silent["contact"])
    assert "haven't heard back" in nudge["message"]
    assert datetime.fromisoformat(nudge["createdAt"].replace("Z", "+00:00")) >= silent["due"]
    # the reply is newer than the opening: whichever was handled first, no follow-up stands
    gone = reminders.runs(SEND, subject_tag("follow-up", answered["contact"]))
    assert all(run["state_type"] == "CANCELLED" for run in gone), gone
    assert reminders.stack.sandbox.sent_messages(answered["contact"]) == []


def test_deploy_all_from_the_deployments_folder_records_it_and_each_entrypoint_loads(
    reminders: Reminders,
) -> None:
    deployments = reminders.stack.api_call("POST", "/deployments/filter", {})
    check_deployed_from_folder(
        deployments, reminders.stack.project, Path(reminders.stack.env["PREFECT_HOME"])
    )


def test_no_secret_reached_any_log(reminders: Reminders) -> None:
    for path in reminders.stack.logs.values():
        if path.exists():
            data = path.read_bytes()
            assert KEY.encode() not in data and SECRET.encode() not in data, path
