"""Seed data: the company, its channels and assistants, and generated Dynadata items.

Everything is drawn from a ``random.Random`` seeded by the sandbox seed, so the same seed gives
the same contacts (names, phones, ids) on every start and after every reset.
"""

from __future__ import annotations

import random
import unicodedata
from typing import Any, Protocol

from autotalk_prefect.sandbox.ids import IdFactory, now_iso


class Seedable(Protocol):
    """What seeding reads and calls of the state (``SandboxState``, which imports this module)."""

    ids: IdFactory
    item_order: dict[str, list[str]]

    def seed_items(self, type_name: str, count: int, **fields: Any) -> list[str]: ...


FIRST = ["Ana", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Gabriela", "Hugo", "Isabel",
         "João", "Karin", "Lucas", "Marta", "Nicolas", "Olivia", "Pedro", "Quinn", "Rosa",
         "Samuel", "Tania", "Ulises", "Vera", "Walter", "Ximena", "Yara", "Zoe"]  # fmt: skip
LAST = ["Almeida", "Barros", "Costa", "Duarte", "Esteves", "Ferreira", "Gomes", "Hansen",
        "Ito", "Jensen", "Klein", "Lopes", "Moreau", "Nunes", "Oliveira", "Pereira", "Rocha",
        "Silva", "Torres", "Vidal"]  # fmt: skip
STATUSES = ["active", "active", "active", "lead", "lead", "inactive"]
TAGS = ["vip", "newsletter", "wholesale", "churn-risk", "beta"]
LANGUAGES = ["en", "es", "pt", "fr", "de"]
# by position, not drawn: the random stream (and so every other field) stays as it was
TIMEZONES = ["Europe/Madrid", "America/Mexico_City", "America/Sao_Paulo", "America/New_York"]
PRODUCTS = [("TSHIRT-S", "T-shirt S", 19.9), ("HOODIE-M", "Hoodie M", 49.0),
            ("CAP-01", "Cap", 15.5), ("MUG-02", "Mug", 9.75), ("SOCKS-3P", "Socks (3 pairs)", 12.0)]  # fmt: skip
SUBJECTS = ["Where is my order?", "Wrong size delivered", "Refund request",
            "Change delivery address", "Invoice copy"]  # fmt: skip


def seed_org(ids: IdFactory) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The company, its channels (WhatsApp with an assistant, web chat without) and assistants."""
    now = now_iso()
    company: dict[str, Any] = {
        "_id": ids.new(),
        "name": "Acme Outfitters (sandbox)",
        "email": "ops@acme.example",
        "plan": "business",
        "timezone": "America/Sao_Paulo",
        "createdAt": now,
    }
    assistants: list[dict[str, Any]] = [
        {"_id": ids.new(), "name": "Ava", "description": "Sales and order status assistant.",
         "model": "sandbox-canned-1", "active": True},
        {"_id": ids.new(), "name": "Sol", "description": "Support triage assistant (paused).",
         "model": "sandbox-canned-1", "active": False},
    ]  # fmt: skip
    channels: list[dict[str, Any]] = [
        {"_id": ids.new(), "type": "whatsapp", "name": "WhatsApp Sales", "status": "connected",
         "phone": "+15550100000", "assistantId": assistants[0]["_id"]},
        {"_id": ids.new(), "type": "webchat", "name": "Website chat", "status": "connected"},
    ]  # fmt: skip
    return company, channels, assistants


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def generate_item(state: Seedable, type_name: str, rng: random.Random) -> dict[str, Any]:
    """A plausible, schema-valid document of ``type_name`` (orders/tickets point at a contact)."""
    if type_name == "clients":
        n = len(state.item_order["clients"]) + 1
        first, last = rng.choice(FIRST), rng.choice(LAST)
        return {
            "name": f"{first} {last}",
            "phone": f"+1555{rng.randrange(100, 1000)}{n:04d}",
            "email": _ascii(f"{first}.{last}{n}@example.com".lower()),
            "status": rng.choice(STATUSES),
            "tags": sorted(rng.sample(TAGS, rng.randrange(0, 3))),
            "language": rng.choice(LANGUAGES),
            "timezone": TIMEZONES[(n - 1) % len(TIMEZONES)],
        }
    contacts = state.item_order["clients"]
    client_id = rng.choice(contacts) if contacts else state.ids.new()
    if type_name == "orders":
        lines = []
        for sku, name, price in rng.sample(PRODUCTS, rng.randrange(1, 4)):
            lines.append(
                {"sku": sku, "name": name, "quantity": rng.randrange(1, 4), "unitPrice": price}
            )
        n = len(state.item_order["orders"]) + 1001
        return {
            "clientId": client_id,
            "number": f"SO-{n}",
            "items": lines,
            "currency": "USD",
            "status": rng.choice(["pending", "paid", "paid", "shipped", "delivered"]),
        }
    if type_name == "tickets":
        return {
            "clientId": client_id,
            "subject": rng.choice(SUBJECTS),
            "priority": rng.choice(["low", "normal", "normal", "high"]),
            "status": rng.choice(["open", "open", "pending", "closed"]),
        }
    return {}


def seed_dynadata(state: Seedable, rng: random.Random, contacts: int) -> None:
    """``contacts`` clients, as many orders, half as many tickets (called under the state lock)."""
    for type_name, count in (
        ("clients", contacts),
        ("orders", contacts),
        ("tickets", contacts // 2),
    ):
        if count:
            state.seed_items(type_name, count)
