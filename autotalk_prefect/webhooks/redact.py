"""Keep a secret that travels in the URL path (``/autotalk/<secret>/<event>``) out of logs.

A GET delivery's query string is masked too (``/autotalk/<event>?***``): it carries the
workflow's fields (phone numbers, names) and, if a sender misplaces it, the secret, which the
receiver refuses there.

uvicorn's access log prints every request path. The receiver's own log lines use
:func:`redact_path`; :func:`install_access_log_redaction` puts a filter on the
``uvicorn.access`` logger, so the path is masked also when the receiver is mounted in the
user's own app and server (``autotalk-prefect webhooks`` turns uvicorn's access log off and
logs a redacted line per request itself).
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_SECRET_SEGMENT = re.compile(r"(/autotalk/)[^/?#]+(/[^/?#]*)")
_QUERY = re.compile(r"(/autotalk[^?#\s\"]*)\?[^#\s\"]*")


def redact_path(text: str) -> str:
    """``.../autotalk/<anything>/<event>`` with the secret segment replaced by ``***``, and an
    ``/autotalk`` URL's query string by ``?***``."""
    return _QUERY.sub(r"\1?***", _SECRET_SEGMENT.sub(r"\1***\2", text))


class RedactSecretPath(logging.Filter):
    """Masks the secret path segment in every argument and in the message of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_path(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def install_access_log_redaction() -> None:
    """Add the filter to uvicorn's access logger once (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecretPath) for f in logger.filters):
        logger.addFilter(RedactSecretPath())
