"""Reading AutoTalk list answers, whatever their shape, and paging through them in any style.

Pure logic shared by the sync and async clients (no HTTP here). AutoTalk documents neither its
list envelope nor how it pages, so both are read from the answers:

* The items are a bare array, or the list under an envelope key (``data``, ``items``, ``docs``,
  ``results``, ``records``, ``rows``, ``list``, or the resource's own name such as
  ``conversations``), one level deep at most (``{"data": {"docs": [...]}}``), or else the
  envelope's only list.
* The page styles are the ones dlt's ``rest_api`` paginators name (the ``paging`` setting,
  ``AUTOTALK_PAGING``; ``page_style``/``AUTOTALK_PAGE_STYLE`` is the same setting's old name):

  ``json_link``      the body holds the next page's URL (``next``, ``links.next``, ``next_url``...)
  ``header_link``    an RFC 8288 ``Link: <url>; rel="next"`` header
  ``cursor``         the body holds a cursor (``nextCursor``, ``next_cursor``, ``cursors.next``...),
                     sent back as ``cursor=<value>``
  ``header_cursor``  a cursor in a response header (``X-Next-Cursor``...), sent back the same way
  ``offset``         ``offset`` + ``limit``; ``skip`` is the same with ``skip`` (the contract's)
  ``page``           ``page`` + ``limit`` (alias ``page_number``)
  ``auto``           told from the first answer, in the order above (its first request sends
                     ``limit``, ``skip=0`` and ``page=1``: servers ignore what they do not know);
                     a second page that repeats the first makes it try ``offset``, then ``page``.

A listing never ends silently early nor repeats: it ends on an empty page, on the total (in the
body or an ``X-Total-Count`` header), page count or has-more flag the server states, on a null
cursor or on a missing next link; an answer it cannot follow raises :class:`PageShapeError`
naming the style(s) tried and the setting. A next link is followed only on the base URL's own
scheme, host and port: the API key is never sent elsewhere (:class:`ForeignLinkError`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urljoin, urlsplit

PageStyle = Literal[
    "auto", "json_link", "header_link", "cursor", "header_cursor", "offset", "skip", "page"
]
PAGE_STYLES: tuple[str, ...] = get_args(PageStyle)
#: other names accepted for a style (dlt's, and this client's older ones)
STYLE_ALIASES: Mapping[str, PageStyle] = {"page_number": "page", "json_response": "json_link"}

LIST_KEYS = ("data", "items", "docs", "results", "records", "rows", "list")
#: where servers put paging facts besides the top level of the envelope
META_KEYS = (
    "meta",
    "pagination",
    "pageInfo",
    "page_info",
    "paging",
    "links",
    "_links",
    "cursors",
    "response_metadata",
)
TOTAL_KEYS = ("total", "totalDocs", "totalCount", "total_count", "totalItems", "total_items")
PAGE_COUNT_KEYS = ("totalPages", "total_pages", "pages", "pageCount", "page_count", "lastPage")
PAGE_NUMBER_KEYS = ("page", "currentPage", "current_page", "pageNumber", "page_number")
NEXT_PAGE_KEYS = ("nextPage", "next_page")
HAS_NEXT_KEYS = ("hasNextPage", "has_next_page", "hasNext", "has_next", "hasMore", "has_more")
CURSOR_KEYS = ("nextCursor", "next_cursor", "cursor", "endCursor", "nextPageToken")
#: body keys holding the next page's URL (``next`` counts only when it is a link)
LINK_KEYS = ("next_url", "nextUrl", "next_page_url", "nextPageUrl", "nextLink", "@odata.nextLink")
SIZE_KEYS = ("pageSize", "page_size", "per_page", "perPage")
SKIP_KEYS = ("skip", "offset")
CURSOR_HEADERS = ("x-next-cursor", "next-cursor", "x-cursor", "x-next-page-token")
TOTAL_HEADERS = ("x-total-count", "x-total")

DEFAULT_PAGE_SIZE = 100  # the sandbox's cap; a larger limit only yields short pages
#: query parameters the pager owns: a filter may not use them
RESERVED_FILTERS = frozenset({"limit", "skip", "offset", "page", "cursor"})
#: what ``auto`` tries, in turn, when the next page repeats the previous one (``offset`` not
#: where unknown parameters are field filters: ``probe_page=False``)
FALLBACKS: Mapping[str, str] = {"skip": "offset", "offset": "page"}

SETTING_HINT = (
    "set AUTOTALK_PAGING to one of json_link, header_link, cursor, header_cursor, offset, "
    "skip or page (AUTOTALK_PAGE_STYLE is the same setting; or page_style on the credentials "
    "block or the client)"
)

_LINK_VALUE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.IGNORECASE)


class PageShapeError(ValueError):
    """A list answer that is not a list, or whose paging the client cannot follow."""


class ForeignLinkError(PageShapeError):
    """A next-page link that leaves the base URL's scheme, host or port (the key stays home)."""


