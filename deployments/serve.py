"""The deployments of ``deployments/prefect.yaml`` for ``flow.serve`` users: one process schedules,
listens for the ``autotalk.*`` event triggers and runs the flows itself (no work pool).

    python deployments/serve.py [--credentials-block autotalk]

With ``--credentials-block`` the saved ``AutoTalkCredentials`` block is passed to every flow as a
block reference (the key stays in the block); without it, the flows read ``AUTOTALK_API_KEY``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from prefect import serve  # noqa: E402
from prefect.client.schemas.schedules import construct_schedule  # noqa: E402
from prefect.events import DeploymentEventTrigger  # noqa: E402
from prefect.flows import load_flow_from_entrypoint  # noqa: E402

PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"


def runner_deployments(credentials_block: str | None = None) -> list[Any]:
    """One RunnerDeployment per entry of prefect.yaml (same names, schedules and triggers)."""
    credentials: dict[str, Any] = {}
    if credentials_block:
        from autotalk_prefect._compat import block_reference
        from autotalk_prefect.credentials import AutoTalkCredentials

        block = AutoTalkCredentials.load(credentials_block)
        credentials = {"credentials": block_reference(block)}
    built = []
    for spec in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]))
        schedules = [
            construct_schedule(
                cron=s.get("cron"), interval=s.get("interval"), timezone=s.get("timezone")
            )
            for s in spec.get("schedules", [])
        ]
        triggers = [
            DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"})
            for t in spec.get("triggers", [])
        ]
        built.append(
            flow.to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters={**spec.get("parameters", {}), **credentials},
                schedules=schedules or None,
                triggers=triggers or None,
                concurrency_limit=spec.get("concurrency_limit"),
            )
        )
    return built


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials-block", help="A saved AutoTalkCredentials block's name.")
    args = parser.parse_args(argv)
    serve(*runner_deployments(args.credentials_block))


if __name__ == "__main__":
    main()
