"""autotalk-prefect: Prefect 3 integration for the AutoTalk customer-messaging API."""

from __future__ import annotations

__version__ = "0.1.0"
