"""Warehouse sync: AutoTalk data into a dlt destination (``flow``; the dlt source in ``source``)."""
