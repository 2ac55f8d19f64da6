"""Rendered table rows, kept: a message never changes once stored, so neither does its row.

The front page is re-rendered every time the live view sees a change, and each time it shows
mostly the rows it showed before; escaping a row's dozen fields costs more than the JSON twin
spends on the whole record, so each row is rendered once and reused (bounded, least recently
used first out). Rows not cached yet are rendered by one template call, split on a marker that
escaped data cannot contain. Keys carry the state's reset generation (a reset reuses ids).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from markupsafe import Markup

Row = dict[str, Any]
ROW_END = "<!--row-->"


class RowCache:
    """``render(rows)``: the rows' HTML joined, each row rendered at most once while cached."""

    def __init__(
        self,
        render_rows: Callable[[Sequence[Row]], str],
        key: Callable[[Row], Hashable],
        size: int,
    ) -> None:
        self._render_rows = render_rows  # all rows' HTML, each ending with ROW_END
        self._key = key
        self._size = size
        self._rows: OrderedDict[Hashable, str] = OrderedDict()

    def render(self, rows: Sequence[Row]) -> Markup:
        cache = self._rows
        keys = [self._key(row) for row in rows]
        missing = [(key, row) for key, row in zip(keys, rows, strict=True) if key not in cache]
        if missing:
            parts = self._render_rows([row for _, row in missing]).split(ROW_END)
            # zip(strict) raises if a row lost its marker; the last part is what follows it
            for (key, _), html in zip(missing, parts[:-1], strict=True):
                cache[key] = html
        shown = []
        for key in keys:
            cache.move_to_end(key)
            shown.append(cache[key])
        while len(cache) > self._size:
            cache.popitem(last=False)
        return Markup("".join(shown))  # each part was escaped by Jinja

    def clear(self) -> None:
        self._rows.clear()
