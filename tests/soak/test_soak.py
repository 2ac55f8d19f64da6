"""Short soak (the long one is ``bench/soak.py``): faults, two SIGKILLs, nobody messaged twice."""

from __future__ import annotations

from pathlib import Path

from prefect.settings import PREFECT_API_URL

from autotalk_prefect.sandbox import run_sandbox
from bench.soak import KEY, soak


def test_two_kills_under_faults_leave_everyone_once_or_reported(tmp_path: Path) -> None:
    with run_sandbox(api_key=KEY, contacts=1200, seed=5) as sandbox:
        result = soak(
            sandbox,
            str(PREFECT_API_URL.value()),
            contacts=1200,
            kills=2,
            seed=5,
            ledger=tmp_path / "ledger",
        )
    print("\n".join(result.lines()))
    assert result.kills_done == 2, "the flow finished before it could be killed twice"
    assert result.twice_or_more == []
    assert result.unaccounted == []
    assert result.once + result.unknown_with_one + result.unknown_with_none == 1200
    assert result.once > 1000  # the faults were survivable: nearly everyone got it
    # reconciliation finds every send whose answer was dropped (the sandbox applied them)
    assert result.unknown_after_reconcile <= result.unknown_before_reconcile
    assert result.unknown_with_one == 0
