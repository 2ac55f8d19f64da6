"""Deployment entrypoint ``flows/sync.py:sync_to_warehouse``: the package's prebuilt flow, as it ships.

``prefect.yaml`` and ``deployments/serve.py`` point here; the flow itself (its parameters,
models and engine) is ``autotalk_prefect.flows.sync``.
"""

from autotalk_prefect.flows.sync.flow import sync_to_warehouse

__all__ = ["sync_to_warehouse"]

if __name__ == "__main__":  # `python flows/sync.py`: one sync with the defaults
    print(sync_to_warehouse().model_dump_json(indent=2))
