"""Reading AutoTalk list pages, whatever their shape, and knowing when a listing ends.

Pure logic shared by the sync and async clients (no HTTP here). The contract's envelope is
``{"data": [...], "total": N, "limit": L, "skip": S}``, but the client also accepts a bare array
and the envelope names ``items``, ``docs`` and ``results``. A page shorter than the limit is not
the end (servers cap page size): a listing ends on an empty page, or once ``total`` items were
read when the server states a total.
"""

from __future__ import annotations

from typing import Any

ENVELOPE_KEYS = ("data", "items", "docs", "results")
TOTAL_KEYS = ("total", "totalDocs", "totalCount")
DEFAULT_PAGE_SIZE = 100  # the sandbox's cap; a larger limit only yields short pages
RESERVED_FILTERS = frozenset({"limit", "skip"})


class PageShapeError(ValueError):
    """A list answer that is neither an array nor a known envelope."""


def extract_page(payload: Any) -> tuple[list[Any], int | None]:
    """The items of one list answer and the total it states (``None`` if it states none)."""
    if isinstance(payload, list):
        return payload, None
    if isinstance(payload, dict):
        for key in ENVELOPE_KEYS:
            items = payload.get(key)
            if isinstance(items, list):
                return items, _total(payload)
        keys = ", ".join(sorted(str(k) for k in payload)[:10])
        raise PageShapeError(
            f"list answer has no item array under {', '.join(ENVELOPE_KEYS)} (keys: {keys})"
        )
    raise PageShapeError(f"list answer is a {type(payload).__name__}, not an array or envelope")


def _total(payload: dict[str, Any]) -> int | None:
    for key in TOTAL_KEYS:
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


class Pager:
    """The state of one listing: which page to ask for next, and whether it is over.

    Usage: ``while not pager.done: items = pager.feed(fetch(pager.params()))``.
    """

    def __init__(self, page_size: int = DEFAULT_PAGE_SIZE, *, skip: int = 0) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.page_size = page_size
        self.skip = skip
        self.read = 0
        self.total: int | None = None
        self.done = False
        self._previous: list[Any] | None = None

    def params(self) -> dict[str, int]:
        """The paging query parameters of the next request."""
        return {"limit": self.page_size, "skip": self.skip}

    def feed(self, payload: Any) -> list[Any]:
        """Take one answer; return its items and update ``done``."""
        items, total = extract_page(payload)
        if items and items == self._previous:
            raise PageShapeError(
                f"the server returned the same page twice (skip={self.skip}); "
                "it seems to ignore 'skip', so the listing cannot make progress"
            )
        self._previous = items
        if total is not None:
            self.total = total
        self.read += len(items)
        self.skip += len(items)
        self.done = not items or (self.total is not None and self.read >= self.total)
        return items
