"""The demo's steps. Each one runs real flows and then checks what a customer would have seen."""

from __future__ import annotations

import collections
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from pydantic import SecretStr

from autotalk_prefect.api.client import AutoTalkClient
from autotalk_prefect.api.settings import DEFAULT_BASE_URL, AutoTalkSettings
from autotalk_prefect.credentials import AutoTalkCredentials, save_credentials_block
from autotalk_prefect.demo.context import DemoContext
from autotalk_prefect.demo.events import reply_round_trip
from autotalk_prefect.demo.prefect_api import ephemeral_prefect_api
from autotalk_prefect.sandbox import FaultConfig, run_sandbox

BLOCK_NAME = "autotalk-demo"
WELCOME = "Welcome aboard, {{ name }}! Reply HELP any time."
CAMPAIGN = "Hi {{ name }}, our winter offer is live: 20% off until Sunday. Reply STOP to opt out."


def _save_block(ctx: DemoContext, api_key: str, base_url: str) -> Any:
    """Save the demo's settings as a credentials block (what ``blocks/register.py`` and
    ``autotalk-prefect blocks save`` do), then load it back as a flow would."""

    settings = AutoTalkSettings(api_key=SecretStr(api_key), base_url=base_url)
    outcome = save_credentials_block(BLOCK_NAME, overwrite=True, settings=settings)
    ok = ctx.report.check(
        "block", f"credentials block {BLOCK_NAME!r} saved ({outcome.value})", outcome is not None
    )
    if not ok:
        raise SystemExit(1)
    block = cast(AutoTalkCredentials, AutoTalkCredentials.load(BLOCK_NAME))
    ctx.report.check(
        "block",
        "the saved block loads back and keeps the key secret",
        isinstance(block.api_key, SecretStr) and api_key not in repr(block),
    )
    return block


def _per_contact(messages: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(str(m.get("contactId")) for m in messages)


def _onboarding(ctx: DemoContext, sandbox: Any, block: Any) -> str:
    report = ctx.report
    report.step("Onboarding: validate -> create the client -> welcome message -> log it")
    onboard = ctx.flow("onboard_contact")
    bad = {"name": "Ana Demo"}  # no phone: the clients schema requires one
    before = len(sandbox.sent_messages())
    # A refusal is a designed outcome: the run completes and its result (and artifact) says why.
    refusal = onboard(
        dynadata_type="clients", record=bad, message_template=WELCOME, credentials=block
    )
    report.check(
        "onboarding",
        "an invalid record is refused before anything is created or sent",
        refusal.refused and len(sandbox.sent_messages()) == before,
        refusal.headline,
    )
    record = {
        "name": f"Ana Demo {ctx.run_id}",
        "phone": "+15550100" + str(int(ctx.run_id, 16) % 1000).zfill(3),
        "email": f"ana.{ctx.run_id}@example.com",
    }
    first = onboard(
        dynadata_type="clients", record=record, message_template=WELCOME, credentials=block
    )
    report.note(
        f"item {first.item_id}, message {first.message_id}, conversation {first.conversation_id}"
    )
    again = onboard(
        dynadata_type="clients", record=record, message_template=WELCOME, credentials=block
    )
    welcomes = _per_contact(sandbox.sent_messages())[first.contact_id]
    report.check(
        "onboarding", "the new client was created and welcomed", first.created and first.sent
    )
    report.check(
        "onboarding",
        "re-running it creates no second client and sends no second welcome",
        (not again.created)
        and (not again.sent)
        and again.item_id == first.item_id
        and welcomes == 1,
        f"welcome messages to the client: {welcomes}",
    )
    return str(first.contact_id)


def _outreach(ctx: DemoContext, sandbox: Any, block: Any) -> None:

    report = ctx.report
    campaign_id = f"winter-offer-{ctx.run_id}"
    audience = sorted(sandbox.contact_ids())
    report.step(
        f"Outreach: campaign {campaign_id!r} to {len(audience)} contacts, "
        "with 8% of requests answered 429 or 503"
    )
    outreach = ctx.flow("outreach_campaign")
    sandbox.set_faults(
        FaultConfig(
            rate_429=0.05,
            error_rate=0.03,
            error_statuses=(503,),
            retry_after_on_503=True,
            retry_after_seconds=0.2,
            methods=("POST",),
            path_pattern="send_message",
            seed=7,
        )
    )
    start = len(sandbox.sent_messages())
    ledger_dir = ctx.work_dir / "ledger"
    params: dict[str, Any] = {
        "campaign_id": campaign_id,
        "audience": {"dynadata_type": "clients"},
        "message_template": CAMPAIGN,
        "ledger_storage": str(ledger_dir),
        "credentials": block,
    }
    first = outreach(**params)
    injected = sandbox.stats().get("faults", {})
    report.note(
        f"run 1: sent {first.sent}, skipped {first.skipped_already_sent}, "
        f"failed {first.failed}, unknown {first.unknown} in {first.duration_seconds:.1f} s; "
        f"faults injected by the sandbox (each retried by the client): {injected}"
    )
    second = outreach(**params)
    report.note(f"run 2 (same campaign): sent {second.sent}, skipped {second.skipped_already_sent}")
    sandbox.clear_faults()
    counts = _per_contact(sandbox.sent_messages()[start:])
    twice = [c for c, n in counts.items() if n > 1]
    missing = [c for c in audience if counts[c] == 0]
    report.check(
        "outreach",
        "every contact received the campaign exactly once despite 429s and 503s",
        not twice and not missing and first.sent == len(audience),
        f"sent {first.sent}/{len(audience)}, twice {len(twice)}, missing {len(missing)}",
    )
    report.check(
        "outreach",
        "the re-run sent nothing and skipped everyone the ledger holds",
        second.sent == 0 and second.skipped_already_sent == len(audience),
        f"re-run sent {second.sent}, skipped {second.skipped_already_sent}",
    )


def _events(ctx: DemoContext, sandbox: Any, block: Any, contact_id: str) -> None:
    report = ctx.report
    report.step(
        "Events: customer replies STOP -> AutoTalk webhook -> receiver -> Prefect event -> "
        "automation -> reply-handling deployment"
    )
    outcome = reply_round_trip(ctx, sandbox, block, contact_id, text="STOP please")
    report.check(
        "events",
        "the webhook became a Prefect event and triggered a run of the replies deployment",
        outcome.flow_run_state == "COMPLETED",
        f"flow run {outcome.flow_run_name or '-'}: {outcome.flow_run_state or 'no run'}",
    )
    report.check(
        "events",
        "the flow unsubscribed the contact and answered once",
        outcome.contact_status == "inactive" and outcome.answers == 1,
        f"status {outcome.contact_status!r}, answers {outcome.answers}",
    )


def _guarded(ctx: DemoContext, step: str, run: Any, *args: Any) -> Any:
    """Run a step; an exception becomes a FAIL line with its message, not a traceback."""
    try:
        return run(*args)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:160]
        ctx.report.check(
            step, "the step ran to the end", False, f"{type(exc).__name__}: {first_line}"
        )
        return None


