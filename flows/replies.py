"""Deployment entrypoint ``flows/replies.py:handle_reply``: the package's prebuilt flow, as it ships.

``prefect.yaml`` and ``deployments/serve.py`` point here; the flow itself (its parameters,
models and engine) is ``autotalk_prefect.flows.replies``.
"""

from autotalk_prefect.flows.replies.flow import handle_reply

__all__ = ["handle_reply"]
