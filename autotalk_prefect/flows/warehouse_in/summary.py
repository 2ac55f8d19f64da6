"""What a ``sync_from_warehouse`` run returns (a model of its own, importable without the flow)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from autotalk_prefect.flows.warehouse_in.engine import OUTCOMES, Diff, RowResult

__all__ = ["WarehouseSyncSummary"]


class WarehouseSyncSummary(BaseModel):
    """What a ``sync_from_warehouse`` run did (keys and counts; no row contents but diffs)."""

    dynadata_type: str
    key: str
    dry_run: bool = False
    rows: int = Field(default=0, description="Rows read from the source.")
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    unknown: int = 0
    matched_existing: int | None = Field(
        default=None,
        description="On a first run: items already in AutoTalk matched by key (one paged read).",
    )
    api_calls: dict[str, int] = Field(
        default_factory=dict, description="Calls made to AutoTalk, by kind (schema, list, ...)."
    )
    retries: dict[str, int] = Field(default_factory=dict)
    problems: list[RowResult] = Field(
        default_factory=list, description="The first failed and unknown rows, with the error."
    )
    diffs: list[Diff] = Field(default_factory=list, description="Dry run: sample changes.")
    results_csv: str | None = None
    results_table: str | None = None
    duration_seconds: float = 0.0

    @property
    def writes(self) -> int:
        return self.api_calls.get("create", 0) + self.api_calls.get("update", 0)

    def counts(self) -> dict[str, int]:
        return {o: int(getattr(self, o)) for o in OUTCOMES}
