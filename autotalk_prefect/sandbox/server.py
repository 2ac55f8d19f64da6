"""Run the sandbox on loopback in a background thread: ``run_sandbox`` and ``SandboxHandle``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr

from autotalk_prefect.api.config import AuthScheme
from autotalk_prefect.sandbox.app import SandboxApp, create_app
from autotalk_prefect.sandbox.config import DEFAULT_API_KEY, SandboxConfig
from autotalk_prefect.sandbox.dialects import auth_headers as dialect_auth_headers
from autotalk_prefect.sandbox.dialects import get_dialect
from autotalk_prefect.sandbox.faults import FaultConfig
from autotalk_prefect.serving import LOOPBACK, serve_in_thread

if TYPE_CHECKING:
    from autotalk_prefect.credentials import AutoTalkCredentials

HOST = LOOPBACK
STARTUP_TIMEOUT_S = 30.0


class SandboxHandle:
    """A running sandbox: its URLs and key, and direct (in-process) control of its state.

    The control methods act on the server's state without going through HTTP, so they are never
    faulted and cost microseconds; the same actions exist in the admin API (docs/sandbox.md).
    """

    def __init__(self, app: SandboxApp, port: int) -> None:
        self.app = app
        self.runtime = app.runtime
        self.port = port
        self.root_url = f"http://{HOST}:{port}"
        self.base_url = f"{self.root_url}/v1"
        self.api_key: str = app.runtime.config.api_key
        self.dialect: str = app.runtime.config.dialect
        self.paging: str | None = app.runtime.config.paging

    def __repr__(self) -> str:
        paging = "" if self.paging is None else f", paging={self.paging!r}"
        return f"SandboxHandle(base_url={self.base_url!r}, dialect={self.dialect!r}{paging})"

    def auth_headers(self) -> dict[str, str]:
        """The auth header this sandbox's dialect wants (``x-api-key`` or a Bearer token)."""
        return dialect_auth_headers(self.dialect, self.api_key)

    @property
    def auth_scheme(self) -> str:
        """The client ``auth_scheme`` that reaches this sandbox (``x-api-key`` or ``bearer``)."""
        return get_dialect(self.dialect).auth

    def credentials(self) -> AutoTalkCredentials:
        """An (unsaved) ``AutoTalkCredentials`` block that reaches this sandbox."""
        from autotalk_prefect.credentials import AutoTalkCredentials

        return AutoTalkCredentials(
            api_key=SecretStr(self.api_key),
            base_url=self.base_url,
            auth_scheme=cast(AuthScheme, self.auth_scheme),
        )

    # faults
    def set_faults(self, faults: FaultConfig | None = None, **knobs: Any) -> FaultConfig:
        """Replace the fault config (a ``FaultConfig`` or its fields as keywords)."""
        config = faults if faults is not None else FaultConfig(**knobs)
        self.runtime.set_faults(config)
        return config

    def clear_faults(self) -> None:
        self.runtime.set_faults(None)

    def faults(self) -> FaultConfig:
        return self.runtime.faults.config

    # state
    def reset(self, *, seed: int | None = None, contacts: int | None = None) -> None:
        """Fresh seeded data, empty logs/stats/deliveries, no webhook receiver; faults kept."""
        self.runtime.reset(seed=seed, contacts=contacts)

    def sent_messages(self, contact_id: str | None = None) -> list[dict[str, Any]]:
        """Every message accepted by send_message, in order (or only ``contact_id``'s)."""
        return self.runtime.state.sent_messages(contact_id)

    def seed_items(self, type_name: str, n: int = 1, **fields: Any) -> list[str]:
        """Add ``n`` generated items of a type (``fields`` override), return their ids."""
        return self.runtime.state.seed_items(type_name, n, **fields)

    def contact_ids(self) -> list[str]:
        """Ids of every contact (``clients`` item), in creation order."""
        return self.runtime.state.contact_ids()

    def simulate_reply(
        self, contact_id: str, text: str, channel_id: str | None = None
    ) -> dict[str, Any]:
        """An inbound customer message to the contact's conversation; fires ``message.received``."""
        return self.runtime.state.simulate_reply(contact_id, text, channel_id)

    # webhooks
    def configure_webhook(
        self,
        url: str,
        secret: str,
        events: Iterable[str] | None = None,
        hmac: bool = False,
        delivery: str = "post",
    ) -> None:
        """Send events to ``<url>/autotalk/<event>`` with the secret header (and HMAC if asked):
        ``delivery`` ``post`` (a JSON object), ``array`` (a JSON array) or ``get`` (the query)."""
        self.runtime.webhooks.configure(url, secret, events, hmac, delivery)

    def clear_webhook(self) -> None:
        self.runtime.webhooks.clear()

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Each delivery: event, url, statusCode, attempts, delivered, error, body."""
        return self.runtime.webhooks.deliveries()

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait for queued webhook deliveries to finish; False on timeout."""
        return self.runtime.webhooks.flush(timeout)

    def stats(self) -> dict[str, Any]:
        """Request counts (total, by status, per key and per second) and faults injected."""
        return self.runtime.stats_snapshot()


@contextlib.contextmanager
def run_sandbox(
    api_key: str = DEFAULT_API_KEY,
    seed: int = 0,
    contacts: int = 25,
    faults: FaultConfig | None = None,
    port: int = 0,
    *,
    config: SandboxConfig | None = None,
    dialect: str = "contract",
) -> Iterator[SandboxHandle]:
    """Serve a fresh sandbox on 127.0.0.1 (``port=0``: a free port) until the block exits.

    ``dialect`` applies when no ``config`` is given (a config carries its own).
    """
    if config is None:
        config = SandboxConfig(
            api_key=api_key, seed=seed, contacts=contacts, faults=faults, dialect=dialect
        )
    app = create_app(config)
    try:
        with serve_in_thread(
            app, port=port, host=HOST, name="autotalk-sandbox", startup_timeout=STARTUP_TIMEOUT_S
        ) as bound_port:
            yield SandboxHandle(app, bound_port)
    finally:
        app.runtime.close()
