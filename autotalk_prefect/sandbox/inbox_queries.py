"""What the inbox shows, as JSON-ready data: one function per view, shared by page and twin.

The HTML page and its ``/_sandbox/inbox/...`` twin call the same function, so a test or a
script reads exactly what a person sees. Every query works on the state's indexes (the message
log, per-contact lists, per-conversation lists, the campaign index) and copies one page of
records, so its cost follows the page size; only a text search reads each message it filters.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from autotalk_prefect.sandbox.problems import not_found
from autotalk_prefect.sandbox.runtime import SandboxRuntime
from autotalk_prefect.sandbox.state import Record, SandboxState

CONTACT_FIELDS = ("_id", "name", "phone", "email", "status")
DUPLICATES_LISTED = 50


def _created(message: Record) -> str:
    return str(message["createdAt"])


@dataclass(frozen=True)
class MessageQuery:
    """The inbox's message filters: contact, text (case-insensitive substring), time window."""

    contact_id: str | None = None
    text: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 50
    skip: int = 0

    def params(self) -> dict[str, str]:
        """The filters as query parameters (paging links keep them)."""
        pairs = {
            "contactId": self.contact_id,
            "q": self.text,
            "since": self.since,
            "until": self.until,
        }
        return {k: v for k, v in pairs.items() if v}


def _row(state: SandboxState, message: Record) -> Record:
    """A message as the inbox lists it: with its contact's name and its channel's name."""
    contact = state.items["clients"].get(message["contactId"]) or {}
    channel = state.channel_by_id.get(message.get("channelId") or "") or {}
    return {**message, "contactName": contact.get("name"), "channelName": channel.get("name")}


def summary(runtime: SandboxRuntime) -> Record:
    """The counters the live view polls; ``version`` changes whenever anything shown does."""
    state = runtime.state
    with state.lock:
        messages, sent = len(state.message_log), len(state.sent)
        conversations, contacts = len(state.conversations), len(state.item_order["clients"])
        generation = state.generation
    deliveries = runtime.webhooks.delivery_count()
    faults = runtime.faults.config
    return {
        "messages": messages,
        "sent": sent,
        "conversations": conversations,
        "contacts": contacts,
        "deliveries": deliveries,
        "faultsActive": faults.active,
        "version": f"{generation}.{messages}.{deliveries}.{hash(repr(faults))}",
    }


def messages(runtime: SandboxRuntime, query: MessageQuery) -> Record:
    """A page of messages, newest first.

    The log (and each contact's list) is in time order, so the time window is two bisections;
    without a text filter the page is a slice.
    """
    state = runtime.state
    with state.lock:
        if query.contact_id is not None:
            source = state.messages_by_contact.get(query.contact_id, [])
        else:
            source = state.message_log
        lo = bisect_left(source, query.since, key=_created) if query.since else 0
        hi = bisect_right(source, query.until, key=_created) if query.until else len(source)
        if query.text:
            needle = query.text.casefold()
            matches = [m for m in reversed(source[lo:hi]) if needle in str(m["message"]).casefold()]
            total = len(matches)
            page = matches[query.skip : query.skip + query.limit]
        else:
            total = max(0, hi - lo)
            end = hi - query.skip
            page = source[max(lo, end - query.limit) : end][::-1] if end > lo else []
        rows = [_row(state, m) for m in page]
    return {"data": rows, "total": total, "limit": query.limit, "skip": query.skip}


def _contact_card(state: SandboxState, contact: Record) -> Record:
    cid = contact["_id"]
    own = state.messages_by_contact.get(cid, [])
    return {
        **{k: contact.get(k) for k in CONTACT_FIELDS},
        "conversations": len(state.conversations_by_contact.get(cid, [])),
        "messages": len(own),
        "lastMessageAt": own[-1]["createdAt"] if own else None,
    }


def contacts(runtime: SandboxRuntime, *, text: str | None, limit: int, skip: int) -> Record:
    """A page of contacts (creation order), optionally those whose name, phone or id has ``text``."""
    state = runtime.state
    with state.lock:
        store, order = state.items["clients"], state.item_order["clients"]
        if text:
            needle = text.casefold()
            ids = [
                i
                for i in order
                if needle
                in f"{i} {store[i].get('name', '')} {store[i].get('phone', '')}".casefold()
            ]
        else:
            ids = order
        rows = [_contact_card(state, store[i]) for i in ids[skip : skip + limit]]
        return {"data": rows, "total": len(ids), "limit": limit, "skip": skip}


def contact(runtime: SandboxRuntime, contact_id: str) -> Record:
    """One contact and its conversations (newest first), each with its message count."""
    state = runtime.state
    with state.lock:
        record = state.items["clients"].get(contact_id)
        if record is None:
            raise not_found(f"no contact (clients item) with _id {contact_id!r}")
        conversations = [
            _conversation_card(state, state.conversations[cid])
            for cid in reversed(state.conversations_by_contact.get(contact_id, []))
        ]
        return {"contact": _contact_card(state, record), "conversations": conversations}


def _conversation_card(state: SandboxState, conversation: Record) -> Record:
    own = state.messages[conversation["_id"]]
    channel = state.channel_by_id.get(conversation["channelId"]) or {}
    return {
        **conversation,
        "channelName": channel.get("name"),
        "messages": len(own),
        "lastMessage": own[-1]["message"] if own else None,
    }


def conversation(runtime: SandboxRuntime, conversation_id: str, *, limit: int, skip: int) -> Record:
    """One conversation and a page of its messages in the order they were exchanged."""
    state = runtime.state
    with state.lock:
        record = state.conversations.get(conversation_id)
        if record is None:
            raise not_found(f"no conversation with _id {conversation_id!r}")
        own = state.messages[conversation_id]
        contact_record = state.items["clients"].get(record["contactId"]) or {
            "_id": record["contactId"]
        }
        return {
            "conversation": _conversation_card(state, record),
            "contact": {k: contact_record.get(k) for k in CONTACT_FIELDS},
            "data": [_row(state, m) for m in own[skip : skip + limit]],
            "total": len(own),
            "limit": limit,
            "skip": skip,
        }


def campaigns(runtime: SandboxRuntime, *, limit: int, skip: int) -> Record:
    """Outbound messages grouped by template; groups that reached a contact twice come first."""
    state = runtime.state
    with state.lock:
        ranked = state.campaigns.ranked()
        names = state.items["clients"]
        rows = [g.describe(names, DUPLICATES_LISTED) for g in ranked[skip : skip + limit]]
        duplicated = sum(1 for g in ranked if g.duplicated)
    return {
        "data": rows,
        "total": len(ranked),
        "withDuplicates": duplicated,
        "limit": limit,
        "skip": skip,
    }


def deliveries(runtime: SandboxRuntime, *, limit: int, skip: int) -> Record:
    """A page of webhook deliveries, newest first, and where they go (never the secret)."""
    webhooks = runtime.webhooks
    config = webhooks.config
    return {
        "receiver": config.describe() if config else None,
        "data": webhooks.recent_deliveries(limit, skip),
        "total": webhooks.delivery_count(),
        "limit": limit,
        "skip": skip,
    }


def faults(runtime: SandboxRuntime) -> Record:
    """The current fault config and what it has injected since the last reset."""
    return {
        "config": runtime.faults.config.to_dict(),
        "active": runtime.faults.config.active,
        "injected": dict(sorted(runtime.faults.counts.items())),
    }
