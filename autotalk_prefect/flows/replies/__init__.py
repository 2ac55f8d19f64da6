"""Replies: act once on each inbound customer message (``flow``; the rule table in ``engine``)."""
