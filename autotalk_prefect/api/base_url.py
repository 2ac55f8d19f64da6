"""Which base URLs a client accepts: the one check that the configuration and the client share.

It sits below both (``config.py`` refuses a bad ``base_url`` naming the field, ``client.py``
refuses one passed to it directly), so neither imports the other for it.
"""

from __future__ import annotations

import ipaddress
import re

import httpx

__all__ = ["LOOPBACK_NAMES", "check_base_url", "is_loopback"]

LOOPBACK_NAMES = frozenset({"localhost"})
_HOST = re.compile(r"[A-Za-z0-9._:-]+")  # a DNS name, an IPv4 or an (unbracketed) IPv6 address


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``, ``[::1]``).

    Also the sandbox inbox's guard against requests addressed to another host."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: object) -> str:
    """``base_url`` without a trailing slash, after refusing what would be unsafe or wrong."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError(f"base_url must be a non-empty URL string, got {base_url!r}")
    text = base_url.strip()
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url {text!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url {text!r} is not a URL: expected https://host/path "
            "(for example https://api.autotalk.io/v1)"
        )
    host = url.raw_host.decode("ascii", errors="replace")  # IDNA hosts arrive as xn--...
    if not _HOST.fullmatch(host):
        raise ValueError(f"base_url {text!r} is not a URL: {url.host!r} is not a host name")
    if url.userinfo:
        raise ValueError("base_url must not carry credentials (user:password@); use api_key")
    if url.query or url.fragment:
        raise ValueError(f"base_url {text!r} must not have a query or fragment")
    if url.scheme == "http" and not is_loopback(url.host):
        raise ValueError(
            f"refusing plain-http base_url {text!r}: the API key would travel in clear text. "
            "Use https:// (plain http is allowed only on loopback: 127.0.0.1, ::1, localhost)."
        )
    return text.rstrip("/")
