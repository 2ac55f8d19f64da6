"""One wording for "that Dynadata type does not exist", naming the types that do."""

from __future__ import annotations

from collections.abc import Iterable


def unknown_type_error(parameter: str, name: str, known: Iterable[str], outcome: str) -> ValueError:
    """The error for a ``parameter`` naming type ``name`` that is not among ``known``."""
    listed = ", ".join(sorted(known)) or "none"
    return ValueError(
        f"{parameter} {name!r} does not exist in this company (known types: {listed}): {outcome}"
    )
