"""Tasks for AI assistants: ``GET /assistants``."""

from __future__ import annotations

from autotalk_prefect._compat import async_dispatch
from autotalk_prefect.api.models import Assistant
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.tasks._common import (
    async_client,
    autotalk_task,
    plural,
    run_logger,
    sync_client,
)


@autotalk_task("list-assistants", "list_assistants")
async def alist_assistants(credentials: AutoTalkCredentials | None = None) -> list[Assistant]:
    """GET /assistants: the configured AI assistants.

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        assistants = await client.list_assistants()
    run_logger().info("Listed %s", plural(len(assistants), "assistant"))
    return assistants


@async_dispatch(alist_assistants)
@autotalk_task("list-assistants", "list_assistants")
def list_assistants(credentials: AutoTalkCredentials | None = None) -> list[Assistant]:
    """GET /assistants: the configured AI assistants.

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        assistants = client.list_assistants()
    run_logger().info("Listed %s", plural(len(assistants), "assistant"))
    return assistants


__all__ = ["alist_assistants", "list_assistants"]
