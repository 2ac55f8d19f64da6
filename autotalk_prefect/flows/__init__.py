"""The prebuilt flows, importable from the installed package.

``from autotalk_prefect.flows import onboard_contact, outreach_campaign, handle_reply,
sync_to_warehouse, sync_from_warehouse, schedule_reminders, schedule_follow_up, send_reminder``. Each flow lives in its own sub-package with its parameter models and
engine; the repository's ``flows/*.py`` are thin deployment entrypoints over these. Imported on
first use, so that reading one flow does not import the others (the sync needs the dlt extra
only when it runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotalk_prefect._lazy import lazy_exports

_FLOWS: dict[str, str] = {
    "onboard_contact": "autotalk_prefect.flows.onboarding.flow",
    "outreach_campaign": "autotalk_prefect.flows.outreach.flow",
    "handle_reply": "autotalk_prefect.flows.replies.flow",
    "sync_to_warehouse": "autotalk_prefect.flows.sync.flow",
    "sync_from_warehouse": "autotalk_prefect.flows.warehouse_in.flow",
    "schedule_reminders": "autotalk_prefect.flows.reminders.flow",
    "schedule_follow_up": "autotalk_prefect.flows.reminders.flow",
    "send_reminder": "autotalk_prefect.flows.reminders.flow",
}

__all__ = [
    "handle_reply",
    "onboard_contact",
    "outreach_campaign",
    "schedule_follow_up",
    "schedule_reminders",
    "send_reminder",
    "sync_from_warehouse",
    "sync_to_warehouse",
]


__getattr__, __dir__ = lazy_exports(__name__, _FLOWS)


if TYPE_CHECKING:
    from autotalk_prefect.flows.onboarding.flow import onboard_contact
    from autotalk_prefect.flows.outreach.flow import outreach_campaign
    from autotalk_prefect.flows.reminders.flow import (
        schedule_follow_up,
        schedule_reminders,
        send_reminder,
    )
    from autotalk_prefect.flows.replies.flow import handle_reply
    from autotalk_prefect.flows.sync.flow import sync_to_warehouse
    from autotalk_prefect.flows.warehouse_in.flow import sync_from_warehouse
