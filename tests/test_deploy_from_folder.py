"""``cd deployments && prefect deploy --all`` works as well as the root form the README shows.

Entrypoints in ``deployments/prefect.yaml`` are ``flows/<file>.py:<flow>``, relative to where
``prefect deploy`` runs; ``deployments/flows`` links to ``../flows`` so they resolve from either
directory. Checked against a real ``prefect server start``: every deployment is created, records
``deployments/`` as its working directory, and a fresh process there (as a process worker would
be) loads each entrypoint.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.prefect_processes import (
    REPO,
    clean_env,
    deployments_layout_copy,
    prefect_server,
    working_directory_pull_steps,
)
from tests.test_deployments_yaml import DEPLOYMENTS

PREFECT = [sys.executable, "-m", "prefect"]
LOAD_EACH = """
import json, sys
from prefect.flows import load_flow_from_entrypoint
print(json.dumps({e: load_flow_from_entrypoint(e).name for e in sys.argv[1:]}))
"""


def _declared() -> dict[str, str]:
    """Deployment name -> entrypoint, as deployments/prefect.yaml declares them."""
    return {d["name"]: d["entrypoint"] for d in DEPLOYMENTS}


def test_the_flows_link_points_at_the_flows() -> None:
    link = REPO / "deployments" / "flows"
    assert link.is_symlink() and link.readlink() == Path("../flows")
    files = {Path(e.split(":")[0]).name for e in _declared().values()}
    assert files <= {p.name for p in link.glob("*.py")}


def test_prefect_deploy_all_from_the_deployments_folder(tmp_path: Path) -> None:
    folder = deployments_layout_copy(tmp_path / "project") / "deployments"
    with prefect_server(tmp_path / "server-home") as api:
        env = clean_env(
            PREFECT_API_URL=api,
            PREFECT_HOME=str(tmp_path / "client-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )

        def cli(*args: str) -> None:
            done = subprocess.run(
                [*PREFECT, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"

        cli("work-pool", "create", "autotalk-process", "--type", "process")
        cli("--no-prompt", "deploy", "--all")
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()

    declared = _declared()
    assert {d["name"]: d["entrypoint"] for d in deployments} == declared
    for d in deployments:
        assert d["pull_steps"] == working_directory_pull_steps(folder), d["name"]
    # what a process worker does: start in the recorded directory and load the entrypoint
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_EACH, *declared.values()],
        cwd=folder,
        env=clean_env(PREFECT_HOME=str(tmp_path / "client-home")),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert names == {e: _flow_name(e) for e in declared.values()}


def _flow_name(entrypoint: str) -> str:
    """The name of the flow an entrypoint names, imported from this checkout."""
    path, attribute = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return str(getattr(module, attribute).name)
