"""The sandbox inbox in a real browser, while a real outreach flow sends (issue 16).

Two tests share one browser (tests/browser.py) and one sandbox. Set
``AUTOTALK_UPDATE_SCREENSHOTS=1`` to refresh docs/img/inbox-campaigns.png from the first one.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle, run_sandbox
from autotalk_prefect.serving import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "img" / "inbox-campaigns.png"
KEY = "sk-inbox-browser-3e9a"
CONTACTS = 40
TEMPLATE = "Hi {{ name }}, our winter offer is live: 20% off until Sunday."


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    """A webhook receiver that answers every delivery 202 with a small JSON body."""

    async def accept(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": True, "path": request.url.path}, status_code=202)

    app = Starlette(routes=[Route("/autotalk/{event:path}", accept, methods=["POST"])])
    with serve_in_thread(app, name="inbox-test-receiver") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def sandbox(receiver: str) -> Iterator[SandboxHandle]:
    with run_sandbox(api_key=KEY, seed=5, contacts=CONTACTS) as handle:
        handle.configure_webhook(receiver, "inbox-secret", events=["message.received"])
        yield handle


def _count(page: Page, name: str) -> int:
    return int(page.locator(f"#count-{name}").inner_text())


def test_inbox_follows_a_flow_live_and_flags_a_planted_duplicate(
    sandbox: SandboxHandle, browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    page.goto(sandbox.root_url + "/")
    expect(page.locator("#count-messages")).to_have_text("0")
    page.evaluate("window.__notReloaded = true")

    # Slow sends down so the flow takes a few seconds and the page sees them arrive.
    sandbox.set_faults(latency_ms=80, path_pattern="send_message$")
    credentials = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url)
    outcome: dict[str, Any] = {}

    def send() -> None:
        outcome["summary"] = outreach_campaign(
            "winter",
            TEMPLATE,
            ledger_storage=str(tmp_path / "ledger"),
            credentials=credentials,
            max_concurrency=2,
        )

    flow_thread = threading.Thread(target=send, name="inbox-test-outreach")
    flow_thread.start()
    try:
        expect(page.locator("#count-messages")).not_to_have_text("0", timeout=30_000)
        seen_while_sending = _count(page, "messages")
        expect(page.locator("#count-messages")).to_have_text(str(CONTACTS), timeout=60_000)
    finally:
        flow_thread.join(timeout=120)
    assert outcome["summary"].sent == CONTACTS
    assert 0 < seen_while_sending <= CONTACTS
    expect(page.locator("table.messages tbody tr.outbound")).to_have_count(CONTACTS)
    assert page.evaluate("window.__notReloaded") is True  # it updated in place, live
    sandbox.clear_faults()

    # One conversation, as the customer saw it.
    page.locator("table.messages tbody tr").first.locator("a").first.click()
    expect(page).to_have_url(re.compile(r"/conversations/[0-9a-f]{24}$"))
    expect(page.locator(".bubble.outbound .text")).to_contain_text("our winter offer is live")

    # A buggy second send to one contact: the campaign view flags it.
    target = sandbox.contact_ids()[7]
    name = sandbox.runtime.state.get_item("clients", target)["name"]
    answer = httpx.post(
        f"{sandbox.base_url}/contacts/{target}/send_message",
        headers={"x-api-key": KEY},
        json={"message": TEMPLATE.replace("{{ name }}", name)},
    )
    assert answer.status_code in (200, 201), answer.text
    page.goto(sandbox.root_url + "/campaigns")
    flagged = page.locator("table.campaigns tr.duplicate")
    expect(flagged).to_have_count(1)
    expect(flagged).to_contain_text(TEMPLATE)
    expect(flagged).to_contain_text(f"{name} (2)")
    expect(flagged.locator(".badge")).to_have_text("duplicates: 1")
    shot = tmp_path / "inbox-campaigns.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("AUTOTALK_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_inbox_forms_apply_faults_refuse_bad_input_and_simulate_a_reply(
    sandbox: SandboxHandle, browser_page: Page
) -> None:
    page = browser_page
    page.goto(sandbox.root_url + "/faults")

    for field, value, reason in [
        ("error_rate", "2", "error_rate must be a fraction between 0 and 1"),
        ("latency_ms", "-5", "latency_ms must be >= 0"),
    ]:
        page.goto(sandbox.root_url + "/faults")
        page.fill(f"#fault-{field}", value)
        page.click("#apply-faults")
        expect(page.locator("#form-error")).to_contain_text(reason)
        assert sandbox.faults() == FaultConfig(), f"{field}={value} changed the faults"

    page.goto(sandbox.root_url + "/faults")
    page.fill("#fault-error_rate", "1")
    page.fill("#fault-error_statuses", "503")
    page.click("#apply-faults")
    expect(page.locator("#faults-applied")).to_be_visible()
    expect(page.locator("#current-error_rate")).to_have_text("1.0")
    expect(page.locator("#faults-state")).to_have_text("on")
    assert sandbox.faults().error_rate == 1.0 and sandbox.faults().error_statuses == (503,)
    refused = httpx.get(f"{sandbox.base_url}/self", headers={"x-api-key": KEY})
    assert refused.status_code == 503  # the sandbox applies what the form set
    page.click("#clear-faults")
    expect(page.locator("#faults-state")).to_have_text("off")
    assert not sandbox.faults().active

    page.goto(sandbox.root_url + "/webhooks")
    before = _count(page, "messages")
    page.fill("form.reply input[name=contactId]", "000000000000000000000000")
    page.fill("form.reply input[name=text]", "YES")
    page.click("#simulate-reply")
    expect(page.locator("#form-error")).to_contain_text("no contact")
    assert sandbox.runtime.state.message_log == [] and before == 0

    contact = sandbox.contact_ids()[3]
    page.fill("form.reply input[name=contactId]", contact)
    page.fill("form.reply input[name=text]", "YES please")
    page.click("#simulate-reply")
    expect(page.locator("#reply-sent")).to_be_visible()
    delivered = page.locator("table.deliveries tbody tr.delivered")
    expect(delivered).to_have_count(1, timeout=15_000)  # appears live, once delivered
    expect(delivered).to_contain_text("message.received")
    expect(delivered).to_contain_text("202")
    expect(delivered).to_contain_text('"accepted":true')
    expect(delivered).to_contain_text("YES please")


def test_appointments_page_books_moves_and_cancels_and_refuses_a_stranger(
    sandbox: SandboxHandle, browser_page: Page
) -> None:
    page = browser_page
    page.goto(sandbox.root_url + "/appointments")
    expect(page.locator("#prefect-source")).to_contain_text("no Prefect API known")
    page.fill("form.book input[name=contactId]", "000000000000000000000000")
    page.fill("form.book input[name=startsAt]", "2030-03-30T10:00")
    page.click("#book-appointment")
    expect(page.locator("#form-error")).to_contain_text("not booked: no ")
    assert sandbox.runtime.state.message_log == []

    contact = sandbox.contact_ids()[1]
    page.fill("form.book input[name=contactId]", contact)
    page.fill("form.book input[name=startsAt]", "2030-03-30T10:00")
    page.fill("form.book input[name=timeZone]", "Europe/Madrid")
    page.click("#book-appointment")
    row = page.locator("table.appointments tr.appointment")
    expect(row).to_have_count(1)
    expect(row.locator("td.status")).to_have_text("scheduled")
    expect(row).to_contain_text("2030-03-30T10:00:00+01:00")  # Madrid, winter time that day
    row.locator("form.move input[name=startsAt]").fill("2030-03-31T09:30")
    row.locator(".move-appointment").click()
    expect(row).to_contain_text("2030-03-31T09:30:00+02:00")  # summer time from 02:00 that day
    row.locator(".cancel-appointment").click()
    expect(row.locator("td.status")).to_have_text("cancelled")
    expect(row.locator(".move-appointment")).to_have_count(0)
    shown = httpx.get(f"{sandbox.root_url}/_sandbox/inbox/appointments").json()["data"]
    assert [(a["contactId"], a["status"]) for a in shown] == [(contact, "cancelled")]
