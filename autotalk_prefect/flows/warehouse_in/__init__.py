"""``sync_from_warehouse``: warehouse rows -> Dynadata upserts (source, mapping, state, engine, results)."""
