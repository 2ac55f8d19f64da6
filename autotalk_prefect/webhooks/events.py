"""From an accepted webhook body to one Prefect event, and how that event reaches Prefect.

Why the default emitter POSTs to ``/api/events`` instead of using ``emit_event`` or the
websocket events client (read in prefect 3.9.1): ``emit_event`` queues the event for a
background worker and swallows failures; the websocket client's ``emit`` returns once the
frame is written, and confirms only at checkpoints (a ping every 700 events or 30 s, answered
by the server's websocket layer rather than by the code that publishes the event). The HTTP
route answers 204 only after the server has published the event, so a 202 from the receiver
means Prefect has it, and a failure becomes a 503 that AutoTalk retries.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # Prefect loads when the first event is built, not when the receiver starts
    from prefect.events import Event

EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://api.autotalk.io/webhooks")
"""uuid5 namespace of Prefect event ids derived from AutoTalk event ids (never change it)."""

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 200


@runtime_checkable
class EventEmitter(Protocol):
    """Hands one event to Prefect; returns once Prefect confirmed it, raises otherwise."""

    async def emit(self, event: Event) -> None: ...


class PrefectApiEmitter:
    """The default emitter: ``POST /events`` through Prefect's own API client.

    The client comes from ``prefect.get_client()`` on each call, so it follows the current
    Prefect settings (``PREFECT_API_URL``, ``PREFECT_API_KEY`` / auth string) and Prefect's
    own retry rules for 429/5xx answers. Any failure propagates to the caller.
    """

    async def emit(self, event: Event) -> None:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            # PrefectClient raises for any non-2xx answer (after its own retries).
            await client.request("POST", "/events", json=[event.model_dump(mode="json")])


def get_path(body: Mapping[str, Any], dotted: str) -> Any:
    """``body["a"]["b"]`` for ``"a.b"``; None where any step is missing or not an object."""
    value: Any = body
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def event_key(body: Mapping[str, Any], dedupe_fields: Sequence[str] = ()) -> str | None:
    """What makes two deliveries "the same event": the sender's id, else the named fields.

    The sender's id (body ``id``) comes first; else, when ``dedupe_fields`` are configured and
    the body has at least one of them, a digest of their values (a missing field counts as
    null). Otherwise None: AutoTalk's placeholders carry no event id, and two identical bodies
    (two customers sending "yes", one customer on two days) are two real events, so an
    unkeyed delivery is never deduplicated.
    """
    value = body.get("id")
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= 256 and value.strip():
        return "id:" + value
    if dedupe_fields:
        values = [get_path(body, field) for field in dedupe_fields]
        if any(v is not None for v in values):
            canonical = json.dumps(
                dict(zip(dedupe_fields, values, strict=True)),
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            return "fields:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return None


def prefect_event_id(event_name: str, key: str | None) -> uuid.UUID:
    """The Prefect event id: uuid5 of a keyed event (a redelivery carries the same id, so
    Prefect keeps one copy), a fresh uuid4 for an unkeyed one (each delivery is its own)."""
    if key is None:
        return uuid.uuid4()
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{event_name}\n{key}")


def _clean_id(value: Any) -> str | None:
    """An id usable inside a resource id (str or int, no spaces or odd characters)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        return None
    if not all(ch.isascii() and (ch.isalnum() or ch in "_-.:") for ch in value):
        return None
    return value


def _name(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:MAX_NAME_CHARS]
    return None


def _occurred(value: Any, now: datetime, tolerance_seconds: int) -> datetime:
    """``occurredAt`` when it is a timezone-aware ISO 8601 time not in the future, else now."""
    if not isinstance(value, str) or len(value) > 64:
        return now
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return now
    if when.tzinfo is None or when.utcoffset() is None:
        return now
    when = when.astimezone(timezone.utc)
    if when > now + timedelta(seconds=tolerance_seconds) or when.year < 2000:
        return now
    return when


def build_event(
    event: str,
    body: Mapping[str, Any],
    key: str | None,
    *,
    prefix: str = "autotalk",
    now: datetime | None = None,
    tolerance_seconds: int = 300,
) -> Event:
    """The Prefect event for an accepted webhook ``event`` (e.g. ``message.received``).

    ``key`` is what :func:`event_key` returned: a keyed event gets a deterministic id, an
    unkeyed one (None) a fresh uuid4.

    Resource: the contact (``autotalk.contact.<client._id>``), else ``autotalk.webhook``.
    Related, where the body has them: conversation, message, Dynadata item and channel.
    """
    now = now or datetime.now(timezone.utc)
    name = f"{prefix}.{event}"
    client = body.get("client")
    client = client if isinstance(client, Mapping) else {}
    contact_id = _clean_id(client.get("_id"))

    resource: dict[str, str]
    if contact_id is not None:
        resource = {
            "prefect.resource.id": f"autotalk.contact.{contact_id}",
            "autotalk.contact.id": contact_id,
        }
        contact_name = _name(client.get("name"))
        if contact_name:
            resource["prefect.resource.name"] = contact_name
    else:
        resource = {"prefect.resource.id": "autotalk.webhook", "prefect.resource.name": "AutoTalk"}
    resource["autotalk.event"] = event

    related: list[dict[str, str]] = []

    def add(kind: str, raw_id: Any, role: str, **labels: str) -> None:
        clean = _clean_id(raw_id)
        resource_id = f"autotalk.{kind}.{clean}"
        if clean is None or any(r["prefect.resource.id"] == resource_id for r in related):
            return
        related.append(
            {
                "prefect.resource.id": resource_id,
                "prefect.resource.role": role,
                "prefect.resource.name": f"{role} {clean}",  # the UI shows it, not the bare id
                **labels,
            }
        )

    message = body.get("message")
    message = message if isinstance(message, Mapping) else {}
    conversation = body.get("conversation")
    conversation = conversation if isinstance(conversation, Mapping) else {}
    add("conversation", conversation.get("_id") or message.get("conversationId"), "conversation")
    add("message", message.get("_id"), "message")
    item = body.get("item")
    if isinstance(item, Mapping):
        item_type = _clean_id(item.get("type"))
        if item_type is not None:
            add(f"dynadata.{item_type}", item.get("_id"), "item", **{"autotalk.type": item_type})
    trigger = body.get("trigger")
    if isinstance(trigger, Mapping):
        add("channel", trigger.get("channel"), "channel")

    from prefect.events import Event

    return Event.model_validate(
        {
            "event": name,
            "resource": resource,
            "related": related,
            "payload": dict(body),
            "id": prefect_event_id(name, key),
            "occurred": _occurred(body.get("occurredAt"), now, tolerance_seconds),
        }
    )
