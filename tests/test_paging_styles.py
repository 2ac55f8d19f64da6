"""Every page style on every list endpoint, against a sandbox that pages that way.

The sandbox's paging option (sandbox/page_styles.py) serves the same data paged the ways dlt's
``rest_api`` paginators name. Each style is followed by both clients, told apart from the first
answer (``auto``) or set explicitly (``AUTOTALK_PAGING``), through pages the server caps below
the ``limit`` asked; a next link to another host is refused before the key can travel there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.errors import AutoTalkError
from autotalk_prefect.api.paging import detect_style, read_page
from autotalk_prefect.api.settings import AutoTalkSettings
from autotalk_prefect.sandbox import SandboxHandle
from autotalk_prefect.sandbox.page_styles import SERVED_STYLE_NAMES
from autotalk_prefect.sandbox.pytest_plugin import SANDBOX_PAGE_STYLES

CAP = 4  # the server's page size cap, below every page_size asked here
ASKED = 6
Paged = Callable[..., SandboxHandle]


def test_the_plugin_lists_every_style_the_sandbox_serves() -> None:
    assert SANDBOX_PAGE_STYLES == SERVED_STYLE_NAMES


def _seed(sandbox: SandboxHandle) -> dict[str, Any]:
    """More of everything than one capped page holds; what every listing must return."""
    state = sandbox.runtime.state
    sandbox.seed_items("orders", 13)
    contacts = sandbox.contact_ids()
    conversations = []
    for i in range(7):
        conversation = state.create_conversation({"contactId": contacts[i]})
        conversations.append(conversation["_id"])
    first = conversations[0]
    state.process_messages(first, [{"role": "user", "message": f"m{i}"} for i in range(9)])
    big = 10_000
    return {
        "orders": [i["_id"] for i in state.list_items("orders", limit=big, skip=0).data],
        "conversations": [c["_id"] for c in state.list_conversations(limit=big, skip=0).data],
        "first": first,
        "messages": [m["_id"] for m in state.list_messages(first, limit=big, skip=0).data],
        "types": [t["name"] for t in state.list_types()],
        "channels": [c["_id"] for c in state.list_channels()],
        "assistants": [a["_id"] for a in state.list_assistants()],
    }


def _read_all(client: AutoTalkClient, first: str) -> dict[str, Any]:
    small = 1  # types, channels and assistants are few: one per page makes them page too
    return {
        "orders": [i.id for i in client.list_dynadata_items("orders", page_size=ASKED)],
        "conversations": [c.id for c in client.list_conversations(page_size=ASKED)],
        "messages": [m.id for m in client.list_messages(first, page_size=ASKED)],
        "types": [t.name for t in client.list_dynadata_types(page_size=small)],
        "channels": [c.id for c in client.list_channels(page_size=small)],
        "assistants": [a.id for a in client.list_assistants(page_size=small)],
    }


async def _aread_all(client: AsyncAutoTalkClient, first: str) -> dict[str, Any]:
    return {
        "orders": [i.id async for i in client.list_dynadata_items("orders", page_size=ASKED)],
        "conversations": [c.id async for c in client.list_conversations(page_size=ASKED)],
        "messages": [m.id async for m in client.list_messages(first, page_size=ASKED)],
        "types": [t.name for t in await client.list_dynadata_types(page_size=1)],
        "channels": [c.id for c in await client.list_channels(page_size=1)],
        "assistants": [a.id for a in await client.list_assistants(page_size=1)],
    }


def _expected(seeded: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in seeded.items() if k != "first"}


@pytest.mark.parametrize("setting", ["auto", "explicit"])
@pytest.mark.parametrize("style", SANDBOX_PAGE_STYLES)
def test_every_list_endpoint_follows_each_style_through_capped_pages(
    autotalk_sandbox_paged: Paged, style: str, setting: str
) -> None:
    sandbox = autotalk_sandbox_paged(style, max_page_size=CAP)
    seeded = _seed(sandbox)
    assert all(len(seeded[k]) > CAP for k in ("orders", "conversations", "messages"))
    page_style = style if setting == "explicit" else "auto"
    before = sandbox.stats()["requests"]
    with AutoTalkClient(sandbox.api_key, sandbox.base_url, page_style=page_style) as client:
        listed = _read_all(client, seeded["first"])
    assert listed == _expected(seeded)  # every record, once, in order: nothing lost to the cap
    requests = sandbox.stats()["requests"] - before
    pages = sum(-(-len(v) // CAP) for k, v in seeded.items() if k in ("orders", "conversations"))
    assert requests >= pages  # the short capped pages were not taken for the last


@pytest.mark.parametrize("style", SANDBOX_PAGE_STYLES)
def test_the_async_client_follows_each_style(autotalk_sandbox_paged: Paged, style: str) -> None:
    sandbox = autotalk_sandbox_paged(style, max_page_size=CAP)
    seeded = _seed(sandbox)

    async def read() -> dict[str, Any]:
        async with AsyncAutoTalkClient(sandbox.api_key, sandbox.base_url) as client:
            return await _aread_all(client, seeded["first"])

    assert asyncio.run(read()) == _expected(seeded)


@pytest.mark.parametrize("style", SANDBOX_PAGE_STYLES)
def test_auto_tells_each_style_from_the_first_answer(
    autotalk_sandbox_paged: Paged, style: str
) -> None:
    sandbox = autotalk_sandbox_paged(style, max_page_size=CAP)
    sandbox.seed_items("orders", 13)
    answer = httpx.get(
        f"{sandbox.base_url}/dynadata/type/orders/list",
        params={"limit": ASKED, "skip": 0},
        headers=sandbox.auth_headers(),
    )
    assert answer.status_code == 200, answer.text
    assert detect_style(read_page(answer.json(), ("items",), answer.headers)) == style


@pytest.mark.parametrize(
    ("served", "setting"), [("offset", "page"), ("offset", "cursor"), ("cursor", "offset")]
)
def test_autotalk_paging_is_the_setting_and_page_style_its_other_name(
    autotalk_sandbox_paged: Paged, monkeypatch: pytest.MonkeyPatch, served: str, setting: str
) -> None:
    sandbox = autotalk_sandbox_paged(served, max_page_size=CAP)
    seeded = _seed(sandbox)
    monkeypatch.setenv("AUTOTALK_API_KEY", sandbox.api_key)
    monkeypatch.setenv("AUTOTALK_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("AUTOTALK_PAGING", served)
    monkeypatch.setenv("AUTOTALK_PAGE_STYLE", setting)  # the old name: AUTOTALK_PAGING wins
    settings = AutoTalkSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.page_style == served
    with AutoTalkClient.from_settings(settings) as client:
        assert [i.id for i in client.list_dynadata_items("orders", page_size=ASKED)] == (
            seeded["orders"]
        )
    monkeypatch.delenv("AUTOTALK_PAGING")
    assert AutoTalkSettings(_env_file=None).page_style == setting  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("served", "setting", "says"),
    [
        ("offset", "json_link", "states no next link"),
        ("offset", "cursor", "states no next cursor"),
        ("offset", "header_link", 'after 6 items but came without a Link: <...>; rel="next"'),
        ("page", "header_cursor", "came without an x-next-cursor or next-cursor header"),
        ("json_link", "page", "same page twice (for page=2)"),
    ],
)
def test_an_explicit_style_the_server_does_not_speak_is_one_clear_error(
    autotalk_sandbox_paged: Paged, served: str, setting: str, says: str
) -> None:
    sandbox = autotalk_sandbox_paged(served)  # uncapped: the first page is full
    sandbox.seed_items("orders", 13)
    client = AutoTalkClient(sandbox.api_key, sandbox.base_url, page_style=setting)  # type: ignore[arg-type]
    with client, pytest.raises(AutoTalkError) as refused:
        list(client.list_dynadata_items("orders", page_size=ASKED))
    text = str(refused.value)
    assert says in text and "AUTOTALK_PAGING" in text
    assert sandbox.api_key not in text


@pytest.mark.parametrize("style", ["json_link", "header_link"])
def test_a_next_link_to_another_host_is_refused_and_the_key_stays_home(
    autotalk_sandbox_paged: Paged, style: str
) -> None:
    """The sandbox builds its links from the Host it was asked for (as servers behind a proxy
    do): a client sending another Host is handed links to that host, and must not follow."""
    sandbox = autotalk_sandbox_paged(style, max_page_size=CAP)
    sandbox.seed_items("orders", 13)
    before = sandbox.stats()["requests"]
    with (
        AutoTalkClient(
            sandbox.api_key, sandbox.base_url, headers={"host": "evil.example:8443"}
        ) as client,
        pytest.raises(AutoTalkError) as refused,
    ):
        list(client.list_dynadata_items("orders", page_size=ASKED))
    text = str(refused.value)
    assert "evil.example:8443" in text and "not followed" in text and "127.0.0.1" in text
    assert sandbox.api_key not in text
    assert sandbox.stats()["requests"] - before == 1  # the first page only


def test_an_unknown_sandbox_paging_is_refused_naming_the_styles() -> None:
    from autotalk_prefect.sandbox.config import SandboxConfig

    with pytest.raises(ValueError, match="unknown sandbox paging 'skip': choose one of json_link"):
        SandboxConfig(paging="skip")
