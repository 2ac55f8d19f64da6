"""What a user installs is the product: the built wheel alone runs the README's main job.

The wheel is built from this checkout, installed (with its dependencies, no dev tools) into a
fresh virtual environment, and used from an empty directory: the four prebuilt flows import
from the package, and ``autotalk-prefect demo`` holds every check. Nothing of the repository
(``flows/``, ``blocks/``) is on the path.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")

pytestmark = pytest.mark.skipif(UV is None, reason="needs uv (make install puts it in .venv)")


def _clean_environment(home: Path) -> dict[str, str]:
    """The user's environment, minus this test session's Prefect and AutoTalk settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AUTOTALK_"))}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env["PREFECT_HOME"] = str(home / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["COLUMNS"] = "120"
    return env


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, a fresh venv's bin directory with only that wheel and its dependencies)."""
    assert UV is not None
    work = tmp_path_factory.mktemp("wheel")
    env = _clean_environment(work)
    _run(
        [UV, "build", "--wheel", "--out-dir", str(work / "dist"), str(REPO)],
        cwd=work,
        env=env,
        timeout=300,
    )
    (wheel,) = (work / "dist").glob("autotalk_prefect-*.whl")
    venv = work / "venv"
    _run(
        [UV, "venv", "--quiet", "--python", sys.executable, str(venv)],
        cwd=work,
        env=env,
        timeout=120,
    )
    python = venv / "bin" / "python"
    _run(
        [UV, "pip", "install", "--quiet", "--python", str(python), str(wheel)],
        cwd=work,
        env=env,
        timeout=600,
    )
    return wheel, venv / "bin"


def test_the_wheel_ships_the_flows_the_contract_and_the_types(
    installed_wheel: tuple[Path, Path],
) -> None:
    wheel, _ = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "autotalk_prefect/py.typed",
        "autotalk_prefect/api/openapi.yaml",
        "autotalk_prefect/flows/__init__.py",
        "autotalk_prefect/flows/outreach/flow.py",
        "autotalk_prefect/flows/onboarding/flow.py",
        "autotalk_prefect/flows/replies/flow.py",
        "autotalk_prefect/flows/sync/flow.py",
    ):
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "flows/", "bench/")) for n in names)


def test_in_an_empty_directory_the_flows_import_and_the_demo_holds_every_check(
    installed_wheel: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bin_dir = installed_wheel
    env = _clean_environment(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    imported = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "from autotalk_prefect.flows import onboard_contact, outreach_campaign, "
            "handle_reply, sync_to_warehouse\n"
            "print(*(f.name for f in (onboard_contact, outreach_campaign, handle_reply, "
            "sync_to_warehouse)))",
        ],
        cwd=empty,
        env=env,
        timeout=120,
    )
    assert imported.split() == [
        "autotalk-onboard-contact",
        "autotalk-outreach-campaign",
        "autotalk-handle-reply",
        "autotalk-sync-to-warehouse",
    ]
    output = _run(
        [str(bin_dir / "autotalk-prefect"), "demo", "--contacts", "40"],
        cwd=empty,
        env=env,
        timeout=420,
    )
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
