"""The sandbox's in-memory AutoTalk: company, channels, assistants, Dynadata, conversations.

Thread-safe: every operation holds one lock for a few microseconds (the server's event loop and
test threads share the state). Stored records are never mutated in place — a change stores a new
dict — so a record handed out stays consistent while it is serialised outside the lock. Lookups
go through dict indexes and pages are list slices, so a request costs O(page), not O(data).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autotalk_prefect.sandbox import seed as seeding
from autotalk_prefect.sandbox.campaigns import CampaignIndex
from autotalk_prefect.sandbox.functions import FUNCTIONS, FunctionDef, FunctionFailed
from autotalk_prefect.sandbox.ids import IdFactory, now_iso
from autotalk_prefect.sandbox.problems import (
    ApiProblem,
    conflict,
    not_found,
    validation_failed,
)
from autotalk_prefect.sandbox.schemas import (
    TYPE_SCHEMAS,
    apply_defaults,
    to_zod,
    validation_issues,
    validator_for,
)

Record = dict[str, Any]
EventSink = Callable[[str, Record], None]
SERVER_FIELDS = ("_id", "createdAt", "updatedAt")


@dataclass(frozen=True)
class TypeInfo:
    """A Dynadata type: name, label, whether built in, its JSON Schema and functions."""

    name: str
    label: str
    built_in: bool
    description: str
    schema: dict[str, Any]
    functions: dict[str, FunctionDef]

    def describe(self) -> Record:
        """The GET /dynadata/types entry."""
        return {
            "name": self.name,
            "label": self.label,
            "builtIn": self.built_in,
            "description": self.description,
            "functions": [f.describe() for f in self.functions.values()],
        }


TYPES: dict[str, TypeInfo] = {
    "clients": TypeInfo(
        "clients", "Clients", True, "Contacts; a contact id is a clients item _id.",
        TYPE_SCHEMAS["clients"], FUNCTIONS["clients"],
    ),
    "orders": TypeInfo(
        "orders", "Orders", False, "Orders placed by clients.",
        TYPE_SCHEMAS["orders"], FUNCTIONS["orders"],
    ),
    "tickets": TypeInfo(
        "tickets", "Tickets", False, "Support tickets.",
        TYPE_SCHEMAS["tickets"], FUNCTIONS["tickets"],
    ),
}  # fmt: skip


@dataclass
class Page:
    """One page of a listing, before it becomes the ``{data, total, limit, skip}`` envelope."""

    data: list[Record]
    total: int
    limit: int
    skip: int

    def envelope(self) -> Record:
        """The contract's list envelope."""
        return {"data": self.data, "total": self.total, "limit": self.limit, "skip": self.skip}


def _field_matches(value: Any, wanted: str) -> bool:
    """Equality filter, values compared as strings (JSON spelling); a list matches a member."""
    if isinstance(value, list):
        return any(_field_matches(v, wanted) for v in value)
    if isinstance(value, bool):
        return ("true" if value else "false") == wanted
    if value is None:
        return wanted == "null"
    return str(value) == wanted


