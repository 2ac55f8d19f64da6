"""Tasks for connected channels: ``GET /integrations/channels``."""

from __future__ import annotations

from autotalk_prefect._compat import async_dispatch
from autotalk_prefect.api.models import Channel
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.tasks._common import (
    async_client,
    autotalk_task,
    plural,
    run_logger,
    sync_client,
)


@autotalk_task("list-channels", "list_channels")
async def alist_channels(credentials: AutoTalkCredentials | None = None) -> list[Channel]:
    """GET /integrations/channels: the connected channels (WhatsApp numbers, web chat, ...).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        channels = await client.list_channels()
    run_logger().info("Listed %s", plural(len(channels), "channel"))
    return channels


@async_dispatch(alist_channels)
@autotalk_task("list-channels", "list_channels")
def list_channels(credentials: AutoTalkCredentials | None = None) -> list[Channel]:
    """GET /integrations/channels: the connected channels (WhatsApp numbers, web chat, ...).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        channels = client.list_channels()
    run_logger().info("Listed %s", plural(len(channels), "channel"))
    return channels


__all__ = ["alist_channels", "list_channels"]
