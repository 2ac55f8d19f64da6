"""The README's main job: ``autotalk-prefect demo`` runs clean and every check holds."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).parent / "autotalk-prefect"


def _clean_environment(tmp_path: Path) -> dict[str, str]:
    """The user's environment, minus this test session's Prefect and AutoTalk settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AUTOTALK_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["COLUMNS"] = "120"
    return env


def test_demo_runs_clean_and_every_check_holds(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CLI), "demo", "--contacts", "40"],
        cwd=tmp_path,  # any directory: the flows come from the installed package
        env=_clean_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=420,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "Every check held." in output
    assert "FAIL" not in output
    assert "Traceback" not in output, output[-6000:]
    for step in ("onboarding", "outreach", "events"):
        assert step in output
    # What the Prefect UI shows afterwards (the demo's own database): every run and task run
    # ended as designed. The reply run in particular stays Completed: the runner is stopped
    # only after the run's process exited (it used to be Cancelled, "Runner is shutting down").
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        runs = db.execute("SELECT name, state_type, tags FROM flow_run").fetchall()
        tasks = db.execute("SELECT name, state_type FROM task_run").fetchall()
        keys = db.execute("SELECT key, description, type FROM artifact").fetchall()
    assert runs and all(state == "COMPLETED" for _, state, _ in runs), runs
    assert all(state == "COMPLETED" for _, state in tasks), [
        t for t in tasks if t[1] != "COMPLETED"
    ]
    names = {name for name, _, _ in runs}
    assert any(n.startswith("reply-") for n in names), names
    assert any(n.startswith("outreach-winter-offer-") for n in names), names
    assert any(n.startswith("onboard-clients-ana-demo") for n in names), names
    assert all("autotalk" in tags for _, _, tags in runs), runs
    assert all(key and description for key, description, _ in keys), keys
