"""Tasks for conversations and their messages: list, open, feed, read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect.runtime import task_run

from autotalk_prefect._compat import async_dispatch
from autotalk_prefect.api.models import Conversation, InboundMessage, Message, ProcessMessagesResult
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.tasks._common import (
    async_client,
    atake,
    autotalk_task,
    outcome_reported,
    plural,
    run_logger,
    sync_client,
    take,
)


def _create_conversation_run_name() -> str:
    fields = task_run.parameters.get("fields") or {}
    contact = fields.get("contactId") if isinstance(fields, Mapping) else None
    return f"create_conversation-{contact}" if contact else "create_conversation"


# ---- list_conversations -------------------------------------------------------------------------


@autotalk_task("list-conversations", "list_conversations")
async def alist_conversations(
    credentials: AutoTalkCredentials | None = None,
    max_items: int | None = None,
    **filters: Any,
) -> list[Conversation]:
    """GET /conversations: every conversation (or the first ``max_items``), all pages read.

    ``filters``: ``contactId``, ``status``, ``updatedSince``. Prefect retries stay 0: the client
    retries each page request by its own rules.
    """
    async with async_client(credentials) as client:
        found = await atake(client.list_conversations(**filters), max_items)
    run_logger().info("Listed %s", plural(len(found), "conversation"))
    return found


@async_dispatch(alist_conversations)
@autotalk_task("list-conversations", "list_conversations")
def list_conversations(
    credentials: AutoTalkCredentials | None = None,
    max_items: int | None = None,
    **filters: Any,
) -> list[Conversation]:
    """GET /conversations: every conversation (or the first ``max_items``), all pages read.

    ``filters``: ``contactId``, ``status``, ``updatedSince``. Prefect retries stay 0: the client
    retries each page request by its own rules.
    """
    with sync_client(credentials) as client:
        found = take(client.list_conversations(**filters), max_items)
    run_logger().info("Listed %s", plural(len(found), "conversation"))
    return found


# ---- create_conversation ------------------------------------------------------------------------


def _log_created(conversation: Conversation) -> None:
    run_logger().info(
        "Opened conversation %s with contact %s", conversation.id, conversation.contactId
    )


@autotalk_task("create-conversation", _create_conversation_run_name)
async def acreate_conversation(
    credentials: AutoTalkCredentials | None = None, **fields: Any
) -> Conversation:
    """POST /conversations: open a conversation (``contactId=...``, ``channelId=...``).

    Not idempotent: an ambiguous failure raises ``OutcomeUnknownError`` rather than opening a
    second conversation. Prefect retries stay 0.
    """
    async with async_client(credentials) as client:
        with outcome_reported(f"create_conversation for contact {fields.get('contactId')}"):
            conversation = await client.create_conversation(**fields)
    _log_created(conversation)
    return conversation


@async_dispatch(acreate_conversation)
@autotalk_task("create-conversation", _create_conversation_run_name)
def create_conversation(
    credentials: AutoTalkCredentials | None = None, **fields: Any
) -> Conversation:
    """POST /conversations: open a conversation (``contactId=...``, ``channelId=...``).

    Not idempotent: an ambiguous failure raises ``OutcomeUnknownError`` rather than opening a
    second conversation. Prefect retries stay 0.
    """
    with (
        sync_client(credentials) as client,
        outcome_reported(f"create_conversation for contact {fields.get('contactId')}"),
    ):
        conversation = client.create_conversation(**fields)
    _log_created(conversation)
    return conversation


# ---- process_messages ---------------------------------------------------------------------------


def _log_processed(result: ProcessMessagesResult, given: int) -> None:
    run_logger().info(
        "Fed %s into conversation %s; %s now appended",
        plural(given, "message"),
        result.conversationId,
        plural(len(result.messages), "message"),
    )


@autotalk_task("process-messages", "process_messages-{conversation_id}")
async def aprocess_messages(
    conversation_id: str,
    messages: Sequence[InboundMessage | Mapping[str, Any]],
    credentials: AutoTalkCredentials | None = None,
) -> ProcessMessagesResult:
    """POST /conversations/{id}/messages: feed messages in (``InboundMessage`` or any mapping,
    sent unchanged).

    The answer holds the appended messages plus any assistant reply. Not idempotent (an
    ambiguous failure raises ``OutcomeUnknownError``). Prefect retries stay 0.
    """
    async with async_client(credentials) as client:
        with outcome_reported(f"process_messages in conversation {conversation_id}"):
            result = await client.process_messages(conversation_id, messages)
    _log_processed(result, len(messages))
    return result


@async_dispatch(aprocess_messages)
@autotalk_task("process-messages", "process_messages-{conversation_id}")
def process_messages(
    conversation_id: str,
    messages: Sequence[InboundMessage | Mapping[str, Any]],
    credentials: AutoTalkCredentials | None = None,
) -> ProcessMessagesResult:
    """POST /conversations/{id}/messages: feed messages in (``InboundMessage`` or any mapping,
    sent unchanged).

    The answer holds the appended messages plus any assistant reply. Not idempotent (an
    ambiguous failure raises ``OutcomeUnknownError``). Prefect retries stay 0.
    """
    with (
        sync_client(credentials) as client,
        outcome_reported(f"process_messages in conversation {conversation_id}"),
    ):
        result = client.process_messages(conversation_id, messages)
    _log_processed(result, len(messages))
    return result


# ---- list_messages ------------------------------------------------------------------------------


@autotalk_task("list-messages", "list_messages-{conversation_id}")
async def alist_messages(
    conversation_id: str,
    credentials: AutoTalkCredentials | None = None,
    max_items: int | None = None,
    **filters: Any,
) -> list[Message]:
    """GET /conversations/{id}/messages: a conversation's messages (or the first ``max_items``).

    Prefect retries stay 0: the client retries each page request by its own rules.
    """
    async with async_client(credentials) as client:
        found = await atake(client.list_messages(conversation_id, **filters), max_items)
    run_logger().info(
        "Listed %s of conversation %s", plural(len(found), "message"), conversation_id
    )
    return found


@async_dispatch(alist_messages)
@autotalk_task("list-messages", "list_messages-{conversation_id}")
def list_messages(
    conversation_id: str,
    credentials: AutoTalkCredentials | None = None,
    max_items: int | None = None,
    **filters: Any,
) -> list[Message]:
    """GET /conversations/{id}/messages: a conversation's messages (or the first ``max_items``).

    Prefect retries stay 0: the client retries each page request by its own rules.
    """
    with sync_client(credentials) as client:
        found = take(client.list_messages(conversation_id, **filters), max_items)
    run_logger().info(
        "Listed %s of conversation %s", plural(len(found), "message"), conversation_id
    )
    return found


__all__ = [
    "acreate_conversation",
    "alist_conversations",
    "alist_messages",
    "aprocess_messages",
    "create_conversation",
    "list_conversations",
    "list_messages",
    "process_messages",
]
