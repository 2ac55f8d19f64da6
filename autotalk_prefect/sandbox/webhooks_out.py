"""Outgoing webhooks: AutoTalk-workflow-style event POSTs to a configured receiver.

Events are queued by the state (cheap, non-blocking) and delivered by one background thread to
``<url>/autotalk/<event>`` with ``x-autotalk-secret`` (and, with ``hmac``, a timestamp and an
HMAC-SHA256 signature), retried a few times on connection errors, 429 and 5xx. Every delivery
is recorded with its status code and number of attempts.

``delivery`` says how a workflow step calls the URL: ``post`` (a JSON object), ``array`` (a
JSON array holding the event) or ``get`` (the event's fields in the query string, nested
fields as dotted names; the HMAC then signs the query string).
"""

from __future__ import annotations

import hashlib
import hmac as hmac_lib
import json
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlencode

import httpx

from autotalk_prefect.sandbox.ids import IdFactory, now_iso

WEBHOOK_EVENTS = (
    "message.received",
    "client.created",
    "conversation.opened",
    "appointment.scheduled",  # sandbox/appointments.py
    "appointment.updated",
)
RETRY_DELAYS = (0.1, 0.3)  # so at most 3 attempts
RESPONSE_KEPT = 2000  # characters of the receiver's answer kept per delivery (the inbox shows it)
Delivery = Literal["post", "array", "get"]
DELIVERIES: tuple[str, ...] = get_args(Delivery)


@dataclass(frozen=True)
class WebhookConfig:
    """Where events go, the shared secret (hidden from repr), which events, and whether to sign."""

    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] = WEBHOOK_EVENTS
    hmac: bool = False
    delivery: str = "post"  # one of DELIVERIES

    def __post_init__(self) -> None:
        if self.delivery not in DELIVERIES:
            raise ValueError(
                f"delivery must be one of {', '.join(DELIVERIES)}, got {self.delivery!r}"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
        if not self.secret:
            raise ValueError("secret must not be empty")
        unknown = sorted(set(self.events) - set(WEBHOOK_EVENTS))
        if unknown:
            raise ValueError(
                f"events holds unknown event(s) {unknown}; known: {list(WEBHOOK_EVENTS)}"
            )

    def describe(self) -> dict[str, Any]:
        """JSON-ready, without the secret."""
        return {
            "url": self.url,
            "events": list(self.events),
            "hmac": self.hmac,
            "delivery": self.delivery,
        }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` as the contract defines."""
    digest = hmac_lib.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def query_fields(body: Any, prefix: str = "") -> list[tuple[str, str]]:
    """An event as query parameters: nested objects as dotted names, lists repeated, ``null``
    as an empty value, other scalars as JSON text would spell them."""
    if isinstance(body, dict):
        return [p for key, value in body.items() for p in query_fields(value, f"{prefix}{key}.")]
    name = prefix[:-1]
    if isinstance(body, list):
        return [p for value in body for p in query_fields(value, prefix)]
    if body is None:
        return [(name, "")]
    if isinstance(body, bool):
        return [(name, "true" if body else "false")]
    return [(name, str(body))]


class WebhookDispatcher:
    """Queue + delivery thread + delivery log."""

    def __init__(self, ids: IdFactory | None = None) -> None:
        self._ids = ids or IdFactory(0)
        self._lock = threading.Condition()
        self._queue: queue.Queue[tuple[int, WebhookConfig, str, str, bytes] | None] = queue.Queue()
        self._config: WebhookConfig | None = None
        self._deliveries: list[dict[str, Any]] = []
        self._pending = 0
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def config(self) -> WebhookConfig | None:
        return self._config

    @property
    def generation(self) -> int:
        """Counts resets (what hangs off one sandbox's history starts again after one)."""
        return self._generation

    def configure(
        self,
        url: str,
        secret: str,
        events: Iterable[str] | None = None,
        hmac: bool = False,
        delivery: str = "post",
    ) -> WebhookConfig:
        config = WebhookConfig(
            url=url,
            secret=secret,
            events=tuple(events or WEBHOOK_EVENTS),
            hmac=bool(hmac),
            delivery=delivery,
        )
        with self._lock:
            self._config = config
        return config

    def clear(self) -> None:
        """Stop sending (the log is kept)."""
        with self._lock:
            self._config = None

    def reset(self) -> None:
        """Forget the config and the log; deliveries still in flight are not recorded."""
        with self._lock:
            self._config = None
            self._deliveries = []
            self._generation += 1

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Queue ``event`` if a receiver wants it (called by the state, never blocks)."""
        config = self._config
        if config is None or event not in config.events or self._closed:
            return
        body = {"id": "evt_" + self._ids.new(), "event": event, "occurredAt": now_iso(), **payload}
        raw = json.dumps(body, separators=(",", ":")).encode()
        with self._lock:
            self._pending += 1
            generation = self._generation
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="autotalk-sandbox-webhooks", daemon=True
                )
                self._thread.start()
        self._queue.put((generation, config, event, body["id"], raw))

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._deliveries]

    def delivery_count(self) -> int:
        with self._lock:
            return len(self._deliveries)

    def recent_deliveries(self, limit: int, skip: int = 0) -> list[dict[str, Any]]:
        """Newest first, one page: the inbox never copies the whole log."""
        with self._lock:
            end = len(self._deliveries) - skip
            return [dict(d) for d in reversed(self._deliveries[max(0, end - limit) : max(0, end)])]

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def close(self) -> None:
        """Stop the delivery thread (queued events are dropped)."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                generation, config, event, event_id, raw = job
                try:
                    record = self._deliver(client, config, event, event_id, raw)
                finally:
                    with self._lock:
                        if generation == self._generation:
                            self._deliveries.append(record)
                        self._pending -= 1
                        self._lock.notify_all()

    def _deliver(
        self, client: httpx.Client, config: WebhookConfig, event: str, event_id: str, raw: bytes
    ) -> dict[str, Any]:
        url = config.url.rstrip("/") + f"/autotalk/{event}"
        record: dict[str, Any] = {
            "eventId": event_id,
            "event": event,
            "url": url,
            "statusCode": None,
            "attempts": 0,
            "delivered": False,
            "error": None,
            "response": None,
            "body": json.loads(raw),
        }
        method, content = "POST", raw
        if config.delivery == "array":
            content = b"[" + raw + b"]"
        elif config.delivery == "get":
            method, content = "GET", urlencode(query_fields(record["body"])).encode()
        record["method"] = method
        for attempt in range(len(RETRY_DELAYS) + 1):
            if attempt:
                time.sleep(RETRY_DELAYS[attempt - 1])
            headers = {"x-autotalk-secret": config.secret}
            if method == "POST":
                headers["content-type"] = "application/json"
            if config.hmac:  # over what carries the fields: the body, or the query string
                timestamp = str(int(time.time()))
                headers["x-autotalk-timestamp"] = timestamp
                headers["x-autotalk-signature"] = sign(config.secret, timestamp, content)
            record["attempts"] = attempt + 1
            try:
                if method == "GET":
                    target = f"{url}?{content.decode()}"
                    response = client.get(target, headers=headers)
                else:
                    response = client.post(url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
                continue
            record["statusCode"] = response.status_code
            record["response"] = response.text[:RESPONSE_KEPT]
            if response.is_success:
                record["delivered"], record["error"] = True, None
                break
            record["error"] = f"receiver answered {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                break
        return record
