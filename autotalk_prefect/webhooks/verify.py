"""Who may deliver an event: the shared secret and the optional HMAC signature.

Pure functions over bytes (no HTTP here), every comparison in constant time. A refusal is a
short reason that never contains the secret, the expected signature or the presented one.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_PREFIX = "sha256="
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


def header_bytes(value: str | None) -> bytes | None:
    """A header as the raw bytes that came over the wire (ASGI servers decode latin-1)."""
    if value is None:
        return None
    return value.encode("latin-1", "replace")


def secret_matches(presented: str | None, secret: bytes) -> bool:
    """True when the presented header equals the secret; constant time in the secret's length."""
    raw = header_bytes(presented)
    if raw is None:
        return False
    return hmac.compare_digest(raw, secret)


def path_secret_matches(presented: str, secret: bytes) -> bool:
    """True when the URL path segment (already percent-decoded) equals the secret; constant time."""
    return hmac.compare_digest(presented.encode("utf-8", "replace"), secret)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``, as docs/contract.md defines."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def signature_problem(
    secret: bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float,
    tolerance_seconds: int,
) -> str | None:
    """Why a signed request is refused, or None when timestamp and signature both hold."""
    if timestamp is None:
        return "the timestamp header is missing"
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        return "the timestamp header is not unix seconds"
    if abs(now - int(timestamp)) > tolerance_seconds:
        return f"the timestamp is more than {tolerance_seconds} s away from the receiver's clock"
    presented = header_bytes(signature)
    if presented is None:
        return "the signature header is missing"
    expected = sign(secret, timestamp, body).encode("ascii")
    if not hmac.compare_digest(presented.lower(), expected):
        return "the signature does not match the body"
    return None
