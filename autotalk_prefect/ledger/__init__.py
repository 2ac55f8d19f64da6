"""The exactly-once ledger: the claim store in a database (``store``: one atomic claim per key),
the batched writer of async senders (``writer``: group commit), the once-per-key helper of
single-run flows (``once``), the consent checks made inside a claim (``consent``, ``optouts``),
and reconciliation of unknown outcomes (``reconcile``). Where the ledger lives is ``location``
(URL, Secret block) and ``database`` (engines, transactions).

The outcome rule is NOT here: it lives in ``autotalk_prefect.api.outcomes`` (``from_answer``,
``from_exception``), which also defines the one outcome type, ``OutcomeState``; the ledger stores
that enum as it is (``store.LedgerState`` is the same class) and never re-classifies an answer.
"""
