"""AutoTalkSettings reads the environment and keeps the key secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autotalk_prefect.api.settings import DEFAULT_BASE_URL, AutoTalkSettings


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", "sk-from-env-123")
    monkeypatch.setenv("AUTOTALK_MAX_CONCURRENCY", "4")
    settings = AutoTalkSettings(_env_file=None)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-from-env-123"
    assert settings.max_concurrency == 4
    assert settings.base_url == DEFAULT_BASE_URL
    assert "sk-from-env-123" not in repr(settings)
    assert "sk-from-env-123" not in str(settings.model_dump())


def test_rejects_nonsense_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTALK_READ_TIMEOUT", "-1")
    with pytest.raises(ValidationError, match="read_timeout"):
        AutoTalkSettings(_env_file=None)
