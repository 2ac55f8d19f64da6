"""Tasks for the company behind the API key: ``GET /self``."""

from __future__ import annotations

from autotalk_prefect._compat import async_dispatch
from autotalk_prefect.api.models import Company
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.tasks._common import async_client, autotalk_task, run_logger, sync_client


@autotalk_task("get-self", "get_self")
async def aget_self(credentials: AutoTalkCredentials | None = None) -> Company:
    """GET /self: the company the API key belongs to (a cheap credentials check).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        company = await client.get_self()
    run_logger().info("AutoTalk company %s (%s)", company.id, company.name)
    return company


@async_dispatch(aget_self)
@autotalk_task("get-self", "get_self")
def get_self(credentials: AutoTalkCredentials | None = None) -> Company:
    """GET /self: the company the API key belongs to (a cheap credentials check).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        company = client.get_self()
    run_logger().info("AutoTalk company %s (%s)", company.id, company.name)
    return company


__all__ = ["aget_self", "get_self"]
