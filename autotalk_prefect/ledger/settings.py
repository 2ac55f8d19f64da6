"""Where the ledger lives when no ``ledger_storage`` is given: ``AUTOTALK_LEDGER_URL``, from the
environment or a ``.env`` file (as the client's ``AUTOTALK_*`` settings are read)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LedgerSettings"]


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
