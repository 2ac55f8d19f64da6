"""Reading AutoTalk list answers, whatever their shape, and paging through them in any dialect.

Pure logic shared by the sync and async clients (no HTTP here). AutoTalk documents neither its
list envelope nor how it pages, so both are read from the answers:

* The items are a bare array, or the list under an envelope key (``data``, ``items``, ``docs``,
  ``results``, ``records``, ``rows``, ``list``, or the resource's own name such as
  ``conversations``), one level deep at most (``{"data": {"docs": [...]}}``), or else the
  envelope's only list.
* Three paging dialects: ``skip`` (``limit`` + ``skip``, the contract's guess), ``page`` (``page``
  + ``limit``; the answer states ``totalPages``/``pages``/``pageCount`` or ``hasNextPage``) and
  ``cursor`` (the answer states ``nextCursor``/``next_cursor``/``cursor``/``next`` and maybe
  ``has_more``; the next request sends ``cursor=<value>``). ``auto`` tells them apart from the
  first answer (its first request sends ``limit``, ``skip=0`` and ``page=1``: servers ignore
  parameters they do not know), and falls back from ``skip`` to ``page`` if the second page
  repeats the first.

A listing never ends silently early nor repeats: it ends on an empty page, on the total, page
count or has-more flag the server states, or on a null cursor; an answer it cannot follow raises
:class:`PageShapeError` naming what the answer looked like and the ``page_style`` setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

PageStyle = Literal["auto", "skip", "page", "cursor"]
PAGE_STYLES: tuple[str, ...] = get_args(PageStyle)

LIST_KEYS = ("data", "items", "docs", "results", "records", "rows", "list")
#: where servers put paging facts besides the top level of the envelope
META_KEYS = ("meta", "pagination", "pageInfo", "page_info", "paging")
TOTAL_KEYS = ("total", "totalDocs", "totalCount", "total_count", "totalItems", "total_items")
PAGE_COUNT_KEYS = ("totalPages", "total_pages", "pages", "pageCount", "page_count", "lastPage")
PAGE_NUMBER_KEYS = ("page", "currentPage", "current_page", "pageNumber", "page_number")
NEXT_PAGE_KEYS = ("nextPage", "next_page")
HAS_NEXT_KEYS = ("hasNextPage", "has_next_page", "hasNext", "has_next", "hasMore", "has_more")
CURSOR_KEYS = ("nextCursor", "next_cursor", "cursor", "endCursor", "nextPageToken")
SIZE_KEYS = ("pageSize", "page_size", "per_page", "perPage")
SKIP_KEYS = ("skip", "offset")

DEFAULT_PAGE_SIZE = 100  # the sandbox's cap; a larger limit only yields short pages
#: query parameters the pager owns: a filter may not use them
RESERVED_FILTERS = frozenset({"limit", "skip", "page", "cursor"})

SETTING_HINT = (
    "set page_style to 'skip', 'page' or 'cursor' (AUTOTALK_PAGE_STYLE, the credentials "
    "block's page_style, or page_style= on the client)"
)


class PageShapeError(ValueError):
    """A list answer that is not a list, or whose paging the client cannot follow."""


@dataclass(frozen=True)
class PageAnswer:
    """One list answer, read: its items and the paging facts it states."""

    items: list[Any]
    signals: Mapping[str, Any]  # top-level and meta facts, flattened (top level wins)
    keys: tuple[str, ...]  # the answer's own keys, to describe it in errors

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
        return self.number(TOTAL_KEYS)

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
            return True, nxt  # a null ``next``: nothing follows, in any dialect
        return False, None

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


def read_page(payload: Any, names: Sequence[str] = ()) -> PageAnswer:
    """The items of one list answer and the paging facts it states; ``names`` are the
    resource's own envelope names (``conversations``, ``messages`` ...)."""
    if isinstance(payload, list):
        return PageAnswer(payload, {}, ())
    if not isinstance(payload, Mapping):
        raise PageShapeError(
            f"list answer is a {type(payload).__name__}, not an array or an envelope"
        )
    items = _list_in(payload, names)
    if items is not None:
        return PageAnswer(items, _signals(payload), _keys(payload))
    for key in ("data", "result", *names):
        inner = payload.get(key)
        if isinstance(inner, Mapping):
            items = _list_in(inner, names)
            if items is not None:
                return PageAnswer(items, _signals(payload, inner), _keys(payload))
    lists = [value for value in payload.values() if isinstance(value, list)]
    if len(lists) == 1:
        return PageAnswer(lists[0], _signals(payload), _keys(payload))
    where = ", ".join((*LIST_KEYS, *names))
    raise PageShapeError(
        f"list answer has no item array under {where} (keys: {', '.join(_keys(payload)[:15])})"
    )


