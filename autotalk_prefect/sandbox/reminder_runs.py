"""What Prefect holds for the sandbox's appointments: each reminder run, its time and its fate.

``schedule_reminders`` makes one scheduled ``send_reminder`` run per offset, tagged with the
appointment's subject tag; a reschedule or a cancellation cancels them with a message saying
why, and a run that ran leaves an artifact whose description is its outcome ("... 24h: sent
(it still stands)"). The inbox reads these over Prefect's REST API (two calls for the whole
page, read-only, short timeout), so the page works against any Prefect server the flows use:
the ephemeral one, a self-hosted one, Cloud with a key in ``PREFECT_API_KEY``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from autotalk_prefect.flows.reminders.engine import subject_tag

TIMEOUT_S = 3.0
MAX_RUNS = 200  # the REST API's page; a sandbox holds far fewer reminder runs
_HEADLINE = re.compile(r": (?P<state>[a-z_]+) \((?P<reason>.*)\)$")
_OPEN = {"SCHEDULED", "PENDING", "PAUSED"}

__all__ = ["ReminderRun", "RemindersView", "prefect_api_url", "read_reminder_runs"]


@dataclass(frozen=True)
class ReminderRun:
    """One ``send_reminder`` run of an appointment, as the inbox shows it."""

    flow_run_id: str
    name: str
    label: str
    due: str | None
    state: str
    fate: str  # scheduled, sending, sent, skipped, moved, cancelled, failed, ...
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "flowRunId": self.flow_run_id,
            "name": self.name,
            "label": self.label,
            "due": self.due,
            "state": self.state,
            "fate": self.fate,
            "detail": self.detail,
        }


@dataclass
class RemindersView:
    """The runs per appointment id, or why they could not be read."""

    api_url: str | None
    error: str | None = None
    runs: dict[str, list[ReminderRun]] = field(default_factory=dict)


def prefect_api_url(configured: str | None) -> str | None:
    """The sandbox's configured Prefect API, else ``PREFECT_API_URL`` from the environment."""
    url = configured or os.environ.get("PREFECT_API_URL") or None
    return url.rstrip("/") if url else None


def _fate(state_type: str, message: str, headline: str | None) -> tuple[str, str]:
    if state_type in _OPEN:
        return "scheduled", ""
    if state_type == "RUNNING":
        return "sending", ""
    if state_type == "CANCELLED":  # "appointment X is now scheduled for T" / "... cancelled"
        if " is now scheduled" in message:
            return "moved", message
        return "cancelled", message
    if state_type == "COMPLETED" and headline:
        found = _HEADLINE.search(headline)
        if found:
            return found["state"], found["reason"]
    return state_type.lower(), message


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(path, json=body)
    response.raise_for_status()
    found = response.json()
    return found if isinstance(found, list) else []


def read_reminder_runs(api_url: str | None, appointment_ids: Iterable[str]) -> RemindersView:
    """The reminder runs of ``appointment_ids``, newest plan last; never raises."""
    wanted = {subject_tag("appointment", a): a for a in appointment_ids}
    view = RemindersView(api_url)
    if not api_url or not wanted:
        return view
    headers = {}
    if os.environ.get("PREFECT_API_KEY"):
        headers["authorization"] = f"Bearer {os.environ['PREFECT_API_KEY']}"
    try:
        with httpx.Client(base_url=api_url, timeout=TIMEOUT_S, headers=headers) as client:
            runs = _post(
                client,
                "/flow_runs/filter",
                {
                    "flow_runs": {"tags": {"all_": ["reminders", "appointment"]}},
                    "sort": "EXPECTED_START_TIME_ASC",
                    "limit": MAX_RUNS,
                },
            )
            mine = [
                (run, wanted[tag])
                for run in runs
                if "label" in (run.get("parameters") or {})
                for tag in run.get("tags") or ()
                if tag in wanted
            ]
            done = [str(run["id"]) for run, _ in mine if run.get("state_type") == "COMPLETED"]
            artifacts = (
                _post(client, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": done}}})
                if done
                else []
            )
    except (httpx.HTTPError, ValueError) as exc:
        view.error = f"the Prefect API at {api_url} did not answer: {type(exc).__name__}"
        return view
    headlines = {str(a.get("flow_run_id")): a.get("description") for a in artifacts}
    for run, appointment in mine:
        state_type = str(run.get("state_type") or "")
        state = run.get("state") or {}
        fate, detail = _fate(state_type, str(state.get("message") or ""), headlines.get(run["id"]))
        view.runs.setdefault(appointment, []).append(
            ReminderRun(
                flow_run_id=str(run["id"]),
                name=str(run.get("name") or ""),
                label=str(run["parameters"].get("label")),
                due=run.get("expected_start_time") or run.get("next_scheduled_start_time"),
                state=str(run.get("state_name") or state_type.title()),
                fate=fate,
                detail=detail,
            )
        )
    return view
