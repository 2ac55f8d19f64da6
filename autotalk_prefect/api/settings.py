"""AutoTalkSettings: configuration from the environment (``AUTOTALK_*``) or a ``.env`` file.

The fallback when no credentials block is given, so that a flow runs from env alone.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BASE_URL = "https://api.autotalk.io/v1"


class AutoTalkSettings(BaseSettings):
    """Everything the client needs; the key stays a SecretStr from the environment onwards."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTALK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    api_key: SecretStr | None = Field(default=None, description="The AutoTalk API key (sk-...).")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="The AutoTalk API base URL.")
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for an answer.")
    retry_attempts: int = Field(
        default=5, ge=1, description="Attempts per call, the first included."
    )
    retry_max_seconds: float = Field(
        default=60.0, gt=0, description="Total seconds one call may spend retrying."
    )
    retry_after_cap: float = Field(
        default=30.0, gt=0, description="Longest Retry-After wait honoured, in seconds."
    )
    max_concurrency: int = Field(
        default=16, ge=1, description="Concurrent requests in bulk work (and pool size)."
    )

    @field_validator("api_key")
    @classmethod
    def _blank_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty ``AUTOTALK_API_KEY`` counts as unset (``from_settings`` then says so)."""
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("base_url", mode="before")
    @classmethod
    def _check_base_url(cls, value: object) -> str:
        """Refused here, naming ``base_url``, rather than at the first request."""
        from autotalk_prefect.api.client import check_base_url

        return check_base_url(value)
