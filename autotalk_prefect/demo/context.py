"""What every demo step is handed: where the demo runs, its report, and the prebuilt flows.

Below the steps (``steps.py``) and the event step (``events.py``), which both take it; imported
only after the demo has set Prefect's environment (it imports the flows, hence Prefect).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import autotalk_prefect.flows
from autotalk_prefect.demo.report import DemoReport

__all__ = ["DemoContext"]


@dataclass
class DemoContext:
    """Where the demo runs and what it reports to."""

    work_dir: Path
    report: DemoReport
    run_id: str

    def flow(self, name: str) -> Any:
        """A prebuilt flow, taken from the installed package (as users import it)."""
        return getattr(autotalk_prefect.flows, name)
