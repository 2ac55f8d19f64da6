"""AutoTalkSettings: configuration from the environment (``AUTOTALK_*``) or a ``.env`` file.

The fallback when no credentials block is given, so that a flow runs from env alone. Every field
but the key is defined once, in :class:`~autotalk_prefect.api.config.ClientOptions`:
``AUTOTALK_BASE_URL``, ``AUTOTALK_AUTH_SCHEME``, ``AUTOTALK_PAGE_STYLE``, the timeouts, the retry
bounds and ``AUTOTALK_MAX_CONCURRENCY``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autotalk_prefect.api.config import DEFAULT_BASE_URL, ClientOptions

__all__ = ["DEFAULT_BASE_URL", "AutoTalkSettings"]


class AutoTalkSettings(ClientOptions, BaseSettings):
    """Everything the client needs; the key stays a SecretStr from the environment onwards."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTALK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    api_key: SecretStr | None = Field(
        default=None,
        title="API Key",
        description="The AutoTalk API key (sk-...), sent as the auth scheme says.",
    )

    @field_validator("api_key")
    @classmethod
    def _blank_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty ``AUTOTALK_API_KEY`` counts as unset (``from_settings`` then says so)."""
        return value if value is not None and value.get_secret_value().strip() else None
