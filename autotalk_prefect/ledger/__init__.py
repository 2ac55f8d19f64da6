"""The exactly-once ledger: what was sent to whom (``store``), and the per-step markers of single
flow runs built on it (``steps``)."""