def link_relations(header: str | None) -> dict[str, str]:
    """An RFC 8288 ``Link`` header's targets by relation (``{"next": url, "last": url}``)."""
    found: dict[str, str] = {}
    for match in _LINK_VALUE.finditer(header or ""):
        rel = _REL.search(match.group(2) or "")
        if rel is not None:
            for name in (rel.group(1) or rel.group(2) or "").lower().split():
                found.setdefault(name, match.group(1).strip())
    return found


@dataclass(frozen=True)
class PageAnswer:
    """One list answer, read: its items, the paging facts it states and its headers."""

    items: list[Any]
    signals: Mapping[str, Any]  # top-level and meta facts, flattened (top level wins)
    keys: tuple[str, ...]  # the answer's own keys, to describe it in errors
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names

    def first(self, keys: Sequence[str]) -> tuple[str, Any] | None:
        """The first of ``keys`` the answer states, with its value (``None`` values included)."""
        return next(((k, self.signals[k]) for k in keys if k in self.signals), None)

    def number(self, keys: Sequence[str]) -> int | None:
        """The first of ``keys`` holding a non-negative integer."""
        for key in keys:
            value = self.signals.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        return None

    @property
    def total(self) -> int | None:
        """The total the body states, else an ``X-Total-Count`` header's."""
        total = self.number(TOTAL_KEYS)
        if total is None:
            raw = next((self.headers[h] for h in TOTAL_HEADERS if h in self.headers), "")
            total = int(raw) if raw.strip().isdigit() else None
        return total

    @property
    def has_next(self) -> bool | None:
        """The answer's has-next/has-more flag (``next`` as a bool too), ``None`` if none."""
        found = self.first(HAS_NEXT_KEYS)
        if found is not None and isinstance(found[1], bool):
            return found[1]
        nxt = self.signals.get("next")
        return nxt if isinstance(nxt, bool) else None

    def cursor(self) -> tuple[bool, Any]:
        """(whether a cursor field is present, its value): ``next`` counts when it is text that
        is not a link."""
        found = self.first(CURSOR_KEYS)
        if found is not None and (found[1] is None or isinstance(found[1], (str, int))):
            return True, found[1]
        nxt = self.signals.get("next", False)
        if nxt is None or (isinstance(nxt, str) and not _is_link(nxt)):
            return True, nxt  # a null ``next``: nothing follows, in any style
        return False, None

    def body_link(self) -> tuple[bool, str | None]:
        """(whether a next-link field is present, the link): ``next`` as a URL, a HAL
        ``{"href": ...}``, or one of ``LINK_KEYS``; a null one says this is the last page."""
        for key in ("next", *LINK_KEYS):
            if key not in self.signals:
                continue
            value = self.signals[key]
            if isinstance(value, Mapping):
                value = value.get("href")
            if isinstance(value, str) and (key != "next" or _is_link(value)):
                return True, value or None
            if value is None:
                return True, None
        return False, None

    def header_link(self) -> tuple[bool, str | None]:
        """(whether a ``Link`` header with paging relations is present, its ``rel="next"``)."""
        relations = link_relations(self.headers.get("link"))
        present = bool(relations.keys() & {"next", "prev", "previous", "first", "last"})
        return present, relations.get("next")

    def header_cursor(self) -> tuple[bool, str | None]:
        """(whether a cursor header is present, its value; empty counts as none)."""
        found = next((h for h in CURSOR_HEADERS if h in self.headers), None)
        return found is not None, (self.headers[found].strip() or None) if found else None

    def describe(self) -> str:
        shown = ", ".join(self.keys[:15]) + (", ..." if len(self.keys) > 15 else "")
        return f"an answer with keys {{{shown}}}" if self.keys else "a bare array"


def _is_link(value: str) -> bool:
    return value.startswith(("http://", "https://", "/", "?"))


