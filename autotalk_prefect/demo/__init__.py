"""The demo behind ``autotalk-prefect demo`` (the command is ``cli/demo.py``): the whole
integration on one machine, verified as it runs.

Against the built-in sandbox (the default) and Prefect's ephemeral API: save a credentials block
through ``blocks/``, onboard a new client, run an outreach campaign under injected 429s and 503s,
re-run it to show nobody gets a second message, then let a customer's reply travel webhook ->
receiver -> Prefect event -> automation -> the reply-handling deployment. Exit code 0 only if
every check held.
"""

from __future__ import annotations