class SandboxState:
    """All data of one sandbox; ``reset`` rebuilds it from the seed."""

    def __init__(self, *, seed: int = 0, contacts: int = 25, emit: EventSink | None = None) -> None:
        self.lock = threading.RLock()
        self.emit: EventSink = emit or (lambda event, payload: None)
        self.seed: int = seed
        self.contacts_seeded: int = contacts
        self.ids = IdFactory(seed)
        self.generation = 0
        self.reset()

    # ---- lifecycle ----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, contacts: int | None = None) -> None:
        """Drop everything and seed afresh (same seed -> same ids and data)."""
        with self.lock:
            self.seed = self.seed if seed is None else seed
            self.contacts_seeded = self.contacts_seeded if contacts is None else contacts
            self.ids = IdFactory(self.seed)
            self.rng = random.Random(f"data:{self.seed}")
            self.items: dict[str, dict[str, Record]] = {name: {} for name in TYPES}
            self.item_order: dict[str, list[str]] = {name: [] for name in TYPES}
            self.conversations: dict[str, Record] = {}
            self.conversation_order: list[str] = []
            self.conversations_by_contact: dict[str, list[str]] = {}
            self.open_conversation: dict[str, str] = {}
            self.messages: dict[str, list[Record]] = {}
            self.sent: list[Record] = []
            self.sent_by_contact: dict[str, list[Record]] = {}
            # The inbox's indexes: every message in time order, per contact, and by template.
            self.message_log: list[Record] = []
            self.messages_by_contact: dict[str, list[Record]] = {}
            self.campaigns = CampaignIndex()
            self.generation += 1  # tells the inbox's live view that a reset happened
            self.company, self.channels, self.assistants = seeding.seed_org(self.ids)
            self.channel_by_id = {c["_id"]: c for c in self.channels}
            self.assistant_by_id = {a["_id"]: a for a in self.assistants}
            seeding.seed_dynadata(self, self.rng, self.contacts_seeded)

    # ---- org ----------------------------------------------------------------------------------

    def get_company(self) -> Record:
        return self.company

    def list_channels(self) -> list[Record]:
        return list(self.channels)

    def list_assistants(self) -> list[Record]:
        return list(self.assistants)

    # ---- dynadata -----------------------------------------------------------------------------

    def type_info(self, type_name: str) -> TypeInfo:
        """The type, or 404 naming it."""
        info = TYPES.get(type_name)
        if info is None:
            raise not_found(f"unknown Dynadata type {type_name!r} (known: {', '.join(TYPES)})")
        return info

    def list_types(self) -> list[Record]:
        return [info.describe() for info in TYPES.values()]

    def _item(self, type_name: str, item_id: str) -> Record:
        self.type_info(type_name)
        item = self.items[type_name].get(item_id)
        if item is None:
            raise not_found(f"no {type_name} item with _id {item_id!r}")
        return item

    def get_item(self, type_name: str, item_id: str) -> Record:
        with self.lock:
            return self._item(type_name, item_id)

    def list_items(
        self,
        type_name: str,
        *,
        limit: int,
        skip: int,
        updated_since: str | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Page:
        with self.lock:
            self.type_info(type_name)
            store, order = self.items[type_name], self.item_order[type_name]
            if not updated_since and not filters:
                return Page([store[i] for i in order[skip : skip + limit]], len(order), limit, skip)
            matches = [
                item
                for item in (store[i] for i in order)
                if (not updated_since or item["updatedAt"] >= updated_since)
                and all(_field_matches(item.get(k), v) for k, v in (filters or {}).items())
            ]
            return Page(matches[skip : skip + limit], len(matches), limit, skip)

    def _check_fields(self, info: TypeInfo, fields: Mapping[str, Any]) -> None:
        issues = validation_issues(validator_for(info.schema), dict(fields))
        if issues:
            raise validation_failed(issues, f"{info.name} item")

    def _store_new_item(
        self, info: TypeInfo, fields: Mapping[str, Any], item_id: str | None
    ) -> Record:
        now = now_iso()
        item = {"_id": item_id or self._fresh_item_id(info.name), **fields}
        item["createdAt"] = item["updatedAt"] = now
        self.items[info.name][item["_id"]] = item
        self.item_order[info.name].append(item["_id"])
        return item

    def _fresh_item_id(self, type_name: str) -> str:
        while True:
            candidate = self.ids.new()
            if candidate not in self.items[type_name]:
                return candidate

    def create_item(self, type_name: str, body: Mapping[str, Any], *, emit: bool = True) -> Record:
        """Validate and store a new item; 409 if its ``_id`` exists, 422 naming bad fields."""
        info = self.type_info(type_name)
        fields = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        item_id = body.get("_id")
        if item_id is not None and (not isinstance(item_id, str) or not item_id):
            raise validation_failed([{"path": "_id", "message": "must be a non-empty string"}])
        fields = apply_defaults(info.schema, fields)
        self._check_fields(info, fields)
        with self.lock:
            if item_id is not None and item_id in self.items[type_name]:
                raise conflict(f"a {type_name} item with _id {item_id!r} already exists")
            item = self._store_new_item(info, fields, item_id)
        if emit and type_name == "clients":
            self.emit("client.created", self._event(item))
        return item

    def update_item(self, type_name: str, body: Mapping[str, Any]) -> Record:
        """Merge the changed fields into the stored item, validate the result, store it."""
        info = self.type_info(type_name)
        item_id = body.get("_id")
        if not isinstance(item_id, str) or not item_id:
            raise validation_failed(
                [{"path": "_id", "message": "is required (a non-empty string)"}]
            )
        changes = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        with self.lock:
            return self._merge(info, self._item(type_name, item_id), changes)

    def _merge(self, info: TypeInfo, current: Record, changes: Mapping[str, Any]) -> Record:
        merged = {k: v for k, v in current.items() if k not in SERVER_FIELDS}
        merged.update(changes)
        self._check_fields(info, merged)
        updated = {"_id": current["_id"], **merged, "createdAt": current["createdAt"]}
        updated["updatedAt"] = now_iso()
        self.items[info.name][current["_id"]] = updated
        return updated

    def validate_item(self, type_name: str, body: Mapping[str, Any]) -> Record:
        info = self.type_info(type_name)
        fields = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        errors = validation_issues(validator_for(info.schema), fields)
        return {"valid": not errors, "errors": errors}

    def get_schema(self, type_name: str) -> Record:
        return self.type_info(type_name).schema

    def get_zod(self, type_name: str) -> str:
        return to_zod(self.type_info(type_name).schema, type_name)

    def _function(self, info: TypeInfo, name: str, scope: str, args: Any) -> FunctionDef:
        fn = info.functions.get(name)
        if fn is None or fn.scope != scope:
            offered = ", ".join(f.name for f in info.functions.values() if f.scope == scope)
            raise not_found(
                f"{info.name} has no {scope}-scope function {name!r} (offered: {offered or 'none'})"
            )
        issues = validation_issues(validator_for(fn.args_schema), args, prefix="args")
        if issues:
            raise validation_failed(issues, f"args of {info.name}.{name}")
        return fn

    def execute_function(self, type_name: str, name: str, args: Mapping[str, Any]) -> Any:
        info = self.type_info(type_name)
        fn = self._function(info, name, "type", args)
        with self.lock:
            order, store = self.item_order[type_name], self.items[type_name]
            items = [store[i] for i in order]
        try:
            return fn.impl(items, dict(args))
        except FunctionFailed as exc:
            raise ApiProblem(422, "validation_failed", str(exc), []) from None

    def execute_item_function(
        self, type_name: str, item_id: str, name: str, args: Mapping[str, Any]
    ) -> Any:
        info = self.type_info(type_name)
        with self.lock:
            item = self._item(type_name, item_id)
            fn = self._function(info, name, "item", args)
            try:
                result, changes = fn.impl(item, dict(args))
            except FunctionFailed as exc:
                raise ApiProblem(422, "validation_failed", str(exc), []) from None
            if changes:
                self._merge(info, item, changes)
            return result

    def seed_items(self, type_name: str, count: int, **fields: Any) -> list[str]:
        """Create ``count`` generated items (``fields`` override generated values); no webhooks.

        Items with overrides are validated against the type's schema like any write; generated
        ones are valid by construction (a test checks the generator against the schemas), so
        only the first is, which keeps seeding 100,000 contacts to seconds, not a minute.
        """
        info = self.type_info(type_name)
        with self.lock:
            ids: list[str] = []
            for _ in range(count):
                generated = seeding.generate_item(self, type_name, self.rng)
                doc = apply_defaults(info.schema, {**generated, **fields})
                if fields or not ids:
                    self._check_fields(info, doc)
                ids.append(self._store_new_item(info, doc, None)["_id"])
            return ids

    def contact_ids(self) -> list[str]:
        with self.lock:
            return list(self.item_order["clients"])

    # ---- conversations and messages -----------------------------------------------------------

    def _contact(self, contact_id: str) -> Record:
        contact = self.items["clients"].get(contact_id)
        if contact is None:
            raise not_found(f"no contact (clients item) with _id {contact_id!r}")
        return contact

    def _channel(self, channel_id: str | None) -> Record:
        if channel_id is None:
            return self.channels[0]
        channel = self.channel_by_id.get(channel_id)
        if channel is None:
            raise not_found(f"no channel with _id {channel_id!r}")
        return channel

    def _conversation(self, conversation_id: str) -> Record:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise not_found(f"no conversation with _id {conversation_id!r}")
        return conversation

    def _open_conversation(
        self,
        contact: Record,
        *,
        channel_id: str | None = None,
        assistant_id: str | None = None,
        subject: str | None = None,
        events: list[tuple[str, Record]],
    ) -> Record:
        channel = self._channel(channel_id)
        if assistant_id is None:
            assistant_id = channel.get("assistantId")
        elif assistant_id not in self.assistant_by_id:
            raise not_found(f"no assistant with _id {assistant_id!r}")
        now = now_iso()
        conversation: Record = {
            "_id": self.ids.new(),
            "contactId": contact["_id"],
            "channelId": channel["_id"],
            "assistantId": assistant_id,
            "status": "open",
            "subject": subject,
            "createdAt": now,
            "updatedAt": now,
        }
        cid = conversation["_id"]
        self.conversations[cid] = conversation
        self.conversation_order.append(cid)
        self.conversations_by_contact.setdefault(contact["_id"], []).append(cid)
        self.open_conversation[contact["_id"]] = cid
        self.messages[cid] = []
        events.append(("conversation.opened", self._event(contact, conversation=conversation)))
        return conversation

    def _append(self, conversation: Record, **fields: Any) -> Record:
        now = now_iso()
        message: Record = {
            "_id": self.ids.new(),
            "conversationId": conversation["_id"],
            "contactId": conversation["contactId"],
            "channelId": conversation["channelId"],
            **fields,
            "createdAt": now,
        }
        self.messages[conversation["_id"]].append(message)
        self.message_log.append(message)
        self.messages_by_contact.setdefault(message["contactId"], []).append(message)
        self.conversations[conversation["_id"]] = {**conversation, "updatedAt": now}
        return message

    def _fire(self, events: Sequence[tuple[str, Record]]) -> None:
        for event, payload in events:
            self.emit(event, payload)

    def send_message(self, contact_id: str, body: Mapping[str, Any]) -> Record:
        """Record an outbound agent message in the contact's open conversation (made if none)."""
        events: list[tuple[str, Record]] = []
        with self.lock:
            contact = self._contact(contact_id)
            channel_id = body.get("channelId")
            if channel_id is not None:
                self._channel(channel_id)
            if body.get("conversationId") is not None:
                conversation = self._conversation(body["conversationId"])
                if conversation["contactId"] != contact_id:
                    raise validation_failed(
                        [{"path": "conversationId", "message": "belongs to another contact"}]
                    )
            else:
                conversation = self._current_conversation(contact, channel_id, events)
            fields: Record = {
                "role": "agent",
                "direction": "outbound",
                "message": body["message"],
                "status": "sent",
            }
            if channel_id is not None:
                fields["channelId"] = channel_id
            if body.get("mediaUrl") is not None:
                fields["mediaUrl"] = body["mediaUrl"]
            message = self._append(conversation, **fields)
            self.sent.append(message)
            self.sent_by_contact.setdefault(message["contactId"], []).append(message)
            self.campaigns.add(message, contact)
        self._fire(events)
        return message

    def list_conversations(
        self,
        *,
        limit: int,
        skip: int,
        contact_id: str | None = None,
        status: str | None = None,
        updated_since: str | None = None,
    ) -> Page:
        with self.lock:
            ids = (
                self.conversations_by_contact.get(contact_id, [])
                if contact_id is not None
                else self.conversation_order
            )
            if status is None and updated_since is None:
                page = [self.conversations[i] for i in ids[skip : skip + limit]]
                return Page(page, len(ids), limit, skip)
            matches = [
                c
                for c in (self.conversations[i] for i in ids)
                if (status is None or c["status"] == status)
                and (updated_since is None or c["updatedAt"] >= updated_since)
            ]
            return Page(matches[skip : skip + limit], len(matches), limit, skip)

    def create_conversation(self, body: Mapping[str, Any]) -> Record:
        """Open a new conversation with the contact (it becomes the contact's open one)."""
        events: list[tuple[str, Record]] = []
        with self.lock:
            contact = self._contact(body["contactId"])
            conversation = self._open_conversation(
                contact,
                channel_id=body.get("channelId"),
                assistant_id=body.get("assistantId"),
                subject=body.get("subject"),
                events=events,
            )
        self._fire(events)
        return conversation

    def process_messages(
        self, conversation_id: str, messages: Sequence[Mapping[str, Any]]
    ) -> Record:
        """Append the messages; if the last is from the user and an assistant is attached, reply."""
        with self.lock:
            conversation = self._conversation(conversation_id)
            appended = []
            for incoming in messages:
                role = incoming.get("role", "user")
                appended.append(
                    self._append(
                        self.conversations[conversation_id],
                        role=role,
                        direction="inbound" if role == "user" else "outbound",
                        message=incoming["message"],
                        status="received" if role == "user" else "sent",
                    )
                )
            assistant = self.assistant_by_id.get(conversation.get("assistantId") or "")
            if assistant is not None and appended and appended[-1]["role"] == "user":
                reply = assistant_reply(assistant, appended[-1]["message"])
                appended.append(
                    self._append(
                        self.conversations[conversation_id],
                        role="assistant",
                        direction="outbound",
                        message=reply,
                        status="sent",
                        assistantId=assistant["_id"],
                    )
                )
            return {"conversationId": conversation_id, "messages": appended}

    def list_messages(self, conversation_id: str, *, limit: int, skip: int) -> Page:
        with self.lock:
            self._conversation(conversation_id)
            messages = self.messages[conversation_id]
            return Page(messages[skip : skip + limit], len(messages), limit, skip)

    def _current_conversation(
        self, contact: Record, channel_id: str | None, events: list[tuple[str, Record]]
    ) -> Record:
        """The contact's open conversation, or a new one (which fires ``conversation.opened``)."""
        open_id = self.open_conversation.get(contact["_id"])
        if open_id:
            return self.conversations[open_id]
        return self._open_conversation(contact, channel_id=channel_id, events=events)

    def simulate_reply(self, contact_id: str, text: str, channel_id: str | None = None) -> Record:
        """An inbound customer message (fires ``message.received``, and maybe ``conversation.opened``)."""
        events: list[tuple[str, Record]] = []
        with self.lock:
            contact = self._contact(contact_id)
            if channel_id is not None:
                self._channel(channel_id)
            conversation = self._current_conversation(contact, channel_id, events)
            fields: Record = {
                "role": "user",
                "direction": "inbound",
                "message": text,
                "status": "received",
            }
            if channel_id is not None:
                fields["channelId"] = channel_id
            message = self._append(conversation, **fields)
            events.append(
                (
                    "message.received",
                    self._event(contact, conversation=conversation, message=message),
                )
            )
        self._fire(events)
        return message

    def sent_messages(self, contact_id: str | None = None) -> list[Record]:
        """Every message sent through the API, in order (one contact's, from an index)."""
        with self.lock:
            if contact_id is None:
                return list(self.sent)
            return list(self.sent_by_contact.get(contact_id, ()))

    # ---- webhook payloads ---------------------------------------------------------------------

    def _event(
        self, client: Record, *, conversation: Record | None = None, message: Record | None = None
    ) -> Record:
        """The parts of a webhook body the state knows (the dispatcher adds id/event/time)."""
        payload: Record = {
            "client": {k: client[k] for k in ("_id", "name", "phone") if k in client},
        }
        if message is not None:
            payload["message"] = {
                "_id": message["_id"],
                "conversationId": message["conversationId"],
                "text": message["message"],
            }
        if conversation is not None:
            payload["conversation"] = {"_id": conversation["_id"]}
        channel = (message or {}).get("channelId") or (conversation or {}).get("channelId")
        if channel:
            payload["trigger"] = {"channel": channel}
        return payload


def assistant_reply(assistant: Mapping[str, Any], text: str) -> str:
    """The assistant's canned, deterministic answer to ``text``."""
    quoted = text if len(text) <= 120 else text[:117] + "..."
    return f'{assistant["name"]} here: thanks for your message ("{quoted}"). How else can I help?'
