"""The README's main job: ``autotalk-prefect demo`` runs clean and every check holds."""

from __future__ import annotations

import os
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