@contextlib.contextmanager
def _sandbox(contacts: int, api_key: str) -> Iterator[Any]:

    with run_sandbox(api_key=api_key, seed=11, contacts=contacts) as sandbox:
        yield sandbox


def run_sandbox_demo(
    ctx: DemoContext,
    *,
    contacts: int,
    with_events: bool,
    hold: Callable[[str], None] | None = None,
) -> None:
    """The default demo: everything local, nothing leaves the machine.

    ``hold`` is called last with the sandbox inbox's URL while the sandbox still runs (the
    command passes one when a person is at the terminal, to let them look before it stops).
    """

    report = ctx.report
    api_key = "sk-demo-" + secrets.token_hex(12)
    report.step("Starting the AutoTalk sandbox and Prefect's ephemeral API")
    started = time.monotonic()
    with _sandbox(contacts, api_key) as sandbox, ephemeral_prefect_api() as api_url:
        report.note(f"sandbox: {sandbox.base_url}  |  Prefect API: {api_url}")
        report.note(f"ready in {time.monotonic() - started:.1f} s")
        block = _save_block(ctx, api_key, sandbox.base_url)
        contact_id = _guarded(ctx, "onboarding", _onboarding, ctx, sandbox, block)
        _guarded(ctx, "outreach", _outreach, ctx, sandbox, block)
        if with_events and contact_id:
            _guarded(ctx, "events", _events, ctx, sandbox, block, contact_id)
        report.step("Where to look")
        report.note(
            "the runs, task runs, artifacts (progress, tables, summaries) and events are in the "
            f"demo's Prefect database: PREFECT_HOME={ctx.work_dir / 'prefect-home'} "
            "prefect server start, then open http://127.0.0.1:4200"
        )
        if hold is not None:
            hold(f"{sandbox.root_url}/")


def run_real_demo(
    ctx: DemoContext, api_key: str, base_url: str | None, contact_ids: list[str]
) -> None:
    """Against the real AutoTalk: read-only checks, and a campaign only to contacts named."""

    report = ctx.report
    url = base_url or DEFAULT_BASE_URL
    report.step(f"Real AutoTalk at {url}")
    # One read with the key before anything is written: a wrong key changes nothing.
    with AutoTalkClient(api_key=SecretStr(api_key), base_url=url) as client:
        company = client.get_self()
        types = client.list_dynadata_types()
        channels = client.list_channels()
    report.check(
        "real API",
        "the key works and the account can be read",
        bool(company.id),
        f"{company.name}: {len(types)} Dynadata types, {len(channels)} channels",
    )
    with ephemeral_prefect_api() as api_url:
        report.note(f"Prefect API: {api_url}")
        block = _save_block(ctx, api_key, url)
        assert isinstance(block, AutoTalkCredentials)
        if not contact_ids:
            report.note("no --contact-id given: nothing is sent to anyone")
            return
        outreach = ctx.flow("outreach_campaign")
        params: dict[str, Any] = {
            "campaign_id": f"autotalk-prefect-demo-{ctx.run_id}",
            "audience": {"contact_ids": contact_ids},
            "message_template": "Hello from the autotalk-prefect demo.",
            "ledger_storage": str(ctx.work_dir / "ledger"),
            "credentials": block,
        }
        first = outreach(**params)
        second = outreach(**params)
        report.check(
            "real API",
            "the named contacts got one message each; the re-run sent nothing",
            first.sent == len(set(contact_ids)) and second.sent == 0,
            f"run 1 sent {first.sent}, run 2 sent {second.sent}",
        )
