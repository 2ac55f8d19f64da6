"""Deployment entrypoint ``flows/warehouse_in.py:sync_from_warehouse``: the package's prebuilt flow.

``prefect.yaml`` points here; the flow itself (its parameters, engine and state) is
``autotalk_prefect.flows.warehouse_in``.
"""

from autotalk_prefect.flows.warehouse_in.flow import sync_from_warehouse

__all__ = ["sync_from_warehouse"]
