"""Rendered table rows, kept: a message never changes once stored, so neither does its row.

The front page is re-rendered every time the live view sees a change, and each time it shows
mostly the rows it showed before; escaping a row's dozen fields costs more than the JSON twin
spends on the whole record, so each row is rendered once and reused (bounded, least recently
used first out). Rows not cached yet are rendered by ``message_rows``, plain Python rather
than a Jinja template: Jinja costs ~5 us a row, which made a cold first page (after a reset, or
the first visit) cost 2.7-3.7x its JSON twin (bench/inbox.py). Keys carry the state's reset
generation (a reset reuses ids).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from markupsafe import Markup, escape

Row = dict[str, Any]
SHOWN = 9  # values of a message that its row shows
_SEP = "\x00"


def _shown(m: Row) -> tuple[Any, ...]:
    """The values a row shows, in the order ``_row`` places them (SHOWN of them)."""
    return (
        m["direction"],
        m["conversationId"],
        m["createdAt"],
        m["contactId"],
        m["contactName"] or m["contactId"],
        m["channelName"] or m["channelId"],
        m["status"],
        m["role"],
        m["message"],
    )


def _row(values: Sequence[str]) -> str:
    """One row from its SHOWN values, each one already escaped."""
    direction, conversation, created, contact, name, channel, status, role, text = values
    return (
        f'  <tr class="{direction}">\n'
        f'    <td><a href="/conversations/{conversation}"><time>{created}</time></a></td>\n'
        f'    <td><a href="/contacts/{contact}">{name}</a></td>\n'
        f"    <td>{direction}</td><td>{channel}</td><td>{status}</td><td>{role}</td>\n"
        f'    <td class="text">{text}</td>\n'
        "  </tr>\n"
    )


def message_rows(rows: Sequence[Row]) -> list[str]:
    """Each message's front-page row; every value shown is escaped (``& < > " '``, as Jinja does).

    One ``markupsafe.escape`` call (a single C pass) escapes all the rows' values, joined by NUL
    and split again: escaping neither adds nor removes a NUL, so the parts line up with the
    values unless a value holds a NUL itself, and then each value is escaped on its own.
    """
    values = [str(value) for m in rows for value in _shown(m)]
    parts = str.split(escape(_SEP.join(values)), _SEP)  # str's split: plain strings back
    if len(parts) != len(values):
        parts = [str(escape(value)) for value in values]
    return [_row(parts[at : at + SHOWN]) for at in range(0, len(parts), SHOWN)]


class RowCache:
    """``render(rows)``: the rows' HTML joined, each row rendered at most once while cached."""

    def __init__(
        self,
        render_rows: Callable[[Sequence[Row]], list[str]],
        key: Callable[[Row], Hashable],
        size: int,
    ) -> None:
        self._render_rows = render_rows  # each row's HTML, every value in it escaped
        self._key = key
        self._size = size
        self._rows: OrderedDict[Hashable, str] = OrderedDict()

    def render(self, rows: Sequence[Row]) -> Markup:
        cache = self._rows
        keys = [self._key(row) for row in rows]
        missing = {key: row for key, row in zip(keys, rows, strict=True) if key not in cache}
        if missing:
            rendered = self._render_rows(list(missing.values()))
            cache.update(zip(missing, rendered, strict=True))
        shown = []
        for key in keys:
            cache.move_to_end(key)
            shown.append(cache[key])
        while len(cache) > self._size:
            cache.popitem(last=False)
        return Markup("".join(shown))  # each part was escaped by render_rows

    def clear(self) -> None:
        self._rows.clear()
