"""AutoTalkCredentials: the Prefect block that stores an AutoTalk API key and client settings.

Tasks take ``credentials: AutoTalkCredentials | None``; ``None`` falls back to
:class:`~autotalk_prefect.api.settings.AutoTalkSettings` (``AUTOTALK_*`` environment or ``.env``),
so a flow runs from a saved block or from the environment alone. The key stays a ``SecretStr``
from the block into the client's request header: repr, logs and the block document's display
only ever show ``**********``.
"""

from __future__ import annotations

import enum
from typing import Any, cast

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr, field_validator

from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.config import ClientOptions
from autotalk_prefect.api.settings import AutoTalkSettings

__all__ = [
    "AutoTalkCredentials",
    "MissingCredentialsError",
    "SaveOutcome",
    "resolve_credentials",
    "save_credentials_block",
]


class MissingCredentialsError(ValueError):
    """No block was passed and the environment holds no API key."""


MISSING_KEY_MESSAGE = (
    "No AutoTalk API key: set AUTOTALK_API_KEY (in the environment or a .env file) or pass "
    'credentials=AutoTalkCredentials.load("BLOCK_NAME").'
)


class AutoTalkCredentials(CredentialsBlock, ClientOptions):
    """Credentials and connection settings for the AutoTalk customer-messaging API.

    Example:
        Load a saved block and send a message:
        ```python
        from autotalk_prefect import AutoTalkCredentials

        autotalk_credentials = AutoTalkCredentials.load("BLOCK_NAME")
        with autotalk_credentials.get_client() as client:
            client.send_message("CONTACT_ID", "Hello from Prefect!")
        ```
    """

    _block_type_name = "AutoTalk Credentials"
    _block_type_slug = "autotalk-credentials"
    _logo_url = "https://autotalk.io/favicon.png"  # type: ignore[assignment]
    _documentation_url = "https://docs.autotalk.io/channels/api-reference"  # type: ignore[assignment]
    _description = (
        "Stores an AutoTalk API key and the client's connection, auth, paging, timeout and "
        "retry settings."
    )

    api_key: SecretStr = Field(
        default=...,
        title="API Key",
        description=(
            "The AutoTalk API key (sk-...), sent in the x-api-key header or as a Bearer token "
            "(see auth scheme)."
        ),
    )
    # base_url, auth_scheme, page_style, the timeouts, retry bounds and max_concurrency come
    # from ClientOptions: defined once for the block, the settings and the clients.

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("api_key must not be empty")
        return value

    # ---- building clients ---------------------------------------------------------------------

    def get_client(self, **overrides: Any) -> AutoTalkClient:
        """A sync client (use it as a context manager so its connection pool is closed).

        ``overrides`` go to the client constructor (``transport``, ``headers``, ...).
        """
        return AutoTalkClient(self.api_key, **self.client_kwargs(**overrides))

    def get_async_client(self, **overrides: Any) -> AsyncAutoTalkClient:
        """An async client (``async with credentials.get_async_client() as client: ...``)."""
        return AsyncAutoTalkClient(self.api_key, **self.client_kwargs(**overrides))

    @classmethod
    def from_settings(cls, settings: AutoTalkSettings | None = None) -> AutoTalkCredentials:
        """A block built from ``AutoTalkSettings`` (environment / ``.env`` when not given).

        Raises:
            MissingCredentialsError: the settings hold no API key.
        """
        settings = settings if settings is not None else AutoTalkSettings()
        if settings.api_key is None or not settings.api_key.get_secret_value():
            raise MissingCredentialsError(MISSING_KEY_MESSAGE)
        return cls(api_key=settings.api_key, **settings.options())

    def same_values(self, other: AutoTalkCredentials) -> bool:
        """Whether both blocks hold the same key and settings (secrets compared by value)."""
        return _comparable(self) == _comparable(other)


def _comparable(block: AutoTalkCredentials) -> dict[str, Any]:
    values = {name: getattr(block, name) for name in AutoTalkCredentials.model_fields}
    values["api_key"] = block.api_key.get_secret_value()
    return values


def resolve_credentials(credentials: AutoTalkCredentials | None) -> AutoTalkCredentials:
    """The block a task should use: the one given, else one built from the environment.

    Raises:
        MissingCredentialsError: no block was given and ``AUTOTALK_API_KEY`` is not set.
        TypeError: ``credentials`` is something other than an ``AutoTalkCredentials`` block.
    """
    if credentials is None:
        return AutoTalkCredentials.from_settings()
    if not isinstance(credentials, AutoTalkCredentials):
        raise TypeError(
            "credentials must be an AutoTalkCredentials block or None, got "
            f"{type(credentials).__name__}"
        )
    return credentials


# ---- block documents as code -------------------------------------------------------------------


class SaveOutcome(str, enum.Enum):
    """What :func:`save_credentials_block` did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def save_credentials_block(
    name: str,
    *,
    overwrite: bool = False,
    settings: AutoTalkSettings | None = None,
) -> SaveOutcome:
    """Save the environment's settings as the ``AutoTalkCredentials`` document ``name``.

    Idempotent: registers the block type, creates the document if missing, leaves it alone if
    it already holds the same values, and replaces it only when ``overwrite`` is true.

    Raises:
        MissingCredentialsError: the settings hold no API key.
        ValueError: the document exists with other values and ``overwrite`` is false.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    block = AutoTalkCredentials.from_settings(settings)
    AutoTalkCredentials.register_type_and_schema(_sync=True)  # type: ignore[call-arg]
    with get_client(sync_client=True) as client:
        try:
            client.read_block_document_by_name(
                name, block_type_slug=AutoTalkCredentials.get_block_type_slug()
            )
        except ObjectNotFound:
            existing: AutoTalkCredentials | None = None
        else:
            loaded = AutoTalkCredentials.load(name, _sync=True)  # type: ignore[call-arg]
            existing = cast(AutoTalkCredentials, loaded)
    if existing is None:
        block.save(name, _sync=True)  # type: ignore[call-arg]
        return SaveOutcome.CREATED
    if existing.same_values(block):
        return SaveOutcome.UNCHANGED
    if not overwrite:
        raise ValueError(
            f"An AutoTalkCredentials block named {name!r} already exists with other values; "
            "pass overwrite=True (--overwrite) to replace it."
        )
    block.save(name, overwrite=True, _sync=True)  # type: ignore[call-arg]
    return SaveOutcome.UPDATED