def extract_page(payload: Any, names: Sequence[str] = ()) -> tuple[list[Any], int | None]:
    """The items of one list answer and the total it states (``None`` if it states none)."""
    answer = read_page(payload, names)
    return answer.items, answer.total


def check_page_style(value: object) -> PageStyle:
    """``value`` if it names a paging dialect, else a ValueError listing them."""
    if value not in PAGE_STYLES:
        raise ValueError(f"page_style must be one of {', '.join(PAGE_STYLES)}, got {value!r}")
    return value  # type: ignore[return-value]


def detect_style(answer: PageAnswer) -> PageStyle:
    """The dialect a first answer speaks: a cursor field -> cursor; a page number, page count
    or has-next-page flag -> page; otherwise (skip/offset echoed, a total, nothing) -> skip."""
    if answer.cursor()[0]:
        return "cursor"
    if answer.first((*PAGE_NUMBER_KEYS, *PAGE_COUNT_KEYS, *NEXT_PAGE_KEYS)) is not None:
        return "page"
    if answer.first(("hasNextPage", "has_next_page")) is not None:
        return "page"
    if isinstance(answer.signals.get("next"), int) and not isinstance(
        answer.signals.get("next"), bool
    ):
        return "page"
    return "skip"


class Pager:
    """The state of one listing: which page to ask for next, and whether it is over.

    Usage: ``while not pager.done: items = pager.feed(fetch(pager.params()))``. ``probe_page``
    (auto style only) adds ``page=1`` to the first request; endpoints whose unknown query
    parameters are field filters (Dynadata lists) must not send it.
    """

    def __init__(
        self,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        style: PageStyle = "auto",
        probe_page: bool = True,
        names: Sequence[str] = (),
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.page_size = page_size
        self.requested: PageStyle = check_page_style(style)
        self.style: PageStyle = self.requested
        self.probe_page = probe_page
        self.names = tuple(names)
        self.skip = 0
        self.page = 1
        self.cursor: Any = None
        self.size_param: str | None = None
        self.read = 0
        self.total: int | None = None
        self.done = False
        self._previous: list[Any] | None = None
        self._fell_back = False

    def params(self) -> dict[str, Any]:
        """The paging query parameters of the next request."""
        if self.style == "auto":
            first: dict[str, Any] = {"limit": self.page_size, "skip": 0}
            return {**first, "page": 1} if self.probe_page else first
        if self.style == "skip":
            return {"limit": self.page_size, "skip": self.skip}
        if self.style == "page":
            sized = {self.size_param: self.page_size} if self.size_param else {}
            return {"limit": self.page_size, **sized, "page": self.page}
        return {"limit": self.page_size, **({} if self.cursor is None else {"cursor": self.cursor})}

    def feed(self, payload: Any) -> list[Any]:
        """Take one answer; return its new items and update ``done``."""
        answer = read_page(payload, self.names)
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
        if self.style == "skip":
            self.skip += len(answer.items)
        elif self.style == "page":
            ended = self._next_page(answer) or ended
        else:
            ended = self._next_cursor(answer) or ended
        self.done = ended
        return answer.items

    def _next_page(self, answer: PageAnswer) -> bool:
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

    def _next_cursor(self, answer: PageAnswer) -> bool:
        """Take the next cursor; whether the answer says this was the last page."""
        present, value = answer.cursor()
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

    def _repeated(self, answer: PageAnswer) -> list[Any]:
        """The same items as the previous page: try page numbers once (auto), else refuse."""
        if self.requested == "auto" and self.style == "skip" and not self._fell_back:
            self._fell_back = True
            self.style = "page"  # self.skip stays: the error below names it
            self.page = 2
            return []  # the repeat is not new: ask for page 2 instead
        where = {
            "skip": f"for skip={self.skip}",
            "page": f"for page={self.page}",
            "cursor": f"for cursor={self.cursor!r}",
        }.get(self.style, self.style)
        if self._fell_back:
            where = f"for skip={self.skip}, then {where}"
        raise PageShapeError(
            f"the server returned the same page twice ({where}): it ignores how the "
            f"client pages, so the listing cannot make progress; {answer.describe()}; "
            f"{SETTING_HINT}"
        )
