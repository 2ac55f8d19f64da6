"""How every ``autotalk-prefect`` command group renders its help (one place for all of them)."""

from __future__ import annotations

from typing import Any

import typer
import typer.core

#: plain help (no rich panels): flags without ``<bool>`` labels, defaults wrapped, not cut off
TYPER_OPTIONS: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


def _plain_help_on_older_typer() -> None:
    """Older typer (0.19, beside Prefect 3.4) escapes the ``[env var: ...; default: ...]`` of an
    option's help for rich (``\\[``) whenever rich is installed, even when the help is plain
    (``rich_markup_mode=None``), so ``--help`` printed a literal backslash. Newer typer escapes
    only in rich mode (it reads the mode from the context: ``MARKUP_MODE_KEY``). On the older
    one, with plain help, ``typer.core.HAS_RICH`` decides only that escape: switch it off."""
    if not hasattr(typer.core, "MARKUP_MODE_KEY") and TYPER_OPTIONS["rich_markup_mode"] is None:
        typer.core.HAS_RICH = False  # type: ignore[misc,unused-ignore]


_plain_help_on_older_typer()
