"""Rendered table rows, kept: a message never changes once stored, so neither does its row.

The front page is re-rendered every time the live view sees a change, and each time it shows
mostly the rows it showed before; escaping a row's dozen fields costs more than the JSON twin
spends on the whole record, so each row is rendered once and reused (bounded, least recently
used first out). Keys carry the state's reset generation, because a reset reuses message ids.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from markupsafe import Markup

Row = dict[str, Any]


class RowCache:
    """``render(rows)``: the rows' HTML joined, each row rendered at most once while cached."""

    def __init__(
        self, render_row: Callable[[Row], str], key: Callable[[Row], Hashable], size: int
    ) -> None:
        self._render_row = render_row
        self._key = key
        self._size = size
        self._rows: OrderedDict[Hashable, str] = OrderedDict()

    def render(self, rows: Iterable[Row]) -> Markup:
        parts = []
        cache = self._rows
        for row in rows:
            key = self._key(row)
            html = cache.get(key)
            if html is None:
                html = cache[key] = str(self._render_row(row))
                if len(cache) > self._size:
                    cache.popitem(last=False)
            else:
                cache.move_to_end(key)
            parts.append(html)
        return Markup("".join(parts))  # each part was escaped by Jinja

    def clear(self) -> None:
        self._rows.clear()
