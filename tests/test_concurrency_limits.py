"""The shared rate limit (a Prefect global concurrency limit) against the real Prefect API."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from autotalk_prefect import ratelimit
from autotalk_prefect.cli import app
from autotalk_prefect.concurrency_limits import (
    RateLimitOutcome,
    describe_rate_limit,
    ensure_rate_limit,
    remove_rate_limit,
)
from autotalk_prefect.ratelimit import GlobalRateLimitError, check_global_rate_limit


def _name() -> str:
    return f"autotalk-test-{uuid.uuid4().hex[:8]}"


def test_create_update_show_delete_each_idempotent() -> None:
    name = _name()
    assert describe_rate_limit(name) is None

    info, outcome = ensure_rate_limit(name, requests_per_second=5)
    assert outcome is RateLimitOutcome.CREATED
    assert (info.name, info.requests_per_second, info.burst, info.active) == (name, 5.0, 5, True)
    # what the send path checks before a campaign starts agrees it is a usable rate limit
    assert asyncio.run(check_global_rate_limit(name)) == {"limit": 5, "slot_decay_per_second": 5.0}

    again, outcome = ensure_rate_limit(name, requests_per_second=5)
    assert outcome is RateLimitOutcome.UNCHANGED and again == info

    updated, outcome = ensure_rate_limit(name, requests_per_second=2.5, burst=7)
    assert outcome is RateLimitOutcome.UPDATED
    assert (updated.requests_per_second, updated.burst) == (2.5, 7)
    assert describe_rate_limit(name) == updated

    assert remove_rate_limit(name) is True
    assert describe_rate_limit(name) is None
    assert remove_rate_limit(name) is False  # already gone: still fine
    with pytest.raises(GlobalRateLimitError, match="does not exist"):
        asyncio.run(check_global_rate_limit(name))


def test_an_inactive_or_non_decaying_limit_is_repaired_in_place() -> None:
    """Someone disabled the limit or made it a plain concurrency limit: set makes it work again."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    name = _name()
    ensure_rate_limit(name, requests_per_second=3, burst=3)

    async def spoil() -> None:
        async with get_client() as client:
            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(active=False, slot_decay_per_second=0.0)
            )

    asyncio.run(spoil())
    spoiled = describe_rate_limit(name)
    assert spoiled is not None and not spoiled.usable
    info, outcome = ensure_rate_limit(name, requests_per_second=3, burst=3)
    assert outcome is RateLimitOutcome.UPDATED and info.usable and info.requests_per_second == 3
    remove_rate_limit(name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests_per_second": 0}, "requests_per_second must be a finite number > 0"),
        ({"requests_per_second": float("inf")}, "requests_per_second must be a finite number"),
        ({"requests_per_second": 5, "burst": 0}, "burst must be an integer >= 1"),
        ({"requests_per_second": 5, "burst": 2.5}, "burst must be an integer >= 1"),
        ({"name": " ", "requests_per_second": 5}, "name must be a non-empty string"),
        ({"name": "bad/name", "requests_per_second": 5}, "invalid rate limit name 'bad/name'"),
    ],
)
def test_bad_input_is_refused_with_the_parameter_named(kwargs: dict, message: str) -> None:
    kwargs.setdefault("name", _name())
    with pytest.raises(ValueError, match=message):
        ensure_rate_limit(**kwargs)
    if kwargs["name"].strip() and "/" not in kwargs["name"]:
        assert describe_rate_limit(kwargs["name"]) is None  # nothing was created


def test_cli_set_show_delete() -> None:
    name = _name()
    runner = CliRunner()

    shown = runner.invoke(app, ["rate-limit", "show", "--name", name])
    assert shown.exit_code == 1 and "no rate limit" in shown.output

    created = runner.invoke(app, ["rate-limit", "set", "--rps", "4", "--name", name])
    assert created.exit_code == 0, created.output
    assert created.output.startswith(f"created: {name}: 4 requests/s, burst 4, active")
    repeated = runner.invoke(app, ["rate-limit", "set", "--rps", "4", "--name", name])
    assert repeated.output.startswith("unchanged:")
    changed = runner.invoke(
        app, ["rate-limit", "set", "--rps", "8", "--burst", "2", "--name", name]
    )
    assert changed.output.startswith(f"updated: {name}: 8 requests/s, burst 2")

    shown = runner.invoke(app, ["rate-limit", "show", "--name", name])
    assert shown.exit_code == 0 and "8 requests/s, burst 2, active" in shown.output

    refused = runner.invoke(app, ["rate-limit", "set", "--rps", "-1", "--name", name])
    assert refused.exit_code == 2 and "requests_per_second must be" in refused.output

    for expected in (f"deleted {name!r}", "nothing to do"):
        deleted = runner.invoke(app, ["rate-limit", "delete", "--name", name])
        assert deleted.exit_code == 0 and expected in deleted.output
    assert describe_rate_limit(name) is None


def test_the_admin_stays_importable_from_ratelimit_as_documented_first() -> None:
    assert ratelimit.ensure_rate_limit is ensure_rate_limit
    assert ratelimit.describe_rate_limit is describe_rate_limit
    assert ratelimit.remove_rate_limit is remove_rate_limit
    assert ratelimit.RateLimitOutcome is RateLimitOutcome
