"""A campaign's dry run over a big audience: time and peak RSS (memory must stay flat).

    .venv/bin/python bench/dry_run.py [--sizes 100000 1000000]

The sandbox runs in its own process with N contacts; a fresh child process plans the default
audience (every ``clients`` item, read page by page) against a SQLite ledger holding 1,000
opt-out entries (a quarter of them audience contacts) and a frequency cap, exactly as
``autotalk-prefect campaign preview`` does, and prints the counts, the wall time and its own
peak RSS. Nothing is claimed, written or sent: the sandbox's message log is checked to be empty.

    .venv/bin/python bench/dry_run.py --sql [--sizes 10000 1000000]

The audience is a SQL query instead: N rows (contact id, first name, score) in a DuckDB file,
planned by ``outreach_campaign(audience={"query": ..., "url": ...}, dry_run=True)`` through
Prefect (ephemeral API, in a fresh child process) against the same 1,000 opt-outs (250 of them
audience rows) and cap: every row streamed, deduplicated per chunk, looked up in the ledger and
checked for opt-outs and the cap, the template rendered from the row. The sandbox holds 25
contacts: a SQL audience fetches no record per contact.
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


def _sql_child(root: str, ledger: str, url: str) -> None:
    sys.path.insert(0, str(REPO))
    import contextlib
    import io

    from pydantic import SecretStr

    from autotalk_prefect.credentials import AutoTalkCredentials
    from autotalk_prefect.demo.prefect_api import ephemeral_prefect_api, prepare_environment
    from autotalk_prefect.ledger.consent import FrequencyCap

    prepare_environment(Path(tempfile.mkdtemp(prefix="bench-prefect-")))
    creds = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=f"{root}/v1")
    with contextlib.redirect_stderr(io.StringIO()), ephemeral_prefect_api():
        from autotalk_prefect.flows.outreach.flow import outreach_campaign

        started = time.perf_counter()
        preview = outreach_campaign(
            campaign_id="bench-sql-dry-run",
            message_template="Hi {{ first_name }}, your score is {{ score }}",
            audience={"query": "SELECT contact_id, first_name, score FROM audience", "url": url},
            ledger_storage=ledger,
            credentials=creds,
            frequency_cap=FrequencyCap(messages=2, hours=24),
            dry_run=True,
        )
        elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = preview.model_dump(exclude={"samples"})  # type: ignore[union-attr]
    print(json.dumps({"seconds": elapsed, "rss_mb": rss, **figures}))


def _sql_audience(home: Path, rows: int) -> tuple[str, str]:
    """A DuckDB table of ``rows`` audience rows and a ledger with 1,000 opt-outs (250 of them
    audience contacts, by id; 750 strangers)."""
    import duckdb

    sys.path.insert(0, str(REPO))
    from autotalk_prefect.ledger.optouts import Identity, OptOutList

    path = home / "audience.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE TABLE audience AS SELECT 'contact-' || range AS contact_id, "
            "'Name' || range AS first_name, (range % 100) / 100.0 AS score "
            f"FROM range({rows})"
        )
    ledger = f"sqlite:///{home / 'ledger.sqlite3'}"
    step = max(1, rows // 250)
    entries = [(Identity.of(f"contact-{n * step}"), "bench", "bench") for n in range(250)]
    entries += [(Identity.of(f"stranger-{n}"), "bench", "bench") for n in range(750)]
    OptOutList(ledger).add_many(entries)
    return f"duckdb:///{path}", ledger


def _run_sql(sizes: list[int]) -> None:
    print(f"{'SQL rows':>9} {'seconds':>8} {'rows/s':>8} {'peak RSS MB':>12}  counts")
    sandbox, root = start_sandbox(KEY, 25)
    try:
        for size in sizes:
            home = Path(tempfile.mkdtemp(prefix="bench-dry-run-sql-"))
            url, ledger = _sql_audience(home, size)
            command = [sys.executable, __file__, "--child", "--root", root, "--ledger", ledger,
                       "--url", url]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"the dry run failed:\n{done.stderr[-3000:]}")
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            assert figures["audience"] == size, figures
            counts = {k: figures[k] for k in ("would_send", "opted_out", "frequency_cap")}
            print(
                f"{size:>9} {figures['seconds']:>8.1f} {size / figures['seconds']:>8.0f} "
                f"{figures['rss_mb']:>12.0f}  {counts}",
                flush=True,
            )
        _assert_nothing_sent(root)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


def _assert_nothing_sent(root: str) -> None:
    """The sandbox's own message log: a dry run must have sent nothing."""
    sent = httpx.get(f"{root}/_sandbox/messages", timeout=60).json()
    count = len(sent["data"] if isinstance(sent, dict) else sent)
    assert count == 0, f"a dry run sent {count} messages"


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
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--sql", action="store_true", help="The audience is a SQL query.")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--root")
    parser.add_argument("--ledger")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        if args.url:
            _sql_child(args.root, args.ledger, args.url)
        else:
            _child(args.root, args.ledger)
        return
    if args.sql:
        _run_sql(args.sizes or [10_000, 1_000_000])
        return
    args.sizes = args.sizes or [100_000, 1_000_000]
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
            _assert_nothing_sent(root)
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
