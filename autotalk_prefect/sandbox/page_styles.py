"""Sandbox page styles: every way of paging a REST client meets, served over the same data.

``SandboxConfig(paging=...)`` (``--paging`` on the command line) makes every ``/v1`` list
endpoint (conversations, messages, Dynadata items, types, channels, assistants) page one of the
ways dlt's ``rest_api`` paginators name, whatever the dialect's own paging: one table row per
style says how a request names its window and how the answer shows the next one. The dialect
layer (dialects.py) reads the request with :func:`read_window` and shapes the answer with
:func:`shape_page`; the contract's routes still do the listing, so every style serves the very
same records. Page sizes are capped (``max_page_size``) like every other answer.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from autotalk_prefect.sandbox.problems import bad_request

DEFAULT_LIMIT = 20  # the contract's default page size
#: query parameters a page style reads; every other one is a filter, passed on
PAGING_PARAMS = frozenset({"limit", "skip", "offset", "page", "per_page", "cursor"})

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Window:
    """One page of a listing: its items, the whole listing's size, and where it sits."""

    items: list[Any]
    total: int
    limit: int
    skip: int
    link: Callable[[int], str]  # the absolute URL of the page starting at that offset

    @property
    def end(self) -> int:
        return self.skip + len(self.items)

    @property
    def more(self) -> bool:
        return self.end < self.total


def _int(query: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise bad_request(f"query parameter {name} must be >= {minimum}, got {value}")
    return value


def encode_cursor(offset: int) -> str:
    """An opaque cursor (it holds the offset of the next item)."""
    raw = json.dumps({"o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset inside a cursor this sandbox issued; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset: object = json.loads(raw)["o"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        offset = None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise bad_request(f"query parameter cursor {cursor[:40]!r} is not a cursor from this API")
    return offset


def _cursor(query: Mapping[str, str]) -> int:
    return decode_cursor(query["cursor"]) if query.get("cursor") else 0


def _cursor_of(window: Window) -> str | None:
    return encode_cursor(window.end) if window.more else None


def _offset_body(w: Window) -> tuple[Any, Headers]:
    return {"items": w.items, "offset": w.skip, "limit": w.limit, "total": w.total}, []


def _page_body(w: Window) -> tuple[Any, Headers]:
    pages = max(1, -(-w.total // w.limit))
    body = {"data": w.items, "page": w.skip // w.limit + 1, "per_page": w.limit}
    return {**body, "total_pages": pages}, []


def _cursor_body(w: Window) -> tuple[Any, Headers]:
    return {"data": w.items, "cursors": {"next": _cursor_of(w)}}, []


def _header_cursor_body(w: Window) -> tuple[Any, Headers]:
    cursor = _cursor_of(w)
    headers = [("x-total-count", str(w.total))]
    return w.items, headers + ([("x-next-cursor", cursor)] if cursor else [])


def _json_link_body(w: Window) -> tuple[Any, Headers]:
    """Django REST framework's answer: ``{count, next, previous, results}``."""
    previous = w.link(max(0, w.skip - w.limit)) if w.skip else None
    nxt = w.link(w.end) if w.more else None
    return {"count": w.total, "next": nxt, "previous": previous, "results": w.items}, []


def _header_link_body(w: Window) -> tuple[Any, Headers]:
    """GitHub's answer: a bare array, and an RFC 8288 Link header (``first`` always)."""
    links = [f'<{w.link(0)}>; rel="first"']
    if w.more:
        links.append(f'<{w.link(w.end)}>; rel="next"')
    return w.items, [("link", ", ".join(links))]


@dataclass(frozen=True)
class ServedStyle:
    """How one page style names a page in a request, and shows the next in an answer."""

    name: str
    summary: str
    skip: Callable[[Mapping[str, str], int], int]  # the window's start, from query and limit
    size_params: tuple[str, ...]
    shape: Callable[[Window], tuple[Any, Headers]]


def _by_cursor(query: Mapping[str, str], limit: int) -> int:
    return _cursor(query)


SERVED_STYLES: dict[str, ServedStyle] = {
    s.name: s
    for s in (
        ServedStyle(
            "json_link",
            "{count,next,previous,results}: next is the next page's URL (DRF)",
            _by_cursor,
            ("limit",),
            _json_link_body,
        ),
        ServedStyle(
            "header_link",
            'bare arrays, Link: <url>; rel="next" (GitHub)',
            _by_cursor,
            ("limit",),
            _header_link_body,
        ),
        ServedStyle(
            "cursor",
            "{data,cursors:{next}}, the next request sends cursor=",
            _by_cursor,
            ("limit",),
            _cursor_body,
        ),
        ServedStyle(
            "header_cursor",
            "bare arrays, X-Next-Cursor and X-Total-Count headers, cursor=",
            _by_cursor,
            ("limit",),
            _header_cursor_body,
        ),
        ServedStyle(
            "offset",
            "{items,offset,limit,total}, offset= and limit=",
            lambda query, limit: _int(query, "offset", 0, 0),
            ("limit",),
            _offset_body,
        ),
        ServedStyle(
            "page",
            "{data,page,per_page,total_pages}, page= and per_page= (or limit=)",
            lambda query, limit: (_int(query, "page", 1, 1) - 1) * limit,
            ("per_page", "limit"),
            _page_body,
        ),
    )
}
SERVED_STYLE_NAMES: tuple[str, ...] = tuple(SERVED_STYLES)


def get_served_style(name: str) -> ServedStyle:
    """The page style called ``name``; a ValueError naming the choices otherwise."""
    try:
        return SERVED_STYLES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown sandbox paging {name!r}: choose one of {', '.join(SERVED_STYLE_NAMES)}"
        ) from None


def read_window(
    style: ServedStyle, query: Mapping[str, str], max_page_size: int
) -> tuple[int, int]:
    """``(limit, skip)`` a request asks for in ``style`` (400 for a bad value)."""
    size_param = next((p for p in style.size_params if p in query), None)
    size = _int(query, size_param, DEFAULT_LIMIT, 1) if size_param else DEFAULT_LIMIT
    limit = min(size, max_page_size)
    return limit, style.skip(query, limit)


def link_builder(
    scheme: str, host: str, path: str, filters: list[tuple[str, str]], limit: int
) -> Callable[[int], str]:
    """The URL of the page starting at an offset, filters kept (for the link styles)."""

    def link(offset: int) -> str:
        query = urlencode([*filters, ("limit", str(limit)), ("cursor", encode_cursor(offset))])
        return f"{scheme}://{host}{path}?{query}"

    return link


def shape_page(style: ServedStyle, window: Window) -> tuple[Any, Headers]:
    """The answer body and extra headers for one page in ``style``."""
    return style.shape(window)
