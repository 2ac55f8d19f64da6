"""WebhookSettings: the receiver's configuration from ``AUTOTALK_WEBHOOK_*`` (or ``.env``).

The secret is a SecretStr from the environment onwards; it is checked only when an app is
built (``require_secret``), so that a missing secret stops start-up with a clear message
instead of a half-configured receiver that accepts nothing (or, worse, everything).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EVENT_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
"""An AutoTalk event name as it may appear in the URL, the body and the Prefect event name."""

_HEADER_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_FIELD_PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")


class WebhookConfigError(ValueError):
    """The receiver cannot start with this configuration (the message says which setting)."""


class WebhookSettings(BaseSettings):
    """Everything the webhook receiver needs; see docs/webhooks.md for each setting's use."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTALK_WEBHOOK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    secret: SecretStr | None = Field(
        default=None, description="Shared secret every request must carry (required to start)."
    )
    secret_header: str = Field(
        default="x-autotalk-secret", description="Header that carries the shared secret."
    )
    hmac: bool = Field(
        default=False,
        description="Also require an HMAC-SHA256 signature and a fresh timestamp.",
    )
    signature_header: str = Field(
        default="x-autotalk-signature", description="Header with sha256=<hex HMAC>."
    )
    timestamp_header: str = Field(
        default="x-autotalk-timestamp", description="Header with the signing time (unix seconds)."
    )
    tolerance_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="Allowed clock skew for timestamps, and how long event ids are remembered.",
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=64, le=8 * 1024 * 1024, description="Largest body accepted."
    )
    event_field: str | None = Field(
        default=None,
        description="Dotted body field naming the event, for a single-URL setup (POST /autotalk).",
    )
    dedupe_fields: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Comma-separated dotted body fields whose values identify a delivery when the body "
            "has no id (e.g. 'client.phone,message.text,event.date'); without them every "
            "id-less delivery is its own event."
        ),
    )
    event_prefix: str = Field(
        default="autotalk", description="Prefix of the Prefect event name (<prefix>.<event>)."
    )
    replay_cache_size: int = Field(
        default=100_000, ge=1, description="Most event ids remembered for replay protection."
    )
    emit_timeout_seconds: float = Field(
        default=15.0, gt=0, le=300, description="Longest wait for Prefect to confirm an event."
    )
    host: str = Field(default="127.0.0.1", description="Interface the CLI server binds.")
    port: int = Field(default=8787, ge=0, le=65535, description="Port the CLI server binds.")

    @field_validator("secret_header", "signature_header", "timestamp_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        value = value.strip().lower()
        if not _HEADER_NAME_RE.fullmatch(value):
            raise ValueError(f"not a valid HTTP header name: {value!r}")
        return value

    @field_validator("event_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not EVENT_NAME_RE.fullmatch(value):
            raise ValueError(f"must match {EVENT_NAME_RE.pattern}, got {value!r}")
        return value

    @field_validator("event_field")
    @classmethod
    def _field_path(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not _FIELD_PATH_RE.fullmatch(value):
            raise ValueError(f"must be a dotted field path such as 'event', got {value!r}")
        return value

    @field_validator("dedupe_fields", mode="before")
    @classmethod
    def _dedupe_fields(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list | tuple):
            fields = tuple(str(part).strip() for part in value if str(part).strip())
            for field in fields:
                if not _FIELD_PATH_RE.fullmatch(field):
                    raise ValueError(
                        f"each field must be a dotted path such as 'client.phone', got {field!r}"
                    )
            if len(set(fields)) != len(fields):
                raise ValueError(f"a field is named twice in {', '.join(fields)}")
            return fields
        return value

    def require_secret(self) -> bytes:
        """The secret as bytes, or WebhookConfigError (which never quotes the value)."""
        if self.secret is None:
            raise WebhookConfigError(
                "the webhook receiver needs a shared secret: set AUTOTALK_WEBHOOK_SECRET "
                "(or pass secret=... / --secret); it refuses to start without one"
            )
        value = self.secret.get_secret_value()
        if not value:
            raise WebhookConfigError("AUTOTALK_WEBHOOK_SECRET is empty; set a non-empty secret")
        if value != value.strip():
            raise WebhookConfigError(
                "AUTOTALK_WEBHOOK_SECRET starts or ends with whitespace, which HTTP headers "
                "do not preserve; remove it"
            )
        if not value.isascii() or not value.isprintable():
            raise WebhookConfigError(
                "AUTOTALK_WEBHOOK_SECRET must be printable ASCII, so that it survives an "
                "HTTP header unchanged"
            )
        return value.encode("ascii")
