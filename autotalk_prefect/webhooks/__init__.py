"""The webhook receiver: AutoTalk workflow webhooks in, Prefect events out.

``create_webhook_app()`` builds the ASGI app (serve it with ``autotalk-prefect webhooks`` or
mount it in your own app); see docs/webhooks.md.
"""

from __future__ import annotations

from autotalk_prefect.webhooks.app import create_webhook_app
from autotalk_prefect.webhooks.events import EventEmitter, PrefectApiEmitter, build_event
from autotalk_prefect.webhooks.settings import WebhookConfigError, WebhookSettings
from autotalk_prefect.webhooks.verify import sign

__all__ = [
    "EventEmitter",
    "PrefectApiEmitter",
    "WebhookConfigError",
    "WebhookSettings",
    "build_event",
    "create_webhook_app",
    "sign",
]
