"""The inbox over plain HTTP: JSON twins, filters and paging, escaping, refusals, loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from autotalk_prefect.sandbox import DEFAULT_API_KEY as API_KEY
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle
from autotalk_prefect.sandbox.fragments import message_rows

PAGES = ("/", "/contacts", "/campaigns", "/webhooks", "/appointments", "/faults")
SANDBOX_DIR = Path(__file__).resolve().parents[2] / "autotalk_prefect" / "sandbox"


@pytest.fixture
def inbox(sb: SandboxHandle) -> Iterator[httpx.Client]:
    sb.reset()
    sb.clear_faults()
    with httpx.Client(base_url=sb.root_url, timeout=10) as client:
        yield client


def _send(sb: SandboxHandle, contact: str, text: str) -> dict[str, object]:
    return sb.runtime.state.send_message(contact, {"message": text})


def test_messages_twin_filters_by_contact_text_and_time_newest_first(
    sb: SandboxHandle, inbox: httpx.Client
) -> None:
    a, b = sb.contact_ids()[:2]
    first = _send(sb, a, "spring sale")
    _send(sb, b, "Spring SALE for you")
    last = _send(sb, a, "autumn news")
    everything = inbox.get("/_sandbox/inbox/messages").json()
    assert [m["message"] for m in everything["data"]] == [
        "autumn news",
        "Spring SALE for you",
        "spring sale",
    ]
    assert everything["data"][0]["contactName"] == sb.runtime.state.get_item("clients", a)["name"]
    by_contact = inbox.get("/_sandbox/inbox/messages", params={"contactId": a}).json()
    assert [m["_id"] for m in by_contact["data"]] == [last["_id"], first["_id"]]
    by_text = inbox.get("/_sandbox/inbox/messages", params={"q": "sale"}).json()
    assert by_text["total"] == 2
    window = {"since": first["createdAt"], "until": first["createdAt"]}
    in_window = inbox.get("/_sandbox/inbox/messages", params=window).json()
    assert first["_id"] in {m["_id"] for m in in_window["data"]}
    assert all(m["createdAt"] == first["createdAt"] for m in in_window["data"])
    page = inbox.get("/_sandbox/inbox/messages", params={"limit": 1, "skip": 1}).json()
    assert [m["message"] for m in page["data"]] == ["Spring SALE for you"]
    assert (page["total"], page["limit"], page["skip"]) == (3, 1, 1)
    html = inbox.get("/", params={"q": "sale"}).text
    assert "Spring SALE for you" in html and "autumn news" not in html
    assert inbox.get("/_sandbox/inbox/messages", params={"since": "yesterday"}).status_code == 400


def test_contact_and_conversation_twins_show_replies_in_order(
    sb: SandboxHandle, inbox: httpx.Client
) -> None:
    contact = sb.contact_ids()[4]
    sent = _send(sb, contact, "Hi, want the offer?")
    sb.simulate_reply(contact, "YES")
    card = inbox.get(f"/_sandbox/inbox/contacts/{contact}").json()
    (conversation,) = card["conversations"]
    assert (card["contact"]["messages"], conversation["messages"]) == (2, 2)
    thread = inbox.get(f"/_sandbox/inbox/conversations/{sent['conversationId']}").json()
    assert [(m["direction"], m["message"]) for m in thread["data"]] == [
        ("outbound", "Hi, want the offer?"),
        ("inbound", "YES"),
    ]
    html = inbox.get(f"/conversations/{sent['conversationId']}").text
    assert html.index("Hi, want the offer?") < html.index("YES")
    listed = inbox.get("/_sandbox/inbox/contacts", params={"q": contact}).json()
    assert [c["_id"] for c in listed["data"]] == [contact]
    assert inbox.get("/contacts/nobody").status_code == 404
    assert "no contact" in inbox.get("/contacts/nobody").text


def test_campaigns_group_by_template_and_flag_a_contact_messaged_twice(
    sb: SandboxHandle, inbox: httpx.Client
) -> None:
    state = sb.runtime.state
    ids = sb.contact_ids()[:5]
    for cid in [*ids, ids[2]]:
        _send(sb, cid, f"Hi {state.get_item('clients', cid)['name']}, the sale starts.")
    _send(sb, ids[0], "Unrelated note")
    data = inbox.get("/_sandbox/inbox/campaigns").json()
    top = data["data"][0]
    assert top["template"] == "Hi {{ name }}, the sale starts."
    assert (top["messages"], top["contacts"], top["duplicatedContacts"]) == (6, 5, 1)
    assert top["duplicates"][0]["contactId"] == ids[2]
    assert (data["total"], data["withDuplicates"]) == (2, 1)
    assert 'class="duplicate"' in inbox.get("/campaigns").text


def test_everything_rendered_is_escaped_and_the_key_never_shows(
    sb: SandboxHandle, inbox: httpx.Client
) -> None:
    contact = sb.contact_ids()[0]
    _send(sb, contact, "<script>alert('x')</script>")
    _send(sb, contact, "<!--row--> the row marker, typed by a customer")
    sb.simulate_reply(contact, '"><img src=x onerror=alert(1)>')
    for path in (*PAGES, f"/contacts/{contact}"):
        html = inbox.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert API_KEY not in html, path
    front = inbox.get("/").text
    assert "&lt;script&gt;alert" in front and "&lt;!--row--&gt; the row marker" in front


@pytest.mark.parametrize("nul", ["", "\x00"], ids=["one-escape", "a-value-holds-nul"])
def test_the_message_rows_escape_every_value_they_show(nul: str) -> None:
    hostile = f"'\"><script>alert(1)</script>&amp;{nul}"
    fields = ("direction", "conversationId", "createdAt", "contactId", "contactName")
    fields += ("channelName", "status", "role", "message")
    plain = {name: f"{name}-plain" for name in fields}
    rows = message_rows([plain, {name: f"{name}:{hostile}" for name in fields}, plain])
    assert len(rows) == 3 and rows[0] == rows[2] and "message-plain" in rows[0]
    escaped = f"&#39;&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;{nul}"
    for name in fields:
        assert f"{name}:{escaped}" in rows[1], name
    assert "<script" not in rows[1] and "'" not in rows[1]
    assert rows[1].count('"') == 8  # the quotes of the row's own four attributes, nothing else
    unnamed = {"contactName": None, "channelName": None, "channelId": "x"}
    (absent,) = message_rows([dict.fromkeys(fields, "x") | unnamed])
    assert absent.count(">x<") == 7  # a contact or channel without a name shows its id


def test_pages_ship_their_assets_and_fetch_nothing_from_elsewhere(inbox: httpx.Client) -> None:
    for name, kind in (("inbox.css", "text/css"), ("inbox.js", "text/javascript")):
        answer = inbox.get(f"/static/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
    assert inbox.get("/static/../admin.py").status_code == 404
    shipped = [*SANDBOX_DIR.glob("templates/*.html"), *SANDBOX_DIR.glob("static/*")]
    for path in shipped:
        assert "http://" not in path.read_text() and "https://" not in path.read_text(), path


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"error_rate": "2"}, "error_rate must be a fraction between 0 and 1"),
        ({"latency_ms": "-1"}, "latency_ms must be &gt;= 0"),
        ({"latency_ms": "fast"}, "latency_ms must be a number"),
        ({"error_statuses": "404"}, "error_statuses must be among"),
        ({"path_pattern": "("}, "is not a regex"),
        ({"refusal_rate": "1.5"}, "refusal_rate must be a fraction between 0 and 1"),
        ({"error_rate": "0.6", "refusal_rate": "0.6"}, "must not exceed 1"),
        ({"refusal_body": "maybe"}, "refusal_body must be one of"),
    ],
)
def test_a_bad_faults_form_is_refused_with_the_reason_and_changes_nothing(
    sb: SandboxHandle, inbox: httpx.Client, form: dict[str, str], reason: str
) -> None:
    sb.set_faults(FaultConfig(rate_429=0.5, seed=2))
    answer = inbox.post("/faults", data=form)
    assert answer.status_code == 422 and reason in answer.text
    assert sb.faults() == FaultConfig(rate_429=0.5, seed=2)


def test_the_faults_form_sets_what_the_admin_api_reads(
    sb: SandboxHandle, inbox: httpx.Client
) -> None:
    form = {"latency_ms": "5", "error_statuses": "502, 503", "methods": "post", "seed": "9"}
    answer = inbox.post("/faults", data={**form, "retry_after_on_503": "on"})
    assert answer.status_code == 303 and answer.headers["location"] == "/faults?applied=1"
    assert (
        inbox.get("/_sandbox/faults").json()
        == FaultConfig(
            latency_ms=5,
            error_statuses=(502, 503),
            methods=("POST",),
            seed=9,
            retry_after_on_503=True,
        ).to_dict()
    )
    assert inbox.post("/faults/clear").status_code == 303 and not sb.faults().active


def test_the_faults_form_sets_a_refusal_and_the_api_answers_200_refused(
    sb: SandboxHandle, inbox: httpx.Client, api: httpx.Client
) -> None:
    page = inbox.get("/faults").text
    assert 'name="refusal_rate"' in page and '<option value="status_rejected"' in page
    form = {"refusal_rate": "1", "refusal_body": "status_rejected", "path_pattern": "send_message$"}
    assert inbox.post("/faults", data=form).status_code == 303
    assert sb.faults() == FaultConfig(
        refusal_rate=1.0, refusal_body="status_rejected", path_pattern="send_message$"
    )
    shown = inbox.get("/faults").text  # the form comes back holding what was applied
    assert '<option value="status_rejected" selected>' in shown
    contact = sb.contact_ids()[0]
    answer = api.post(f"/contacts/{contact}/send_message", json={"message": "hi"})
    assert answer.status_code == 200 and answer.json()["status"] == "rejected"
    assert sb.runtime.state.message_log == []  # refused: nothing was sent


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"contactId": "000000000000000000000000", "text": "hi"}, "no contact"),
        ({"contactId": "", "text": "hi"}, "contactId is required"),
        ({"contactId": "x", "text": "  "}, "text must not be empty"),
    ],
)
def test_a_bad_reply_form_is_refused_with_the_reason_and_sends_nothing(
    sb: SandboxHandle, inbox: httpx.Client, form: dict[str, str], reason: str
) -> None:
    answer = inbox.post("/simulate-reply", data=form)
    assert answer.status_code == 422 and reason in answer.text
    assert sb.runtime.state.message_log == []


def test_a_reply_from_the_form_goes_out_like_a_real_one(
    sb: SandboxHandle, inbox: httpx.Client
) -> None:
    contact = sb.contact_ids()[1]
    answer = inbox.post("/simulate-reply", data={"contactId": contact, "text": "STOP"})
    assert answer.status_code == 303
    (message,) = sb.runtime.state.message_log
    assert (message["direction"], message["message"]) == ("inbound", "STOP")
    assert answer.headers["location"] == f"/webhooks?replied={message['_id']}"


def test_only_loopback_hosts_and_same_origin_posts(inbox: httpx.Client, sb: SandboxHandle) -> None:
    assert inbox.get("/", headers={"host": "inbox.example.com"}).status_code == 403
    assert inbox.get("/", headers={"host": "localhost:1"}).status_code == 200
    foreign = {"origin": "http://evil.example"}
    assert inbox.post("/faults", data={"error_rate": "1"}, headers=foreign).status_code == 403
    assert not sb.faults().active


def test_the_summary_version_moves_with_what_is_shown(
    sb: SandboxHandle, inbox: httpx.Client
) -> None:
    before = inbox.get("/_sandbox/inbox/summary").json()
    _send(sb, sb.contact_ids()[0], "hello")
    after = inbox.get("/_sandbox/inbox/summary").json()
    assert (before["messages"], after["messages"]) == (0, 1)
    assert before["version"] != after["version"]
    sb.reset()
    assert inbox.get("/_sandbox/inbox/summary").json()["version"] != before["version"]
