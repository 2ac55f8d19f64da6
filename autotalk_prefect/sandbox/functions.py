"""The Dynadata functions each sandbox type offers (``executeFunction``), with real behaviour.

A type-scope function reads every item of its type; an item-scope function gets one item and may
return changed fields, which the state merges, validates against the type's schema and stores.
Each function declares a JSON Schema for its ``args``, so a bad call is a 422 naming the argument.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Item = dict[str, Any]
TypeImpl = Callable[[Sequence[Item], dict[str, Any]], Any]
ItemImpl = Callable[[Item, dict[str, Any]], "tuple[Any, dict[str, Any] | None]"]


class FunctionFailed(Exception):
    """The function refused to run on this input (a 422 with this message)."""


@dataclass(frozen=True)
class FunctionDef:
    """One function: its name, scope, what it does, its argument schema and implementation."""

    name: str
    scope: Literal["type", "item"]
    description: str
    impl: Callable[..., Any]
    args_schema: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "additionalProperties": False}
    )

    def describe(self) -> dict[str, Any]:
        """The entry listed under ``functions`` in GET /dynadata/types."""
        return {
            "name": self.name,
            "scope": self.scope,
            "description": self.description,
            "args": self.args_schema,
        }


def _args(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(required),
    }


STATUS_ARG = {"status": {"type": "string", "minLength": 1}}


def _count(items: Sequence[Item], args: dict[str, Any]) -> int:
    status = args.get("status")
    return sum(1 for item in items if status is None or item.get("status") == status)


def _count_by_status(items: Sequence[Item], args: dict[str, Any]) -> dict[str, int]:
    return dict(sorted(Counter(str(item.get("status")) for item in items).items()))


def _find_by_phone(items: Sequence[Item], args: dict[str, Any]) -> Item | None:
    return next((item for item in items if item.get("phone") == args["phone"]), None)


def _add_tag(item: Item, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    tags = list(item.get("tags", []))
    if args["tag"] not in tags:
        tags.append(args["tag"])
    return tags, {"tags": tags}


def order_total(item: Item) -> float:
    """Sum of quantity x unit price over the order's lines, to the cent."""
    total = sum(
        line.get("quantity", 0) * line.get("unitPrice", 0) for line in item.get("items", [])
    )
    return float(round(total, 2))


def _total(item: Item, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    return order_total(item), None


def _revenue(items: Sequence[Item], args: dict[str, Any]) -> dict[str, float]:
    status = args.get("status")
    sums: dict[str, float] = {}
    for item in items:
        if item.get("status") == "cancelled" and status is None:
            continue
        if status is not None and item.get("status") != status:
            continue
        currency = str(item.get("currency", "USD"))
        sums[currency] = round(sums.get(currency, 0.0) + order_total(item), 2)
    return dict(sorted(sums.items()))


def _cancel(item: Item, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    if item.get("status") in ("shipped", "delivered"):
        raise FunctionFailed(f"order is already {item['status']} and cannot be cancelled")
    return {"status": "cancelled"}, {"status": "cancelled"}


def _close(item: Item, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    changes: dict[str, Any] = {"status": "closed"}
    if "resolution" in args:
        changes["resolution"] = args["resolution"]
    return changes, changes


def _assign(item: Item, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    if item.get("status") == "closed":
        raise FunctionFailed("ticket is closed and cannot be assigned")
    return {"assignee": args["assignee"]}, {"assignee": args["assignee"]}


def _defs(*defs: FunctionDef) -> dict[str, FunctionDef]:
    return {d.name: d for d in defs}


FUNCTIONS: dict[str, dict[str, FunctionDef]] = {
    "clients": _defs(
        FunctionDef(
            "count",
            "type",
            "Number of clients (optionally with this status).",
            _count,
            _args(STATUS_ARG),
        ),
        FunctionDef("countByStatus", "type", "Clients per status.", _count_by_status),
        FunctionDef(
            "findByPhone",
            "type",
            "The client with this phone number, or null.",
            _find_by_phone,
            _args({"phone": {"type": "string", "minLength": 1}}, ["phone"]),
        ),
        FunctionDef(
            "addTag",
            "item",
            "Add a tag to the client; returns its tags.",
            _add_tag,
            _args({"tag": {"type": "string", "minLength": 1}}, ["tag"]),
        ),
    ),
    "orders": _defs(
        FunctionDef(
            "count",
            "type",
            "Number of orders (optionally with this status).",
            _count,
            _args(STATUS_ARG),
        ),
        FunctionDef("countByStatus", "type", "Orders per status.", _count_by_status),
        FunctionDef(
            "revenue",
            "type",
            "Order totals per currency (cancelled orders left out unless status is given).",
            _revenue,
            _args(STATUS_ARG),
        ),
        FunctionDef("total", "item", "The order's total: sum of quantity x unitPrice.", _total),
        FunctionDef("cancel", "item", "Cancel the order (not once shipped).", _cancel),
    ),
    "tickets": _defs(
        FunctionDef(
            "count",
            "type",
            "Number of tickets (optionally with this status).",
            _count,
            _args(STATUS_ARG),
        ),
        FunctionDef("countByStatus", "type", "Tickets per status.", _count_by_status),
        FunctionDef(
            "close",
            "item",
            "Close the ticket, with an optional resolution.",
            _close,
            _args({"resolution": {"type": "string"}}),
        ),
        FunctionDef(
            "assign",
            "item",
            "Assign the ticket to someone.",
            _assign,
            _args({"assignee": {"type": "string", "minLength": 1}}, ["assignee"]),
        ),
    ),
}
