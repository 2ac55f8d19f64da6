"""Outbound messages grouped by text template, kept up to date as they are sent.

The sandbox never sees a campaign id (the contract's send body has none), so a campaign is what
a customer would recognise: the same text once the contact's own name is taken out. Each send
costs two dict updates, so the inbox's campaign view never rescans the message log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NAME_PLACEHOLDER = "{{ name }}"


def template_of(text: str, contact: Mapping[str, Any]) -> str:
    """``text`` with the contact's name replaced by ``{{ name }}`` (the template it came from)."""
    name = contact.get("name")
    if isinstance(name, str) and len(name) >= 2 and name in text:
        return text.replace(name, NAME_PLACEHOLDER)
    return text


@dataclass
class CampaignGroup:
    """The messages of one template: how many, to whom, and who got it more than once."""

    template: str
    first_at: str
    last_at: str
    messages: int = 0
    per_contact: dict[str, int] = field(default_factory=dict)
    duplicated: dict[str, None] = field(default_factory=dict)  # an ordered set

    def describe(self, names: Mapping[str, Any], max_listed: int) -> dict[str, Any]:
        """JSON-ready, with at most ``max_listed`` duplicated contacts spelled out."""
        listed = list(self.duplicated)[:max_listed]
        return {
            "template": self.template,
            "messages": self.messages,
            "contacts": len(self.per_contact),
            "duplicatedContacts": len(self.duplicated),
            "duplicates": [
                {
                    "contactId": cid,
                    "name": (names.get(cid) or {}).get("name"),
                    "messages": self.per_contact[cid],
                }
                for cid in listed
            ],
            "firstAt": self.first_at,
            "lastAt": self.last_at,
        }


class CampaignIndex:
    """Template -> group, updated by the state on every outbound send (under the state's lock)."""

    def __init__(self) -> None:
        self.groups: dict[str, CampaignGroup] = {}

    def add(self, message: Mapping[str, Any], contact: Mapping[str, Any]) -> None:
        key = template_of(str(message["message"]), contact)
        at = str(message["createdAt"])
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = CampaignGroup(key, at, at)
        group.messages += 1
        group.last_at = at
        contact_id = str(message["contactId"])
        count = group.per_contact.get(contact_id, 0) + 1
        group.per_contact[contact_id] = count
        if count == 2:
            group.duplicated[contact_id] = None

    def ranked(self) -> list[CampaignGroup]:
        """Groups with duplicates first, then by size (what a reviewer should see first)."""
        return sorted(self.groups.values(), key=lambda g: (-len(g.duplicated), -g.messages))
