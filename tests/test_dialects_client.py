"""Every client method against every sandbox dialect: the same data, whatever the wire shape.

The dialects (docs/sandbox.md) answer the same seeded data with other envelopes, page styles,
error bodies, auth headers and send answers. Both clients must read the same records in each,
never raise on an accepted write, and raise the same exception classes with the fields named.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.errors import AuthenticationError, InvalidRequestError, NotFoundError
from autotalk_prefect.sandbox import SandboxHandle


def _client(sandbox: SandboxHandle, **overrides: Any) -> AutoTalkClient:
    options: dict[str, Any] = {"auth_scheme": sandbox.auth_scheme, **overrides}
    return AutoTalkClient(options.pop("api_key", sandbox.api_key), sandbox.base_url, **options)


def _seed_conversations(sandbox: SandboxHandle, n: int) -> list[str]:
    """``n`` conversations with two messages each, through the API (any dialect)."""
    ids = []
    with _client(sandbox) as client:
        contacts = sandbox.contact_ids()
        for i in range(n):
            conversation = client.create_conversation(contactId=contacts[i % len(contacts)])
            assert conversation.id, conversation.raw_answer
            client.process_messages(conversation.id, [{"role": "user", "message": f"hi {i}"}])
            ids.append(conversation.id)
    return ids


def test_reads_list_every_record_once_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle,
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    seeded = set(sandbox.seed_items("orders", 53))
    conversations = _seed_conversations(sandbox, 9)
    with _client(sandbox) as client:
        company = client.get_self()
        assert company.id and company.name
        assert {t.name for t in client.list_dynadata_types()} >= {"clients", "orders"}
        clients = [item.id for item in client.list_dynadata_items("clients", page_size=7)]
        assert sorted(clients) == sorted(sandbox.contact_ids())
        orders = [item.id for item in client.list_dynadata_items("orders", page_size=10)]
        assert len(orders) == len(set(orders)) and set(orders) >= seeded  # none missed or twice
        listed = [c.id for c in client.list_conversations(page_size=4)]
        assert sorted(listed) == sorted(conversations)
        messages = list(client.list_messages(conversations[0], page_size=1))
        assert [m.message for m in messages][:1] == ["hi 0"]
        one = client.get_dynadata_item("clients", clients[0])
        assert one.id == clients[0] and one.data.get("name")
        assert client.get_dynadata_schema("clients").get("properties")
        assert "z." in client.get_dynadata_zod_schema("clients")
        assert [c.id for c in client.list_channels()] and [a.id for a in client.list_assistants()]


def test_writes_are_read_back_and_never_raise_on_a_2xx_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle,
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    contact = sandbox.contact_ids()[0]
    with _client(sandbox) as client:
        sent = client.send_message(contact, "Hello from the dialect test")
        assert sent.raw_answer is not None or sent.id is None  # an empty 202 is an answer too
        assert [m["message"] for m in sandbox.sent_messages()] == ["Hello from the dialect test"]
        created = client.create_dynadata_item(
            "clients", {"name": "Dia Lect", "phone": "+34600000001", "status": "active"}
        )
        assert created.id
        updated = client.update_dynadata_item("clients", created.id, {"status": "inactive"})
        assert updated.id == created.id
        assert client.get_dynadata_item("clients", created.id).data["status"] == "inactive"
        assert client.validate_dynadata_item(
            "clients", {"name": "Ok", "phone": "+34600000002"}
        ).valid
        assert client.execute_dynadata_function("clients", "count").result is not None


def test_errors_keep_their_class_and_name_the_fields_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle,
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    with _client(sandbox) as client:
        with pytest.raises(NotFoundError):
            client.get_dynadata_item("clients", "no-such-id")
        with pytest.raises(InvalidRequestError) as refused:
            client.create_dynadata_item("clients", {"name": 5})
        assert {issue.path for issue in refused.value.issues} >= {"name", "phone"}
        assert "phone" in str(refused.value)
        invalid = client.validate_dynadata_item("clients", {"name": 5})
        assert not invalid.valid and {i.path for i in invalid.errors} >= {"name", "phone"}
    with _client(sandbox, api_key="sk-wrong") as wrong, pytest.raises(AuthenticationError) as no:
        wrong.get_self()
    assert sandbox.auth_scheme in str(no.value) and "sk-wrong" not in str(no.value)


def test_the_async_client_reads_the_same_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle,
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    seeded = set(sandbox.seed_items("orders", 31))

    async def read() -> tuple[list[str], str | None]:
        async with AsyncAutoTalkClient(
            sandbox.api_key, sandbox.base_url, auth_scheme=sandbox.auth_scheme
        ) as client:
            orders = [item.id async for item in client.list_dynadata_items("orders", page_size=6)]
            sent = await client.send_message(sandbox.contact_ids()[1], "async hello")
            return orders, sent.id

    orders, _ = asyncio.run(read())
    assert len(orders) == len(set(orders)) and set(orders) >= seeded
    assert [m["message"] for m in sandbox.sent_messages()] == ["async hello"]
