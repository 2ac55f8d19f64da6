"""Both clients against the real sandbox over loopback: every endpoint, paging, error mapping,
retries under injected faults, and the key staying secret. Sleeps are recorded, never slept.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.errors import (
    AuthenticationError,
    AutoTalkConnectionError,
    ConflictError,
    InvalidRequestError,
    NoResponseError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
)
from autotalk_prefect.api.models import (
    Assistant,
    Channel,
    Company,
    Conversation,
    DynadataItem,
    FunctionResult,
    Message,
    ValidationResult,
)
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.sandbox import FaultConfig, SandboxConfig, SandboxHandle, run_sandbox

KEY = "sk-sandbox-client-test-5d1e"
READ_ONLY_KEY = "sk-sandbox-read-only-77aa"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxHandle]:
    config = SandboxConfig(api_key=KEY, read_only_api_keys=(READ_ONLY_KEY,))
    with run_sandbox(config=config) as handle:
        yield handle


@pytest.fixture
def sb(server: SandboxHandle) -> SandboxHandle:
    server.clear_faults()
    server.reset()
    return server


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def client(sb: SandboxHandle, waits: list[float]) -> Iterator[AutoTalkClient]:
    with AutoTalkClient(
        KEY, sb.base_url, retry_policy=RetryPolicy(attempts=6, sleep=waits.append)
    ) as c:
        yield c


@pytest.fixture
async def aclient(sb: SandboxHandle, waits: list[float]) -> AsyncIterator[AsyncAutoTalkClient]:
    async with AsyncAutoTalkClient(
        KEY, sb.base_url, retry_policy=RetryPolicy(attempts=6, sleep=waits.append)
    ) as c:
        yield c


def order_for(contact_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "clientId": contact_id,
        "items": [{"sku": "MUG", "quantity": 2, "unitPrice": 10.0}],
        **extra,
    }


# ---- every endpoint ------------------------------------------------------------------------


def test_every_method_sync(client: AutoTalkClient, sb: SandboxHandle) -> None:
    company = client.get_self()
    assert isinstance(company, Company) and company.name

    contact = sb.contact_ids()[0]
    channels = client.list_channels()
    assert channels and all(isinstance(c, Channel) for c in channels)
    assistants = client.list_assistants()
    assert assistants and all(isinstance(a, Assistant) for a in assistants)

    sent = client.send_message(contact, "hello there", channelId=channels[0].id)
    assert isinstance(sent, Message)
    assert (sent.message, sent.status, sent.direction) == ("hello there", "sent", "outbound")
    assert [m["message"] for m in sb.sent_messages()] == ["hello there"]

    conversations = list(client.list_conversations(contactId=contact))
    assert sent.conversationId in {c.id for c in conversations}
    created = client.create_conversation(contactId=sb.contact_ids()[1], subject="order #1")
    assert isinstance(created, Conversation) and created.subject == "order #1"

    result = client.process_messages(
        created.id, [{"role": "user", "message": "where is my order?"}]
    )
    assert result.conversationId == created.id
    assert result.messages[0].message == "where is my order?"
    listed = list(client.list_messages(created.id))
    assert [m.id for m in listed][: len(result.messages)] == [m.id for m in result.messages]

    names = {t.name for t in client.list_dynadata_types()}
    assert {"clients", "orders", "tickets"} <= names
    clients = list(client.list_dynadata_items("clients"))
    assert len(clients) == 25 and all(isinstance(c, DynadataItem) for c in clients)
    assert "phone" in clients[0].data  # the type's own fields are kept

    order = client.create_dynadata_item("orders", order_for(contact))
    assert order.id and order.data["clientId"] == contact
    fetched = client.get_dynadata_item("orders", order.id)
    assert fetched.data["items"] == order.data["items"]
    updated = client.update_dynadata_item("orders", order.id, {"currency": "EUR"})
    assert updated.data["currency"] == "EUR" and updated.data["clientId"] == contact

    valid = client.validate_dynadata_item("orders", order_for(contact))
    assert isinstance(valid, ValidationResult) and valid.valid
    invalid = client.validate_dynadata_item("orders", {"clientId": "nope"})
    assert not invalid.valid and {e.path for e in invalid.errors} >= {"clientId"}

    schema = client.get_dynadata_schema("orders")
    assert "clientId" in schema["properties"]
    assert "z.object" in client.get_dynadata_zod_schema("orders")

    count = client.execute_dynadata_function("clients", "count")
    assert isinstance(count, FunctionResult) and count.result == 25
    total = client.execute_dynadata_item_function("orders", order.id, "total")
    assert total.result == 20.0


async def test_every_method_async(aclient: AsyncAutoTalkClient, sb: SandboxHandle) -> None:
    assert (await aclient.get_self()).name
    contact = sb.contact_ids()[0]
    channels = await aclient.list_channels()
    assert channels
    assert await aclient.list_assistants()

    sent = await aclient.send_message(contact, "async hello")
    assert sent.message == "async hello"
    assert len(sb.sent_messages()) == 1
    conversations = [c async for c in aclient.list_conversations(contactId=contact)]
    assert sent.conversationId in {c.id for c in conversations}
    created = await aclient.create_conversation(contactId=sb.contact_ids()[2])
    result = await aclient.process_messages(created.id, [{"message": "hi"}])
    assert result.messages[0].message == "hi"
    assert [m.id async for m in aclient.list_messages(created.id)]
    pages = [p async for p in aclient.iter_message_pages(created.id, page_size=1)]
    assert all(len(p) == 1 for p in pages) and pages

    assert "orders" in {t.name for t in await aclient.list_dynadata_types()}
    assert len([i async for i in aclient.list_dynadata_items("clients")]) == 25
    order = await aclient.create_dynadata_item("orders", order_for(contact))
    assert (await aclient.get_dynadata_item("orders", order.id)).id == order.id
    updated = await aclient.update_dynadata_item("orders", order.id, {"currency": "EUR"})
    assert updated.data["currency"] == "EUR"
    assert (await aclient.validate_dynadata_item("orders", order_for(contact))).valid
    assert (await aclient.get_dynadata_schema("orders"))["type"] == "object"
    assert "z." in await aclient.get_dynadata_zod_schema("orders")
    assert (await aclient.execute_dynadata_function("clients", "count")).result == 25
    total = await aclient.execute_dynadata_item_function("orders", order.id, "total")
    assert total.result == 20.0


# ---- paging --------------------------------------------------------------------------------


def test_paging_1000_items_by_50_returns_each_once(
    client: AutoTalkClient, sb: SandboxHandle
) -> None:
    before = [item.id for item in client.list_dynadata_items("tickets")]
    seeded = sb.seed_items("tickets", 1000 - len(before))
    pages = list(client.iter_dynadata_pages("tickets", page_size=50))
    assert len(pages) == 20 and all(len(p) == 50 for p in pages)
    ids = [item.id for page in pages for item in page]
    assert ids == before + seeded  # creation order, each once


def test_page_size_above_the_server_cap_gives_short_pages_not_an_early_end(
    client: AutoTalkClient, sb: SandboxHandle
) -> None:
    before = [item.id for item in client.list_dynadata_items("orders")]
    seeded = sb.seed_items("orders", 250 - len(before))
    pages = list(client.iter_dynadata_pages("orders", page_size=500))
    assert [len(p) for p in pages] == [100, 100, 50]  # the sandbox caps limit at 100
    assert [i.id for p in pages for i in p] == before + seeded


async def test_async_paging_with_a_filter(aclient: AsyncAutoTalkClient, sb: SandboxHandle) -> None:
    marked = sb.seed_items("tickets", 130, status="open", priority="urgent")
    marked += sb.seed_items("tickets", 20, status="closed", priority="urgent")
    urgent = [i.id async for i in aclient.list_dynadata_items("tickets", priority="urgent")]
    assert urgent == marked
    closed = [i async for i in aclient.list_dynadata_items("tickets", status="closed")]
    assert {i.data["status"] for i in closed} == {"closed"}
    assert set(marked[130:]) <= {i.id for i in closed}
    pages = [len(p) async for p in aclient.iter_dynadata_pages("tickets", priority="urgent")]
    assert pages == [100, 50]


# ---- errors from the real server ---------------------------------------------------------


def test_statuses_map_to_errors(client: AutoTalkClient, sb: SandboxHandle) -> None:
    with pytest.raises(NotFoundError) as not_found:
        client.get_dynadata_item("orders", "0" * 24)
    assert not_found.value.request_id
    with pytest.raises(NotFoundError):
        client.get_dynadata_schema("no-such-type")

    with pytest.raises(InvalidRequestError) as invalid:
        client.create_dynadata_item("orders", {"clientId": "bad", "items": []})
    assert invalid.value.status_code == 422
    assert "clientId" in {issue.path for issue in invalid.value.issues}
    assert "clientId" in str(invalid.value)

    order = client.create_dynadata_item("orders", order_for(sb.contact_ids()[0]))
    with pytest.raises(ConflictError):
        client.create_dynadata_item("orders", order_for(sb.contact_ids()[0], _id=order.id))

    with AutoTalkClient(READ_ONLY_KEY, sb.base_url) as read_only:
        assert read_only.get_self().name
        with pytest.raises(PermissionDeniedError):
            read_only.send_message(sb.contact_ids()[0], "not allowed")
    assert sb.sent_messages() == []


def test_a_wrong_key_never_shows_up_anywhere(
    sb: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-key-that-must-stay-hidden-9c2b"
    caplog.set_level(logging.DEBUG)
    sb.set_faults(FaultConfig(rate_429=0.5, retry_after_seconds=0.01, seed=3))
    with AutoTalkClient(wrong, sb.base_url, retry_policy=RetryPolicy(sleep=lambda s: None)) as c:
        with pytest.raises(AuthenticationError) as info:
            for _ in range(5):  # some attempts meet a 429 first, then the 401
                c.get_self()
        texts = [str(info.value), repr(info.value), info.value.body or "", repr(c)]
        texts.append(str(pickle.dumps(info.value)))
    texts += [r.getMessage() for r in caplog.records] + [str(r.__dict__) for r in caplog.records]
    assert caplog.records  # httpx/httpcore did log at DEBUG
    assert all(wrong not in text for text in texts)


@pytest.mark.parametrize(
    "item_id", ["with space", "100%", "%2F", "what?x=1", "hash#tag", "..x", "ünï"]
)
def test_odd_ids_reach_the_sandbox_as_one_segment(
    client: AutoTalkClient, sb: SandboxHandle, item_id: str
) -> None:
    created = client.create_dynadata_item("orders", order_for(sb.contact_ids()[0], _id=item_id))
    assert created.id == item_id
    assert client.get_dynadata_item("orders", item_id).id == item_id
    assert client.execute_dynadata_item_function("orders", item_id, "total").result == 20.0


@pytest.mark.parametrize("item_id", ["../../self", "a/b", "../../../v1/self", "..", "a\\b"])
def test_ids_with_slashes_cannot_reach_another_endpoint(
    client: AutoTalkClient, sb: SandboxHandle, item_id: str
) -> None:
    """The sandbox, like many servers and proxies, decodes %2F before routing: an id holding a
    slash (or only dots) is refused before any request."""
    before = sb.stats()["requests"]
    with pytest.raises(ValueError, match="item_id"):
        client.get_dynadata_item("clients", item_id)
    assert sb.stats()["requests"] == before


# ---- retries under the sandbox's faults ----------------------------------------------------


def test_429_with_retry_after_is_waited_and_succeeds(
    client: AutoTalkClient, sb: SandboxHandle, waits: list[float]
) -> None:
    sb.set_faults(FaultConfig(rate_429=0.3, retry_after_seconds=2.0, seed=1))
    contacts = sb.contact_ids()[:8]
    for contact in contacts:  # POSTs: a 429 means "not processed", so retrying is safe
        client.send_message(contact, "promo")
    assert waits and set(waits) == {2.0}
    assert [m["contactId"] for m in sb.sent_messages()] == contacts  # each exactly once
    assert sb.stats()["faults"]


def test_a_503_storm_on_a_get_succeeds_within_the_bounds(
    client: AutoTalkClient, sb: SandboxHandle, waits: list[float]
) -> None:
    sb.set_faults(FaultConfig(error_rate=0.6, error_statuses=(503,), seed=2))
    for _ in range(10):
        assert client.get_self().name
    assert waits and all(w <= client.retry_policy.backoff_max for w in waits)
    assert sb.stats()["by_status"].get("503", 0) == len(waits)


def test_503_with_retry_after_is_retried_for_a_send(
    client: AutoTalkClient, sb: SandboxHandle, waits: list[float]
) -> None:
    sb.set_faults(
        FaultConfig(error_rate=0.5, error_statuses=(503,), retry_after_on_503=True, seed=4)
    )
    for contact in sb.contact_ids()[:6]:
        client.send_message(contact, "hi")
    assert waits
    assert len(sb.sent_messages()) == 6


def test_a_500_on_send_is_outcome_unknown_and_not_resent(
    client: AutoTalkClient, sb: SandboxHandle, waits: list[float]
) -> None:
    sb.set_faults(FaultConfig(error_rate=1.0, error_statuses=(500,), path_pattern="send_message"))
    with pytest.raises(OutcomeUnknownError) as info:
        client.send_message(sb.contact_ids()[0], "hi")
    assert info.value.status_code == 500
    assert waits == []
    assert sb.stats()["by_status"] == {"500": 1}


def test_drop_after_processing_on_send_is_outcome_unknown_with_one_message(
    client: AutoTalkClient, sb: SandboxHandle, waits: list[float]
) -> None:
    sb.set_faults(FaultConfig(drop_after_processing=1.0, path_pattern="send_message"))
    contact = sb.contact_ids()[0]
    with pytest.raises(OutcomeUnknownError) as info:
        client.send_message(contact, "did it arrive?")
    assert "not re-sent" in str(info.value)
    assert waits == []
    sent = sb.sent_messages()
    assert len(sent) == 1 and sent[0]["message"] == "did it arrive?"


async def test_drop_after_processing_on_send_async(
    aclient: AsyncAutoTalkClient, sb: SandboxHandle
) -> None:
    sb.set_faults(FaultConfig(drop_after_processing=1.0, methods=("POST",)))
    with pytest.raises(OutcomeUnknownError):
        await aclient.send_message(sb.contact_ids()[0], "async drop")
    assert len(sb.sent_messages()) == 1


def test_drop_after_processing_on_a_get_is_retried_and_succeeds(
    client: AutoTalkClient, sb: SandboxHandle, waits: list[float]
) -> None:
    sb.set_faults(FaultConfig(drop_after_processing=0.5, methods=("GET",), seed=5))
    for _ in range(8):
        assert client.get_self().name
    assert waits  # some GETs were dropped and retried
    assert sb.stats()["faults"].get("drop", 0) == len(waits)


def test_retries_stop_at_the_attempt_bound(sb: SandboxHandle) -> None:
    sb.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=1.0))
    waits: list[float] = []
    policy = RetryPolicy(attempts=3, sleep=waits.append)
    with AutoTalkClient(KEY, sb.base_url, retry_policy=policy) as c, pytest.raises(RateLimitError):
        c.get_self()
    assert waits == [1.0, 1.0]
    assert sb.stats()["requests"] == 3


def test_retries_stop_at_the_time_bound(sb: SandboxHandle) -> None:
    sb.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=4.0))
    waits: list[float] = []
    policy = RetryPolicy(attempts=100, max_seconds=10.0, sleep=waits.append)
    with AutoTalkClient(KEY, sb.base_url, retry_policy=policy) as c, pytest.raises(RateLimitError):
        c.get_self()
    assert waits == [4.0, 4.0]
    assert sb.stats()["requests"] == 3


def test_nothing_listening_is_a_connection_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        waits: list[float] = []
        policy = RetryPolicy(attempts=2, sleep=waits.append)
        url = f"http://127.0.0.1:{port}/v1"
        with (
            AutoTalkClient(KEY, url, retry_policy=policy) as c,
            pytest.raises(AutoTalkConnectionError),
        ):
            c.send_message("abc", "hi")
    assert len(waits) == 1  # a refused connection is retried even for a send


def test_a_read_timeout_on_send_is_outcome_unknown_and_not_resent(sb: SandboxHandle) -> None:
    sb.set_faults(FaultConfig(latency_ms=600, methods=("POST",)))
    waits: list[float] = []
    policy = RetryPolicy(sleep=waits.append)
    slow = AutoTalkClient(KEY, sb.base_url, read_timeout=0.1, retry_policy=policy)
    with slow, pytest.raises(OutcomeUnknownError, match="ReadTimeout"):
        slow.send_message(sb.contact_ids()[0], "slow one")
    assert waits == []
    assert sb.stats()["requests"] == 1  # sent once; whether it was applied is unknown
    assert len(sb.sent_messages()) <= 1


def test_read_timeouts_on_a_get_are_retried_then_no_response(sb: SandboxHandle) -> None:
    sb.set_faults(FaultConfig(latency_ms=600, methods=("GET",)))
    waits: list[float] = []
    policy = RetryPolicy(attempts=2, sleep=waits.append)
    slow = AutoTalkClient(KEY, sb.base_url, read_timeout=0.1, retry_policy=policy)
    with slow, pytest.raises(NoResponseError):
        slow.get_self()
    assert len(waits) == 1


# Every refusal the sandbox can put inside a 200, read by the client and THE outcome rule, as a
# campaign's chunk reads a send (cheap here; tests/test_consent_flows.py runs two shapes through
# whole campaigns).
REFUSALS = {
    "success_false": ("failed", "Recipient is not reachable on this channel"),
    "ok_false": ("failed", "Message rejected by the channel"),
    "status_failed": ("failed", "Template not approved"),
    "status_error": ("failed", "Daily sending quota exceeded"),
    "status_rejected": ("failed", "Recipient opted out at the provider"),
    "error": ("failed", "Phone number is invalid"),
    "errors": ("failed", "contactId: unknown contact; channel disabled"),
    "error_with_id": ("unknown", "Queued with a warning"),
}


@pytest.mark.parametrize("shape", sorted(REFUSALS))
def test_each_refusal_inside_a_200_is_the_outcome_a_campaign_records(
    shape: str, client: AutoTalkClient, sb: SandboxHandle
) -> None:
    from autotalk_prefect.api.outcomes import from_answer
    from autotalk_prefect.sandbox.faults import REFUSAL_BODIES

    assert set(REFUSALS) == set(REFUSAL_BODIES)  # a new shape in the sandbox gets a case here
    state, message = REFUSALS[shape]
    sb.set_faults(refusal_rate=1.0, refusal_body=shape, path_pattern="send_message")
    # a 2xx is an answer, not an error: the client returns it and the rule reads its body
    outcome = from_answer(client.send_message(sb.contact_ids()[0], "Spring sale!"))
    assert str(outcome.state) == state, outcome
    assert outcome.reason is not None and message in outcome.reason, outcome
    assert sb.sent_messages() == []  # refused: nothing applied
