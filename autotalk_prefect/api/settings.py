"""AutoTalkSettings: configuration from the environment (``AUTOTALK_*``) or a ``.env`` file.

The fallback when no credentials block is given, so that a flow runs from env alone. Every field
but the key is defined once, in :class:`~autotalk_prefect.api.config.ClientOptions`:
``AUTOTALK_BASE_URL``, ``AUTOTALK_AUTH_SCHEME``, ``AUTOTALK_PAGING``, the timeouts, the retry
bounds and ``AUTOTALK_MAX_CONCURRENCY``. ``AUTOTALK_PAGE_STYLE`` is ``AUTOTALK_PAGING``'s older
name (one setting, ``page_style``: ``AUTOTALK_PAGING`` wins when both are set).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autotalk_prefect.api.config import DEFAULT_BASE_URL, DEFAULT_PAGE_STYLE, ClientOptions
from autotalk_prefect.api.paging import PageStyle

__all__ = ["DEFAULT_BASE_URL", "AutoTalkSettings"]


class AutoTalkSettings(ClientOptions, BaseSettings):
    """Everything the client needs; the key stays a SecretStr from the environment onwards."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTALK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    page_style: PageStyle = Field(
        default=DEFAULT_PAGE_STYLE,
        validation_alias=AliasChoices(
            "AUTOTALK_PAGING", "AUTOTALK_PAGE_STYLE", "page_style", "paging"
        ),
        title=ClientOptions.model_fields["page_style"].title,
        description=ClientOptions.model_fields["page_style"].description,
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
