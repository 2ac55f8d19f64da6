"""The webhook receiver: AutoTalk workflow webhooks in, Prefect events out.

``create_webhook_app()`` builds the ASGI app (serve it with ``autotalk-prefect webhooks`` or
mount it in your own app); see docs/webhooks.md. The names are imported on first use, so that
loading the CLI (``autotalk-prefect sandbox`` never needs Prefect) does not import Prefect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotalk_prefect._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "create_webhook_app": "autotalk_prefect.webhooks.app",
    "EventEmitter": "autotalk_prefect.webhooks.events",
    "PrefectApiEmitter": "autotalk_prefect.webhooks.events",
    "build_event": "autotalk_prefect.webhooks.events",
    "WebhookConfigError": "autotalk_prefect.webhooks.settings",
    "WebhookSettings": "autotalk_prefect.webhooks.settings",
    "sign": "autotalk_prefect.webhooks.verify",
}

__all__ = [
    "EventEmitter",
    "PrefectApiEmitter",
    "WebhookConfigError",
    "WebhookSettings",
    "build_event",
    "create_webhook_app",
    "sign",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from autotalk_prefect.webhooks.app import create_webhook_app
    from autotalk_prefect.webhooks.events import EventEmitter, PrefectApiEmitter, build_event
    from autotalk_prefect.webhooks.settings import WebhookConfigError, WebhookSettings
    from autotalk_prefect.webhooks.verify import sign
