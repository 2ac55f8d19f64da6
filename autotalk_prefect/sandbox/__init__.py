"""A contract-faithful AutoTalk server for offline work and tests (see docs/sandbox.md).

``run_sandbox()`` serves it on loopback in a thread; ``create_app()`` gives the ASGI app.
Its root URL is a web inbox of everything sent and received (``inbox.py``).
"""

from __future__ import annotations

from autotalk_prefect.sandbox.app import create_app
from autotalk_prefect.sandbox.config import DEFAULT_API_KEY, SandboxConfig
from autotalk_prefect.sandbox.faults import FaultConfig
from autotalk_prefect.sandbox.server import SandboxHandle, run_sandbox
from autotalk_prefect.sandbox.stats import key_fingerprint
from autotalk_prefect.sandbox.webhooks_out import WEBHOOK_EVENTS, sign

__all__ = [
    "DEFAULT_API_KEY",
    "WEBHOOK_EVENTS",
    "FaultConfig",
    "SandboxConfig",
    "SandboxHandle",
    "create_app",
    "key_fingerprint",
    "run_sandbox",
    "sign",
]
