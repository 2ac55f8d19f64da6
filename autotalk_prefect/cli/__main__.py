"""``python -m autotalk_prefect.cli``: the ``autotalk-prefect`` command without its script."""

from __future__ import annotations

from autotalk_prefect.cli.main import app

app()
