"""Every ``autotalk-prefect`` command, in one package at the top of the layers.

``main`` builds the typer app from one module per command group (``sandbox``, ``webhooks``,
``demo``, ``doctor``, ``consent``); every command fails through ``errors``: one line on stderr,
exit 2 for input that cannot work (:class:`~autotalk_prefect.cli.errors.InputError`), exit 1
for anything else.
"""

from __future__ import annotations

from autotalk_prefect.cli.main import app

__all__ = ["app"]
