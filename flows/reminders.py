"""Deployment entrypoints ``flows/reminders.py:schedule_reminders`` / ``:schedule_follow_up`` /
``:send_reminder``: the package's prebuilt flows, as they ship (``autotalk_prefect.flows.reminders``).
"""

from autotalk_prefect.flows.reminders.flow import (
    schedule_follow_up,
    schedule_reminders,
    send_reminder,
)

__all__ = ["schedule_follow_up", "schedule_reminders", "send_reminder"]
