"""Outreach: a bulk campaign sent once per contact (``flow``), its models and engine (``engine``)."""
