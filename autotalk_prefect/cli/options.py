"""How every ``autotalk-prefect`` command group renders its help (one place for all of them)."""

from __future__ import annotations

from typing import Any

#: plain help (no rich panels): flags without ``<bool>`` labels, defaults wrapped, not cut off
TYPER_OPTIONS: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
