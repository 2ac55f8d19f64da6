"""Deploy ``flows/sync.py:sync_to_warehouse`` on an interval schedule.

Two ways, both from the repository root:

    # serve: this process schedules and runs the syncs itself (no work pool needed)
    python deployments/sync.py serve --every-minutes 60

    # deploy to a work pool; workers pull the code from --source (a git URL or a local path)
    python deployments/sync.py deploy --pool my-pool --source https://github.com/ORG/REPO.git

The AutoTalk key comes from a saved ``AutoTalkCredentials`` block (``--credentials-block``) or
from ``AUTOTALK_API_KEY`` on the worker; warehouse credentials from a Prefect ``Secret`` block
(``--destination-secret``), never from a plain parameter. See docs/sync.md.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from autotalk_prefect.flows.sync.flow import sync_to_warehouse  # noqa: E402

DEPLOYMENT_NAME = "autotalk-sync"
ENTRYPOINT = "flows/sync.py:sync_to_warehouse"


def sync_parameters(
    *,
    destination: str = "duckdb",
    dataset_name: str = "autotalk",
    types: list[str] | None = None,
    destination_secret: str | None = None,
    credentials_block: str | None = None,
) -> dict[str, Any]:
    """The deployment's parameters; a named credentials block is referenced, not copied."""
    params: dict[str, Any] = {"destination": destination, "dataset_name": dataset_name}
    if types is not None:
        params["types"] = types
    if destination_secret is not None:
        params["destination_secret"] = destination_secret
    if credentials_block is not None:
        from autotalk_prefect._compat import block_reference
        from autotalk_prefect.credentials import AutoTalkCredentials

        block = AutoTalkCredentials.load(credentials_block, _sync=True)  # type: ignore[call-arg]
        params["credentials"] = block_reference(block)
    return params


def build_deployment(every_minutes: float = 60, **parameters: Any) -> Any:
    """A served deployment of the sync flow, every ``every_minutes`` minutes."""
    if every_minutes <= 0:
        raise ValueError(f"every_minutes must be positive, got {every_minutes}")
    return sync_to_warehouse.to_deployment(
        name=DEPLOYMENT_NAME,
        interval=timedelta(minutes=every_minutes),
        parameters=sync_parameters(**parameters),
        tags=["autotalk", "warehouse-sync"],
        concurrency_limit=1,  # one writer per pipeline state (and per DuckDB file)
        description="Incremental sync of AutoTalk data into the warehouse (dlt).",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", choices=["serve", "deploy"])
    parser.add_argument("--every-minutes", type=float, default=60)
    parser.add_argument("--destination", default="duckdb")
    parser.add_argument("--dataset-name", default="autotalk")
    parser.add_argument("--types", nargs="*", default=None)
    parser.add_argument("--destination-secret", default=None)
    parser.add_argument("--credentials-block", default=None)
    parser.add_argument("--pool", help="work pool (deploy mode)")
    parser.add_argument("--source", default=str(ROOT), help="git URL or path (deploy mode)")
    args = parser.parse_args(argv)
    parameters = {
        "destination": args.destination,
        "dataset_name": args.dataset_name,
        "types": args.types,
        "destination_secret": args.destination_secret,
        "credentials_block": args.credentials_block,
    }
    if args.mode == "serve":
        from prefect import serve

        serve(build_deployment(args.every_minutes, **parameters))
        return
    if not args.pool:
        parser.error("deploy needs --pool")
    if args.every_minutes <= 0:
        parser.error("--every-minutes must be positive")
    flow = sync_to_warehouse.from_source(source=args.source, entrypoint=ENTRYPOINT)
    flow.deploy(  # type: ignore[union-attr]
        name=DEPLOYMENT_NAME,
        work_pool_name=args.pool,
        interval=timedelta(minutes=args.every_minutes),
        parameters=sync_parameters(**parameters),
        tags=["autotalk", "warehouse-sync"],
        concurrency_limit=1,
    )


if __name__ == "__main__":
    main()
