"""Reminders and follow-ups: Prefect scheduled runs from appointment and conversation events,
moved or cancelled by later events, sent once (``flow``; pure parts in ``engine``)."""
