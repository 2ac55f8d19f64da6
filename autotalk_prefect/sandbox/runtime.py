"""One running sandbox's parts in one place: config, state, faults, stats, webhooks, keys."""

from __future__ import annotations

import hmac
import itertools
import os
from typing import Any, Literal

from autotalk_prefect.sandbox.config import SandboxConfig
from autotalk_prefect.sandbox.faults import FaultConfig, FaultInjector
from autotalk_prefect.sandbox.ids import IdFactory
from autotalk_prefect.sandbox.state import SandboxState
from autotalk_prefect.sandbox.stats import Stats
from autotalk_prefect.sandbox.webhooks_out import WebhookDispatcher

Access = Literal["rw", "ro"]


class SandboxRuntime:
    """What the ASGI app, the admin API and ``SandboxHandle`` all operate on."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.webhooks = WebhookDispatcher(IdFactory(config.seed + 7919))
        self.state = SandboxState(
            seed=config.seed, contacts=config.contacts, emit=self.webhooks.emit
        )
        self.faults = FaultInjector(config.faults)
        self.stats = Stats()
        self._keys: list[tuple[bytes, Access]] = [
            (k.encode(), "rw") for k in (config.api_key, *config.extra_api_keys)
        ] + [(k.encode(), "ro") for k in config.read_only_api_keys]
        self._request_prefix = os.urandom(3).hex()
        self._request_counter = itertools.count(1)

    def next_request_id(self) -> str:
        """A unique request id for ``x-request-id`` and error bodies."""
        return f"req_{self._request_prefix}{next(self._request_counter):08x}"

    def access_of(self, presented: bytes | None) -> Access | None:
        """What a presented ``x-api-key`` may do (constant-time compare), or None if refused."""
        if not presented:
            return None
        found: Access | None = None
        for key, access in self._keys:
            if hmac.compare_digest(presented, key):
                found = access
        return found

    def set_faults(self, faults: FaultConfig | None) -> None:
        self.faults.set(faults or FaultConfig())

    def reset(self, *, seed: int | None = None, contacts: int | None = None) -> None:
        """Fresh seeded data, empty logs and stats, no webhook receiver; faults are kept."""
        self.webhooks.reset()
        self.state.reset(seed=seed, contacts=contacts)
        self.stats.reset()
        self.faults.reset_counts()

    def stats_snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot()
        snapshot["faults"] = dict(sorted(self.faults.counts.items()))
        snapshot["sent_messages"] = len(self.state.sent)
        deliveries = self.webhooks.deliveries()
        snapshot["webhooks"] = {
            "deliveries": len(deliveries),
            "delivered": sum(1 for d in deliveries if d["delivered"]),
        }
        return snapshot

    def close(self) -> None:
        self.webhooks.close()
