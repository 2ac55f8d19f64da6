"""Deployment entrypoint ``flows/outreach.py:outreach_campaign``: the package's prebuilt flow, as it ships.

``prefect.yaml`` and ``deployments/serve.py`` point here; the flow itself (its parameters,
models and engine) is ``autotalk_prefect.flows.outreach``.
"""

from autotalk_prefect.flows.outreach.flow import outreach_campaign

__all__ = ["outreach_campaign"]
