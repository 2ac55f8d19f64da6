"""The exactly-once ledger: THE outcome rule (``outcomes``), the claim store in a database
(``store``), the once-per-key helper of single-run flows (``once``), and reconciliation of
unknown outcomes (``reconcile``)."""
