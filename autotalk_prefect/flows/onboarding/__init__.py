"""Onboarding: create a record, welcome the contact, log the exchange (``flow``; pure parts in
``engine``)."""
