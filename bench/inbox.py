"""The sandbox inbox with 100,000 messages: a page against its JSON twin, same query, same run.

The sandbox's state is filled in-process (``send_message`` straight on the state, plus some
replies), then each route is called as an ASGI app with no network and no client in between, so
the figures are the server's own time: routing, the gate, the query, and JSON encoding or Jinja
rendering. Printed per query: median microseconds of the page and of ``/_sandbox/inbox/...``,
and their ratio (the issue's bar: the inbox's first page at most 2x its JSON twin). The front
page keeps each rendered message row (sandbox/fragments.py); its first line is measured with
no row reused (as after a reset), the next as the live view sees it, re-rendering a page whose
rows it already showed. Both are held to the 2x bar (exit status 1 if either is above it).

    .venv/bin/python bench/inbox.py [--messages 100000] [--contacts 2000] [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from autotalk_prefect.sandbox import create_app

TEMPLATES = (
    "Hi {name}, our winter offer is live: 20% off until Sunday. Reply STOP to opt out.",
    "Welcome aboard, {name}! Reply HELP any time.",
    "{name}, your order has shipped.",
)


def fill(app: Any, messages: int) -> tuple[str, float]:
    """Send ``messages`` outbound messages round-robin over the contacts; a reply every 50."""
    state = app.runtime.state
    contacts = state.contact_ids()
    names = {cid: state.get_item("clients", cid)["name"] for cid in contacts}
    started = time.perf_counter()
    for n in range(messages):
        cid = contacts[n % len(contacts)]
        text = TEMPLATES[(n // len(contacts)) % len(TEMPLATES)].format(name=names[cid])
        if n % 50 == 49:
            state.simulate_reply(cid, "YES please")
        else:
            state.send_message(cid, {"message": text})
    return contacts[len(contacts) // 2], time.perf_counter() - started


async def call(app: Any, path: str, query: str) -> tuple[int, int]:
    """One GET through the whole ASGI app; (status, body bytes)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8765")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }
    status, size = 0, 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, size


async def median_us(
    app: Any, path: str, query: str, rounds: int, *, cold: bool = False
) -> tuple[float, int]:
    """Median server time of one GET; ``cold``: no row rendered before is reused."""
    status, size = await call(app, path, query)  # warm-up (templates compile once)
    if status != 200:
        raise SystemExit(f"GET {path}?{query} answered {status}")
    times = []
    for _ in range(rounds):
        if cold:
            app.runtime.state.generation += 1  # what a reset does: cached rows no longer match
        started = time.perf_counter()
        await call(app, path, query)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6, size


async def measure(app: Any, contact: str, rounds: int) -> list[tuple[str, float, float]]:
    queries = [
        ("first page (50, newest)", "/", "/_sandbox/inbox/messages", ""),
        ("one contact", "/", "/_sandbox/inbox/messages", f"contactId={contact}"),
        ("text search 'shipped'", "/", "/_sandbox/inbox/messages", "q=shipped"),
        ("campaigns", "/campaigns", "/_sandbox/inbox/campaigns", ""),
        ("contacts", "/contacts", "/_sandbox/inbox/contacts", ""),
    ]
    rows = []
    for label, page, twin, query in queries:
        if label.startswith("first page"):
            cold_us, _ = await median_us(app, page, query, rounds, cold=True)
            json_us, _ = await median_us(app, twin, query, rounds)
            rows.append(("first page, cold", cold_us, json_us))
            print(
                f"{'first page, rows rendered':<26} page {cold_us:8.0f} us"
                f"{'':<12}   json {json_us:8.0f} us{'':<9}   ratio {cold_us / json_us:4.2f}"
                "   (cold: no cached row; every live refresh after it reuses them)",
                flush=True,
            )
        page_us, page_bytes = await median_us(app, page, query, rounds)
        json_us, json_bytes = await median_us(app, twin, query, rounds)
        rows.append((label, page_us, json_us))
        print(
            f"{label:<26} page {page_us:8.0f} us ({page_bytes // 1024} KiB)   "
            f"json {json_us:8.0f} us ({json_bytes // 1024} KiB)   ratio {page_us / json_us:4.2f}",
            flush=True,
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    app = create_app(api_key="sk-bench", contacts=args.contacts)
    contact, seconds = fill(app, args.messages)
    print(
        f"{len(app.runtime.state.message_log)} messages to {args.contacts} contacts "
        f"(filled in {seconds:.1f} s); median server time over {args.rounds} calls each",
        flush=True,
    )
    rows = asyncio.run(measure(app, contact, args.rounds))
    within = True
    for label, page_us, json_us in rows[:2]:  # the first page, cold then as the live view sees it
        ok = page_us <= 2 * json_us
        within = within and ok
        verdict = "within" if ok else "ABOVE"
        print(f"{label}: {page_us / json_us:.2f}x its JSON twin ({verdict} the 2x target)")
    app.runtime.close()
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
