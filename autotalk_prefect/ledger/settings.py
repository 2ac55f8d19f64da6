"""The ledger's settings, from the environment or a ``.env`` file (as the client's
``AUTOTALK_*`` settings are read): where it lives when no ``ledger_storage`` is given
(``AUTOTALK_LEDGER_URL``), and the consent defaults (the frequency cap, the phone region)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConsentSettings", "FrequencyCap", "LedgerSettings"]


class LedgerSettings(BaseSettings):
    """The ledger's one setting; a SecretStr, since a PostgreSQL URL carries its password."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTALK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    ledger_url: SecretStr | None = Field(
        default=None,
        description="A SQLAlchemy URL, a directory, or secret/<name> (a Prefect Secret block).",
    )

    def url_text(self) -> str:
        """The setting as text ("" when unset or blank)."""
        return self.ledger_url.get_secret_value().strip() if self.ledger_url is not None else ""


class FrequencyCap(BaseModel):
    """At most ``messages`` campaign messages to one contact in any ``hours``-hour window."""

    messages: int = Field(ge=1, le=10_000, description="Messages allowed per window.")
    hours: float = Field(gt=0, le=24 * 366, description="The window's length, in hours.")

    def text(self) -> str:
        return f"{self.messages} per {self.hours:g} h"


class ConsentSettings(BaseSettings):
    """``AUTOTALK_FREQUENCY_CAP`` (JSON: ``{"messages": 2, "hours": 24}``), the cap a campaign
    gets when it sets none, and ``AUTOTALK_PHONE_REGION`` (e.g. ``ES``), the region national
    phone numbers are read in."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTALK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    frequency_cap: FrequencyCap | None = Field(
        default=None, description="The default cap of every outreach campaign."
    )
    phone_region: str | None = Field(
        default=None, min_length=2, max_length=2, description="ISO 3166 region, e.g. 'US'."
    )
