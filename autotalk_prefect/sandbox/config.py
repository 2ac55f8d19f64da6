"""How a sandbox starts: its API key(s), seed, data size and initial faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from autotalk_prefect.sandbox.dialects import get_dialect
from autotalk_prefect.sandbox.faults import FaultConfig
from autotalk_prefect.sandbox.page_styles import get_served_style

DEFAULT_API_KEY = "sk-test"


@dataclass(frozen=True)
class SandboxConfig:
    """Start-up settings of one sandbox (keys are left out of the repr).

    ``extra_api_keys`` are accepted like ``api_key``; ``read_only_api_keys`` may only GET (other
    methods answer 403). ``max_page_size`` is the server-side cap on ``limit``. ``dialect``
    names the wire shapes served (``contract``, today's; the others: sandbox/dialects.py);
    ``paging`` (``None``: the dialect's own) makes every list endpoint page one of the styles of
    sandbox/page_styles.py (``json_link``, ``header_link``, ``cursor``, ``header_cursor``,
    ``offset``, ``page``). ``prefect_api_url`` is where the inbox reads the appointments'
    reminder runs (``None``: ``PREFECT_API_URL`` from the environment, if set).
    """

    api_key: str = field(default=DEFAULT_API_KEY, repr=False)
    seed: int = 0
    contacts: int = 25
    faults: FaultConfig | None = None
    extra_api_keys: tuple[str, ...] = field(default=(), repr=False)
    read_only_api_keys: tuple[str, ...] = field(default=(), repr=False)
    max_page_size: int = 100
    dialect: str = "contract"
    paging: str | None = None
    prefect_api_url: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise ValueError("api_key must be a non-empty string")
        if self.contacts < 0:
            raise ValueError(f"contacts must be >= 0, got {self.contacts}")
        if self.max_page_size < 1:
            raise ValueError(f"max_page_size must be >= 1, got {self.max_page_size}")
        get_dialect(self.dialect)
        if self.paging is not None:
            get_served_style(self.paging)
