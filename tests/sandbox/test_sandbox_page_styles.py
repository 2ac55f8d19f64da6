"""The sandbox's paging option on the wire: each style's answers, walked by hand with httpx.

The clients' side is tests/test_paging_styles.py; here the server is read raw, so a shape the
client happens to tolerate cannot hide a sandbox that pages wrongly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from autotalk_prefect.sandbox import SandboxHandle
from autotalk_prefect.sandbox.pytest_plugin import SANDBOX_PAGE_STYLES

CAP = 4
Paged = Callable[..., SandboxHandle]


def _next_request(style: str, answer: httpx.Response, page: int) -> dict[str, Any] | None:
    """The next request's URL or params, by the style's own marker; None on the last page."""
    body = answer.json()
    if style == "json_link":
        return None if body["next"] is None else {"url": body["next"]}
    if style == "header_link":
        nxt = answer.links.get("next")
        return None if nxt is None else {"url": nxt["url"]}
    if style == "cursor":
        cursor = body["cursors"]["next"]
        return None if cursor is None else {"params": {"limit": 10, "cursor": cursor}}
    if style == "header_cursor":
        cursor = answer.headers.get("x-next-cursor")
        return None if cursor is None else {"params": {"limit": 10, "cursor": cursor}}
    if style == "offset":
        end = body["offset"] + len(body["items"])
        return None if end >= body["total"] else {"params": {"limit": 10, "offset": end}}
    return None if page >= body["total_pages"] else {"params": {"per_page": 10, "page": page + 1}}


def _items(style: str, answer: httpx.Response) -> list[Any]:
    body = answer.json()
    key = {"json_link": "results", "offset": "items", "cursor": "data", "page": "data"}
    return body if isinstance(body, list) else body[key[style]]


@pytest.mark.parametrize("style", SANDBOX_PAGE_STYLES)
def test_each_style_walks_every_item_once_with_filters_kept(
    autotalk_sandbox_paged: Paged, style: str
) -> None:
    sandbox = autotalk_sandbox_paged(style, max_page_size=CAP)
    sandbox.seed_items("orders", 9, status="paid")
    expected = [
        i["_id"]
        for i in sandbox.runtime.state.list_items(
            "orders", limit=1000, skip=0, filters={"status": "paid"}
        ).data
    ]
    url = f"{sandbox.base_url}/dynadata/type/orders/list"
    request: dict[str, Any] | None = {"params": {"limit": 10, "status": "paid"}}
    seen: list[str] = []
    page = 1
    with httpx.Client(headers=sandbox.auth_headers()) as http:
        while request is not None:
            params = request.get("params")
            if params is not None and "url" not in request:
                params = {**params, "status": "paid"}
            answer = http.get(request.get("url", url), params=params)
            assert answer.status_code == 200, answer.text
            items = _items(style, answer)
            assert len(items) <= CAP  # the cap holds whatever limit was asked
            seen += [i["_id"] for i in items]
            request = _next_request(style, answer, page)
            page += 1
    assert seen == expected and len(expected) > CAP


@pytest.mark.parametrize("style", ["json_link", "header_link", "cursor", "header_cursor"])
def test_a_forged_cursor_is_a_400(autotalk_sandbox_paged: Paged, style: str) -> None:
    sandbox = autotalk_sandbox_paged(style)
    answer = httpx.get(
        f"{sandbox.base_url}/conversations",
        params={"cursor": "not-ours"},
        headers=sandbox.auth_headers(),
    )
    assert answer.status_code == 400 and "cursor" in answer.json()["message"]


def test_unpaged_lists_page_too_and_links_follow_the_host_asked_for(
    autotalk_sandbox_paged: Paged,
) -> None:
    sandbox = autotalk_sandbox_paged("header_link")
    answer = httpx.get(
        f"{sandbox.base_url}/dynadata/types",
        params={"limit": 1},
        headers={**sandbox.auth_headers(), "host": "api.example.test"},
    )
    assert answer.status_code == 200 and len(answer.json()) == 1
    assert answer.links["next"]["url"].startswith("http://api.example.test/v1/dynadata/types?")
