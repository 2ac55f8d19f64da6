"""``cd deployments && prefect deploy --all`` works as well as the root form the README shows.

Entrypoints in ``deployments/prefect.yaml`` are ``flows/<file>.py:<flow>``, relative to where
``prefect deploy`` runs; ``deployments/flows`` links to ``../flows`` so they resolve from either
directory. ``check_deployed_from_folder`` is run against a real ``prefect server start`` by the
end-to-end stack (``tests/test_e2e.py``, which deploys from ``deployments/`` last): every
deployment is created, records ``deployments/`` as its working directory, and a fresh process
there (as a process worker would be) loads each entrypoint.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.prefect_processes import (
    REPO,
    clean_env,
    working_directory_pull_steps,
)
from tests.test_deployments_yaml import DEPLOYMENTS

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


def check_deployed_from_folder(
    deployments: list[dict[str, Any]], folder: Path, client_home: Path
) -> None:
    """What ``cd deployments && prefect deploy --all`` must have made: every declared deployment,
    ``folder`` recorded as its working directory, and each entrypoint loading in a fresh process
    started there (as a process worker starts one).

    Run by ``tests/test_e2e.py``, whose stack deploys that way against a real
    ``prefect server start`` (one server for every end-to-end check).
    """
    declared = _declared()
    assert {d["name"]: d["entrypoint"] for d in deployments} == declared
    for d in deployments:
        assert d["pull_steps"] == working_directory_pull_steps(folder), d["name"]
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_EACH, *declared.values()],
        cwd=folder,
        env=clean_env(PREFECT_HOME=str(client_home)),
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
