"""One rate limit across processes: two outreach runs in parallel processes share a Prefect GCL.

A real ``prefect server start`` process (SQLite under a temporary PREFECT_HOME, free port) holds
the global concurrency limit; two campaign processes take their send slots from it. The
sandbox's own per-second request counts (one API key) show the combined rate. A run without the
limit, same sandbox and key, shows the counts are not low on their own.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.outreach.engine import Audience
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.ratelimit import describe_rate_limit, ensure_rate_limit
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle, run_sandbox
from tests.prefect_processes import prefect_server

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-scale-rl-0b7e"
TEXT = "Spring offer: 20% off this week."  # no fields: every request is a send
RATE = 10  # requests per second for everyone together
BURST = 5
SLACK = 5  # scheduling jitter between taking a slot and the request arriving (busy machine)
PER_RUN = 40
LIMIT_NAME = "autotalk-api-test"

CHILD = """
import json, sys
from autotalk_prefect.flows.outreach.engine import Audience
from autotalk_prefect.flows.outreach.flow import outreach_campaign
args = json.loads(sys.argv[1])


def barrier(flow, flow_run, state):
    # the flow run is running (created, started): wait here until the parent starts both at once
    print("READY", flush=True)
    sys.stdin.readline()


summary = outreach_campaign.with_options(on_running=[barrier])(
    campaign_id=args["campaign_id"],
    message_template=args["text"],
    audience=Audience(contact_ids=args["contacts"]),
    global_rate_limit_name=args["limit"],
    ledger_storage=args["ledger"],
    max_concurrency=8,
)
print("SUMMARY " + summary.model_dump_json())
"""


def _per_second(sandbox: SandboxHandle) -> list[int]:
    keys = sandbox.stats()["keys"]
    assert len(keys) == 1  # the counts below are this key's, and only this test's traffic
    (counts,) = keys.values()
    return list(counts["per_second"].values())


def _campaigns_in_parallel(
    server: str, sandbox: SandboxHandle, ledger: Path, halves: list[list[str]]
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "PREFECT_API_URL": server,
        "PREFECT_HOME": str(ledger / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "AUTOTALK_API_KEY": KEY,
        "AUTOTALK_BASE_URL": sandbox.base_url,
    }
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                json.dumps(
                    {
                        "campaign_id": f"shared-limit-{i}",
                        "text": TEXT,
                        "contacts": half,
                        "limit": LIMIT_NAME,
                        "ledger": str(ledger),
                    }
                ),
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for i, half in enumerate(halves)
    ]
    # A barrier: both flow runs are running (imports, flow-run creation done: the slow, uneven
    # part on a busy machine) before either starts sending.
    for process in processes:
        assert process.stdout is not None
        if "READY\n" not in iter(process.stdout.readline, ""):  # stops at READY, or at the end
            for each in processes:
                each.kill()
            raise AssertionError(f"a campaign process died at start: {process.communicate()[1]}")
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    summaries = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=240)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err[-3000:]
        line = next(x for x in out.splitlines() if x.startswith("SUMMARY "))
        summaries.append(json.loads(line.removeprefix("SUMMARY ")))
    return summaries


def test_two_processes_share_one_global_rate_limit(tmp_path: Path) -> None:
    with (
        run_sandbox(api_key=KEY, seed=4, contacts=2 * PER_RUN) as sandbox,
        prefect_server(tmp_path / "server-home") as server,
    ):
        contacts = sandbox.contact_ids()
        halves = [contacts[:PER_RUN], contacts[PER_RUN:]]
        with temporary_settings({PREFECT_API_URL: server}):
            ensure_rate_limit(LIMIT_NAME, requests_per_second=RATE, burst=BURST)
        # The API's own limit, as the real one has: anything over it is answered 429.
        sandbox.set_faults(FaultConfig(rate_limit_rps=RATE + BURST + SLACK))

        summaries = _campaigns_in_parallel(server, sandbox, tmp_path / "ledger", halves)

        limited = _per_second(sandbox)
        sent = [m["contactId"] for m in sandbox.sent_messages()]
        with temporary_settings({PREFECT_API_URL: server}):
            info = describe_rate_limit(LIMIT_NAME)

        # The control: the same sends, same key, without the global limit.
        sandbox.reset()
        sandbox.clear_faults()
        control = outreach_campaign(
            campaign_id="no-limit",
            message_template=TEXT,
            audience=Audience(contact_ids=contacts),
            ledger_storage=str(tmp_path / "ledger"),
            credentials=AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url),
        )
        unlimited = _per_second(sandbox)

    # everyone exactly once, and no 429 (if any came) surfaced as a failure
    assert collections.Counter(sent) == collections.Counter(contacts)
    for summary in summaries:
        assert (summary["sent"], summary["failed"], summary["unknown"]) == (PER_RUN, 0, 0)
    # both campaigns sent at the same time: one's sends come between the other's first and last
    # (A..B..A or more; how finely they interleave depends on the machine's load)
    half_of = {c: i for i, half in enumerate(halves) for c in half}
    switches = sum(half_of[a] != half_of[b] for a, b in itertools.pairwise(sent))
    assert switches >= 2, f"the two runs did not overlap ({switches} switches)"
    assert info is not None and (info.requests_per_second, info.burst) == (RATE, BURST)
    # the combined per-second rate stayed at the limit (plus its burst), across two processes
    assert max(limited) <= RATE + BURST + SLACK, limited
    assert sum(limited) >= 2 * PER_RUN  # every send counted (a 429'd one more than once)
    # ... while the same sends without the limit go well over it
    assert control.sent == 2 * PER_RUN
    assert max(unlimited) > RATE + BURST + SLACK, unlimited