def _keys(payload: Mapping[Any, Any]) -> tuple[str, ...]:
    return tuple(sorted(str(k) for k in payload))


def _list_in(payload: Mapping[str, Any], names: Sequence[str]) -> list[Any] | None:
    for key in (*LIST_KEYS, *names):
        value = payload.get(key)
        if isinstance(value, list):
            return value
    return None


def _signals(*levels: Mapping[str, Any]) -> dict[str, Any]:
    """Paging facts of the envelope levels given (outermost first wins), meta blocks included."""
    found: dict[str, Any] = {}
    for level in levels:
        for meta in META_KEYS:
            block = level.get(meta)
            if isinstance(block, Mapping):
                for key, value in block.items():
                    found.setdefault(str(key), value)
    for level in reversed(levels):
        found.update({str(k): v for k, v in level.items() if not isinstance(v, list)})
    return found


def read_page(
    payload: Any, names: Sequence[str] = (), headers: Mapping[str, str] | None = None
) -> PageAnswer:
    """The items of one list answer and the paging facts it states; ``names`` are the
    resource's own envelope names (``conversations``, ``messages`` ...)."""
    heads = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if isinstance(payload, list):
        return PageAnswer(payload, {}, (), heads)
    if not isinstance(payload, Mapping):
        raise PageShapeError(
            f"list answer is a {type(payload).__name__}, not an array or an envelope"
        )
    items = _list_in(payload, names)
    if items is not None:
        return PageAnswer(items, _signals(payload), _keys(payload), heads)
    for key in ("data", "result", *names):
        inner = payload.get(key)
        if isinstance(inner, Mapping):
            items = _list_in(inner, names)
            if items is not None:
                return PageAnswer(items, _signals(payload, inner), _keys(payload), heads)
    lists = [value for value in payload.values() if isinstance(value, list)]
    if len(lists) == 1:
        return PageAnswer(lists[0], _signals(payload), _keys(payload), heads)
    where = ", ".join((*LIST_KEYS, *names))
    raise PageShapeError(
        f"list answer has no item array under {where} (keys: {', '.join(_keys(payload)[:15])})"
    )


def extract_page(payload: Any, names: Sequence[str] = ()) -> tuple[list[Any], int | None]:
    """The items of one list answer and the total it states (``None`` if it states none)."""
    answer = read_page(payload, names)
    return answer.items, answer.total


def check_page_style(value: object) -> PageStyle:
    """``value`` (or the style it is another name for) if it names a page style, else a
    ValueError listing them."""
    if isinstance(value, str) and value in STYLE_ALIASES:
        return STYLE_ALIASES[value]
    if value not in PAGE_STYLES:
        raise ValueError(
            f"page_style (AUTOTALK_PAGING) must be one of {', '.join(PAGE_STYLES)}, got {value!r}"
        )
    return value  # type: ignore[return-value]


def _speaks_page_numbers(answer: PageAnswer) -> bool:
    if answer.first((*PAGE_NUMBER_KEYS, *PAGE_COUNT_KEYS, *NEXT_PAGE_KEYS)) is not None:
        return True
    if answer.first(("hasNextPage", "has_next_page")) is not None:
        return True
    nxt = answer.signals.get("next")
    return isinstance(nxt, int) and not isinstance(nxt, bool)


#: how ``auto`` tells the style from a first answer: the first that matches wins, else ``skip``
DETECTORS: tuple[tuple[PageStyle, Callable[[PageAnswer], bool]], ...] = (
    ("header_link", lambda a: a.header_link()[0]),
    ("json_link", lambda a: a.body_link()[1] is not None),
    ("header_cursor", lambda a: a.header_cursor()[0]),
    ("cursor", lambda a: a.cursor()[0]),
    ("json_link", lambda a: a.body_link()[0]),
    ("page", _speaks_page_numbers),
    ("offset", lambda a: "offset" in a.signals and "skip" not in a.signals),
)


def detect_style(answer: PageAnswer) -> PageStyle:
    """The style a first answer speaks (``DETECTORS``, in order; ``skip`` when none matches)."""
    return next((style for style, speaks in DETECTORS if speaks(answer)), "skip")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return (
        scheme,
        (parts.hostname or "").lower(),
        parts.port or {"http": 80, "https": 443}.get(scheme),
    )


