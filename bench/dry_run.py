"""A campaign's dry run over a big audience: time and peak RSS (memory must stay flat).

    .venv/bin/python bench/dry_run.py [--sizes 100000 1000000]

The sandbox runs in its own process with N contacts; a fresh child process plans the default
audience (every ``clients`` item, read page by page) against a SQLite ledger holding 1,000
opt-out entries (a quarter of them audience contacts) and a frequency cap, exactly as
``autotalk-prefect campaign preview`` does, and prints the counts, the wall time and its own
peak RSS. Nothing is claimed, written or sent: the sandbox's message log is checked to be empty.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-bench-dry-run"


def _child(root: str, ledger: str) -> None:
    sys.path.insert(0, str(REPO))
    from pydantic import SecretStr

    from autotalk_prefect.credentials import AutoTalkCredentials
    from autotalk_prefect.flows.outreach.engine import Audience
    from autotalk_prefect.flows.outreach.preview import preview_campaign
    from autotalk_prefect.flows.templating import compile_template
    from autotalk_prefect.ledger.consent import Consent, FrequencyCap
    from autotalk_prefect.ledger.store import ClaimLedger

    creds = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=f"{root}/v1")
    store = ClaimLedger("bench-dry-run", ledger)
    consent = Consent(cap=FrequencyCap(messages=2, hours=24))
    started = time.perf_counter()
    with creds.get_client() as client:
        preview = preview_campaign(
            client, store, Audience(), compile_template("Hi {{ name }}!"), consent=consent
        )
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"seconds": elapsed, "rss_mb": rss, **preview.model_dump(exclude={"samples"})})
    )


def _prepare_ledger(root: str, home: Path) -> str:
    """1,000 opt-outs: 250 audience contacts (by id, phone or email) and 750 strangers."""
    sys.path.insert(0, str(REPO))
    from autotalk_prefect.ledger.optouts import Identity, OptOutList

    ledger = f"sqlite:///{home / 'ledger.sqlite3'}"
    items: list[dict[str, str]] = []
    for skip in (0, 100, 200):
        items += httpx.get(
            f"{root}/v1/dynadata/type/clients/list",
            params={"limit": 100, "skip": skip},
            headers={"x-api-key": KEY},
            timeout=60,
        ).json()["data"]
    entries = []
    for n, item in enumerate(items[:250]):  # by id, by phone, by email in turn
        identity = (
            Identity.of(item["_id"])
            if n % 3 == 0
            else Identity.of(None, item.get("phone"))
            if n % 3 == 1
            else Identity.of(None, None, item.get("email"))
        )
        entries.append((identity, "bench", "bench"))
    entries += [
        (Identity.of(f"stranger-{n}", f"+3460{n:07d}"), "bench", "bench") for n in range(750)
    ]
    OptOutList(ledger).add_many(entries)
    return ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--root")
    parser.add_argument("--ledger")
    args = parser.parse_args()
    if args.child:
        _child(args.root, args.ledger)
        return
    print(f"{'contacts':>9} {'seconds':>8} {'contacts/s':>11} {'peak RSS MB':>12}  counts")
    for size in args.sizes:
        sandbox, root = start_sandbox(KEY, size, timeout=900)
        try:
            home = Path(tempfile.mkdtemp(prefix="bench-dry-run-"))
            ledger = _prepare_ledger(root, home)
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--root", root, "--ledger", ledger],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            sent = httpx.get(f"{root}/_sandbox/messages", timeout=60).json()
            count = len(sent["data"] if isinstance(sent, dict) else sent)
            assert count == 0, f"a dry run sent {count} messages"
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=30)
        assert figures["audience"] == size, figures
        counts = {
            k: figures[k] for k in ("would_send", "opted_out", "frequency_cap", "already_sent")
        }
        print(
            f"{size:>9} {figures['seconds']:>8.1f} {size / figures['seconds']:>11.0f} "
            f"{figures['rss_mb']:>12.0f}  {counts}",
            flush=True,
        )


if __name__ == "__main__":
    main()
