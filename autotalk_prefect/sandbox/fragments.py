"""Rendered table rows, kept: a message never changes once stored, so neither does its row.

The front page is re-rendered every time the live view sees a change, and each time it shows
mostly the rows it showed before; escaping a row's dozen fields costs more than the JSON twin
spends on the whole record, so each row is rendered once and reused (bounded, least recently
used first out). A row not cached yet is rendered by ``message_row``, a plain function rather
than a Jinja template: Jinja costs ~5 us a row, which made a cold first page (after a reset, or
the first visit) cost 2.7-3.7x its JSON twin (bench/inbox.py). Keys carry the state's reset
generation (a reset reuses ids).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from html import escape
from typing import Any

from markupsafe import Markup

Row = dict[str, Any]


def _e(value: Any) -> str:
    """``value`` as HTML text, safe inside an element or a double- or single-quoted attribute."""
    return escape(str(value), quote=True)


def message_row(m: Row) -> str:
    """One front-page message row; every value from the message is escaped (``& < > " '``)."""
    direction = _e(m["direction"])
    return (
        f'  <tr class="{direction}">\n'
        f'    <td><a href="/conversations/{_e(m["conversationId"])}">'
        f"<time>{_e(m['createdAt'])}</time></a></td>\n"
        f'    <td><a href="/contacts/{_e(m["contactId"])}">'
        f"{_e(m['contactName'] or m['contactId'])}</a></td>\n"
        f"    <td>{direction}</td><td>{_e(m['channelName'] or m['channelId'])}</td>"
        f"<td>{_e(m['status'])}</td><td>{_e(m['role'])}</td>\n"
        f'    <td class="text">{_e(m["message"])}</td>\n'
        "  </tr>\n"
    )


class RowCache:
    """``render(rows)``: the rows' HTML joined, each row rendered at most once while cached."""

    def __init__(
        self,
        render_row: Callable[[Row], str],
        key: Callable[[Row], Hashable],
        size: int,
    ) -> None:
        self._render_row = render_row  # one row's HTML, every value in it escaped
        self._key = key
        self._size = size
        self._rows: OrderedDict[Hashable, str] = OrderedDict()

    def render(self, rows: Sequence[Row]) -> Markup:
        cache = self._rows
        shown = []
        for row in rows:
            key = self._key(row)
            html = cache.get(key)
            if html is None:
                html = cache[key] = self._render_row(row)
            else:
                cache.move_to_end(key)
            shown.append(html)
        while len(cache) > self._size:
            cache.popitem(last=False)
        return Markup("".join(shown))  # each part was escaped by render_row

    def clear(self) -> None:
        self._rows.clear()
