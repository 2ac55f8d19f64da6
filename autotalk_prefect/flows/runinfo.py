"""How a run reads in the Prefect UI: its name, its tags, and the event it emits when done.

Prefect names a run from a template or callable at its start; what is known only later (the
reply rule that matched) and the tags (Prefect's ``@flow`` takes none) are set through the
client. None of it may fail a run: a label that cannot be written is logged and skipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from prefect.events import emit_event

_logger = logging.getLogger("autotalk_prefect.flows")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: every run of a prebuilt flow carries this tag
TAG = "autotalk"


def slug(value: object, limit: int = 60) -> str:
    """``value`` as a run-name part: letters, digits, '.', '_', '-' only."""
    return _UNSAFE.sub("-", str(value)).strip("-")[:limit] or "-"


def artifact_key(*parts: object) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from ``parts``."""
    text = "-".join(str(p) for p in parts).lower()
    return "-".join("".join(c if c.isalnum() else "-" for c in text).split("-"))[:100].strip("-")


def run_parameters() -> dict[str, Any]:
    """The current flow run's parameters (empty outside a run)."""
    from prefect.runtime import flow_run

    try:
        return dict(flow_run.parameters or {})
    except Exception:  # outside a run, or the runtime cannot tell
        return {}


def label_run(*, tags: Iterable[str], name: str | None = None) -> None:
    """Add ``tags`` (and the ``autotalk`` tag) to the current flow run; rename it if ``name``."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run = context.flow_run
    wanted = sorted({*run.tags, TAG, *(t for t in tags if t)})
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, name=name, tags=wanted)
        run.tags = wanted
        if name:
            run.name = name
    except Exception as exc:  # labels are cosmetic: never fail the run for one
        _logger.info("could not label flow run %s: %s", run.id, exc)


def resource(kind: str, identifier: str, name: str | None = None) -> dict[str, str]:
    """A Prefect event resource ``autotalk.<kind>.<id>`` with its display name."""
    return {
        "prefect.resource.id": f"autotalk.{kind}.{identifier}",
        "prefect.resource.name": name or identifier,
        "prefect.resource.role": kind,
    }


def emit_completed(
    event: str,
    kind: str,
    identifier: str,
    *,
    name: str | None = None,
    payload: Mapping[str, Any],
    related: Iterable[Mapping[str, str]] = (),
) -> None:
    """Emit ``event`` (``autotalk.campaign.completed``) about ``autotalk.<kind>.<identifier>``."""
    main = resource(kind, identifier, name)
    main.pop("prefect.resource.role")
    try:
        emit_event(
            event=event,
            resource=main,
            related=[dict(r) for r in related],
            payload=dict(payload),
        )
    except Exception as exc:  # an event that cannot be sent must not fail finished work
        _logger.info("could not emit %s: %s", event, exc)


__all__ = [
    "TAG",
    "artifact_key",
    "emit_completed",
    "label_run",
    "resource",
    "run_parameters",
    "slug",
]