class Pager:
    """The state of one listing: what to ask for next, and whether it is over.

    Usage: ``while not pager.done: items = pager.feed(fetch(pager.params(), pager.next_url))``
    (``next_url``, when set, is the whole next request: a link the server gave, checked to stay
    on ``base_url``'s host). ``probe_page`` (auto style only) adds ``page=1`` to the first
    request; endpoints whose unknown query parameters are field filters (Dynadata lists) must
    not send it. ``paged=False`` is for endpoints the contract does not page (types, channels,
    assistants): the style is told from the answer and a repeated page means the list is whole.
    """

    def __init__(
        self,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        style: PageStyle = "auto",
        probe_page: bool = True,
        names: Sequence[str] = (),
        base_url: str | None = None,
        paged: bool = True,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.page_size = page_size
        checked = check_page_style(style)
        self.requested: PageStyle = checked if paged else "auto"
        self.style: PageStyle = self.requested
        self.probe_page = probe_page
        self.names = tuple(names)
        self.base_url = base_url
        self.paged = paged
        self.skip = 0
        self.page = 1
        self.cursor: Any = None
        self.next_url: str | None = None
        self.size_param: str | None = None
        self.read = 0
        self.total: int | None = None
        self.done = False
        self.tried: list[str] = []  # the styles a repeated page made auto give up, with where
        self._previous: list[Any] | None = None
        self._answers = 0

    # ---- requests ------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The paging query parameters of the next request (none when ``next_url`` is set)."""
        if self.next_url is not None:
            return {}
        size = {"limit": self.page_size}
        if self.style == "auto":
            first = {**size, "skip": 0}
            return {**first, "page": 1} if self.probe_page else first
        if self.style in ("skip", "offset"):
            return {**size, self.style: self.skip}
        if self.style == "page":
            sized = {self.size_param: self.page_size} if self.size_param else {}
            return {**size, **sized, "page": self.page}
        if self.style in ("cursor", "header_cursor") and self.cursor is not None:
            return {**size, "cursor": self.cursor}
        return size

    # ---- answers -------------------------------------------------------------------------------

    def feed(
        self, payload: Any, headers: Mapping[str, str] | None = None, url: str | None = None
    ) -> list[Any]:
        """Take one answer (its decoded body, headers and the URL it came from); return its new
        items and update ``done``."""
        answer = read_page(payload, self.names, headers)
        self._answers += 1
        if self.style == "auto":
            self.style = detect_style(answer)
        total = answer.total
        if total is not None:
            self.total = total
        if answer.items and answer.items == self._previous:
            return self._repeated(answer)
        self._previous = answer.items
        self.read += len(answer.items)
        ended = not answer.items or answer.has_next is False
        if self.total is not None and self.read >= self.total:
            ended = True
        moved_on = ADVANCE[self.style](self, answer, url or self.next_url or self.base_url or "")
        self.done = ended or moved_on
        if self.done:
            self.next_url = None
        return answer.items

    def _offset(self, answer: PageAnswer, url: str) -> bool:
        self.skip += len(answer.items)
        return False

    def _next_page(self, answer: PageAnswer, url: str) -> bool:
        """Move to the next page number; whether the answer says this was the last."""
        size = answer.first(SIZE_KEYS)
        if size is not None and self.size_param is None:
            self.size_param = size[0]
        current = answer.number(PAGE_NUMBER_KEYS) or self.page
        pages = answer.number(PAGE_COUNT_KEYS)
        following = answer.number(NEXT_PAGE_KEYS)
        nxt = answer.signals.get("next")
        if following is None and isinstance(nxt, int) and not isinstance(nxt, bool):
            following = nxt
        self.page = following if following is not None and following > current else current + 1
        next_null = any(k in answer.signals and answer.signals[k] is None for k in NEXT_PAGE_KEYS)
        return (pages is not None and current >= pages) or next_null

    def _next_cursor(self, answer: PageAnswer, url: str) -> bool:
        """Take the next cursor (body or header); whether the answer says this was the last."""
        in_header = self.style == "header_cursor"
        present, value = answer.header_cursor() if in_header else answer.cursor()
        if in_header and not present:
            self._unmarked(answer, f"an {' or '.join(CURSOR_HEADERS[:2])} header")
            return True  # no cursor header: the last page
        if not present and answer.has_next is None:
            raise PageShapeError(
                f"page_style is 'cursor' but {answer.describe()} states no next cursor "
                f"(looked for {', '.join(CURSOR_KEYS)}, next) nor a has-more flag; {SETTING_HINT}"
            )
        if value is None or value == "":
            if answer.has_next and answer.items:
                raise PageShapeError(
                    f"{answer.describe()} says more items follow but gives no cursor to ask "
                    f"for them; {SETTING_HINT}"
                )
            return True
        if value == self.cursor:
            raise PageShapeError(
                f"the server returned the same cursor twice ({answer.describe()}); {SETTING_HINT}"
            )
        self.cursor = value
        return False

    def _next_link(self, answer: PageAnswer, url: str) -> bool:
        """Take the next link (body or ``Link`` header); whether this was the last page."""
        in_header = self.style == "header_link"
        present, link = answer.header_link() if in_header else answer.body_link()
        if link is None and not in_header and not present and answer.has_next is None:
            raise PageShapeError(
                f"page_style is 'json_link' but {answer.describe()} states no next link "
                f"(looked for next, {', '.join(LINK_KEYS)}, links.next); {SETTING_HINT}"
            )
        if link is None:
            if in_header and not present:
                self._unmarked(answer, 'a Link: <...>; rel="next" header')
            return True
        target = self._checked_link(link, url)
        if target == self.next_url:
            raise PageShapeError(
                f"the server gave the same next link twice ({answer.describe()}); {SETTING_HINT}"
            )
        self.next_url = target
        return False

    def _unmarked(self, answer: PageAnswer, marker: str) -> None:
        """No next marker, in a header style: the last page, unless the server says more items
        exist, or a first page filled to the size asked comes without it (then the server does
        not page that way, and ending here would silently drop the rest)."""
        if self.total is not None and self.read < self.total and answer.items:
            raise PageShapeError(
                f"page_style is {self.style!r}: {answer.describe()} states a total of "
                f"{self.total} after {self.read} items but came without {marker}; {SETTING_HINT}"
            )
        full = len(answer.items) >= self.page_size
        if self._answers == 1 and full and self.total is None and self.requested != "auto":
            raise PageShapeError(
                f"page_style is {self.style!r} but a full first page ({answer.describe()}) "
                f"came without {marker}; {SETTING_HINT}"
            )

    def _checked_link(self, link: str, url: str) -> str:
        """``link`` made absolute against the answer's URL, refused off the base URL's origin."""
        target = urljoin(url, link) if url else link
        home = self.base_url or url
        if not home or _origin(target) != _origin(home):
            scheme, host, port = _origin(target)
            raise ForeignLinkError(
                f"the server's next-page link leads to {scheme}://{host}:{port}, not to the base "
                f"URL's {'://'.join(_origin(home)[:2]) if home else 'host'}: it is not followed "
                "(the API key is sent only to the base URL's scheme, host and port); check "
                f"base_url, or {SETTING_HINT}"
            )
        return target

    def _repeated(self, answer: PageAnswer) -> list[Any]:
        """The same items as the previous page: the list is whole (an endpoint that does not
        page), or auto tries the next style once, or it is a clear error."""
        if not self.paged:
            self.done = True
            return []
        where = {
            "skip": f"skip={self.skip}",
            "offset": f"offset={self.skip}",
            "page": f"page={self.page}",
            "cursor": f"cursor={self.cursor!r}",
            "header_cursor": f"cursor={self.cursor!r}",
        }.get(self.style, f"{self.style} link")
        self.tried.append(where)
        fallback = FALLBACKS.get(self.style)
        if fallback == "offset" and not self.probe_page:
            fallback = "page"  # an unknown ``offset`` is a field filter there: its empty answer
            # would end the listing early, silently
        if self.requested == "auto" and fallback is not None:
            self.style = fallback  # type: ignore[assignment]
            self.page = 2
            return []  # the repeat is not new: ask the next style's way instead
        tried = ", then ".join(f"for {w}" for w in self.tried)
        raise PageShapeError(
            f"the server returned the same page twice ({tried}): it ignores how the "
            f"client pages, so the listing cannot make progress; {answer.describe()}; "
            f"{SETTING_HINT}"
        )


#: each style's step from one answer to the next request: whether the answer was the last page
ADVANCE: Mapping[str, Callable[[Pager, PageAnswer, str], bool]] = {
    "skip": Pager._offset,
    "offset": Pager._offset,
    "page": Pager._next_page,
    "cursor": Pager._next_cursor,
    "header_cursor": Pager._next_cursor,
    "json_link": Pager._next_link,
    "header_link": Pager._next_link,
}
