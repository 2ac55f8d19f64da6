"""Claims left by a flow run that Prefect says stopped: unknown at once, not "claimed" for 15 min.

A claim carries the Prefect flow run that made it (``flow_run_id``). When a later run finds a
``pending`` claim of another run, it asks Prefect (once per flow run) for that run's state: if
it is Crashed, Cancelled or Failed, the run is over and cannot resolve its claims itself, so
they become ``unknown`` right away (``ClaimLedger.mark_stopped``) and the finding run reconciles
them against AutoTalk's conversations like any unknown outcome. A claim of a run that is still
running (or that Prefect does not know) waits out the stale-claim lease as before.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

__all__ = ["STOPPED_STATES", "FlowRunStates", "read_state_type"]

#: final states of a flow run that can no longer resolve its claims
STOPPED_STATES = frozenset({"CRASHED", "CANCELLED", "FAILED"})


def read_state_type(flow_run_id: str) -> str | None:
    """The state type of ``flow_run_id`` in the Prefect API (``None``: unknown id or no API)."""
    from prefect.client.orchestration import get_client

    try:
        run_uuid = UUID(flow_run_id)
    except ValueError:
        return None
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_uuid).state
    except Exception:  # not found, or the API is unreachable: keep waiting out the lease
        return None
    return state.type.value if state is not None else None


class FlowRunStates:
    """Whether a claim's flow run stopped, asked once per flow run."""

    def __init__(self, read: Callable[[str], str | None] = read_state_type) -> None:
        self._read = read
        self._known: dict[str, str | None] = {}

    def stopped(self, flow_run_id: str | None) -> str | None:
        """The stopped state (``CRASHED``...) of ``flow_run_id``, or ``None`` if it is not."""
        if not flow_run_id:
            return None
        if flow_run_id not in self._known:
            state = self._read(flow_run_id)
            self._known[flow_run_id] = state if state in STOPPED_STATES else None
        return self._known[flow_run_id]
