"""Deployment entrypoint ``flows/onboarding.py:onboard_contact``: the package's prebuilt flow, as it ships.

``prefect.yaml`` and ``deployments/serve.py`` point here; the flow itself (its parameters,
models and engine) is ``autotalk_prefect.flows.onboarding``.
"""

from autotalk_prefect.flows.onboarding.flow import onboard_contact

__all__ = ["onboard_contact"]
