"""Tasks that send messages to contacts: ``POST /contacts/{contactId}/send_message``."""

from __future__ import annotations

from typing import Any

from autotalk_prefect._compat import async_dispatch
from autotalk_prefect.api.models import Message
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.tasks._common import (
    async_client,
    autotalk_task,
    outcome_reported,
    run_logger,
    sync_client,
)


def _log_sent(sent: Message, contact_id: str) -> None:
    # Message text is customer content: the log names ids and the length, never the text.
    if sent.id is None:  # a 2xx without a readable message: sent all the same
        run_logger().info(
            "Sent a message to contact %s (%d characters); AutoTalk's answer named no message "
            "id (see the result's raw_answer)",
            contact_id,
            len(sent.message),
        )
        return
    run_logger().info(
        "Sent message %s to contact %s in conversation %s (%d characters, status %s)",
        sent.id,
        contact_id,
        sent.conversationId,
        len(sent.message),
        sent.status,
    )


@autotalk_task("send-message", "send_message-{contact_id}")
async def asend_message(
    contact_id: str,
    message: str,
    credentials: AutoTalkCredentials | None = None,
    **fields: Any,
) -> Message:
    """POST /contacts/{contactId}/send_message: send ``message`` to one contact.

    ``fields`` go to the API as they are (``channelId``, ``conversationId``, ``mediaUrl``).
    Not idempotent and never retried after an ambiguous failure: that raises
    ``OutcomeUnknownError`` instead of risking a second message. Prefect retries stay 0.
    """
    async with async_client(credentials) as client:
        with outcome_reported(f"send_message to contact {contact_id}"):
            sent = await client.send_message(contact_id, message, **fields)
    _log_sent(sent, contact_id)
    return sent


@async_dispatch(asend_message)
@autotalk_task("send-message", "send_message-{contact_id}")
def send_message(
    contact_id: str,
    message: str,
    credentials: AutoTalkCredentials | None = None,
    **fields: Any,
) -> Message:
    """POST /contacts/{contactId}/send_message: send ``message`` to one contact.

    ``fields`` go to the API as they are (``channelId``, ``conversationId``, ``mediaUrl``).
    Not idempotent and never retried after an ambiguous failure: that raises
    ``OutcomeUnknownError`` instead of risking a second message. Prefect retries stay 0.
    """
    with (
        sync_client(credentials) as client,
        outcome_reported(f"send_message to contact {contact_id}"),
    ):
        sent = client.send_message(contact_id, message, **fields)
    _log_sent(sent, contact_id)
    return sent


__all__ = ["asend_message", "send_message"]
