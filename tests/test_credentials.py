"""AutoTalkCredentials: Prefect's block standards, validation, secrecy, save/load, discovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import ValidationError

from autotalk_prefect import AsyncAutoTalkClient, AutoTalkClient
from autotalk_prefect.api.settings import DEFAULT_BASE_URL, AutoTalkSettings
from autotalk_prefect.credentials import (
    AutoTalkCredentials,
    MissingCredentialsError,
    resolve_credentials,
)

KEY = "sk-credentials-test-9f8e7d6c5b4a"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AUTOTALK_* variables and no .env file in sight."""
    for name in list(os.environ):
        if name.startswith("AUTOTALK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


class TestBlockStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return AutoTalkCredentials

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # The standard version downloads the logo; these tests never leave loopback.
        assert block._logo_url is not None
        assert str(block._logo_url).startswith("https://")


def test_block_type_metadata() -> None:
    assert AutoTalkCredentials.get_block_type_name() == "AutoTalk Credentials"
    assert AutoTalkCredentials.get_block_type_slug() == "autotalk-credentials"
    assert "AutoTalk" in (AutoTalkCredentials.get_description() or "")


def test_defaults_match_the_settings_defaults() -> None:
    block = AutoTalkCredentials(api_key=KEY)
    settings = AutoTalkSettings(api_key=KEY)
    for name in AutoTalkCredentials.model_fields:
        assert getattr(block, name) == getattr(settings, name), name
    assert block.base_url == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    "bad", ["api.autotalk.io/v1", "ftp://api.autotalk.io", "https://", "https://x/v1?k=1", ""]
)
def test_a_bad_base_url_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        AutoTalkCredentials(api_key=KEY, base_url=bad)
    assert "base_url" in str(excinfo.value)
    assert KEY not in str(excinfo.value)


def test_base_url_loses_its_trailing_slash() -> None:
    block = AutoTalkCredentials(api_key=KEY, base_url="http://127.0.0.1:9/v1/")
    assert block.base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("field", ["connect_timeout", "read_timeout", "retry_max_seconds"])
def test_non_positive_numbers_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AutoTalkCredentials(api_key=KEY, **{field: 0})


def test_the_key_never_shows_in_repr_str_or_dumps() -> None:
    block = AutoTalkCredentials(api_key=KEY)
    for text in (
        repr(block),
        str(block),
        block.model_dump_json(),
        json.dumps(block.model_dump(mode="json")),
    ):
        assert KEY not in text
    assert block.api_key.get_secret_value() == KEY


def test_get_client_carries_every_setting() -> None:
    block = AutoTalkCredentials(
        api_key=KEY,
        base_url="http://127.0.0.1:9/v1",
        connect_timeout=1.5,
        read_timeout=7.0,
        retry_attempts=2,
        retry_max_seconds=3.0,
        retry_after_cap=4.0,
        max_concurrency=3,
    )
    with block.get_client() as client:
        assert isinstance(client, AutoTalkClient)
        assert client.base_url.rstrip("/") == "http://127.0.0.1:9/v1"
        assert (client.connect_timeout, client.read_timeout) == (1.5, 7.0)
        assert client.max_connections == 3
        policy = client.retry_policy
        assert (policy.attempts, policy.max_seconds, policy.retry_after_cap) == (2, 3.0, 4.0)
        assert KEY not in repr(client)
    async_client = block.get_async_client()
    assert isinstance(async_client, AsyncAutoTalkClient)
    assert async_client.retry_policy.attempts == 2


def test_from_settings_and_resolve_read_the_environment(
    no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", KEY)
    monkeypatch.setenv("AUTOTALK_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AUTOTALK_RETRY_ATTEMPTS", "2")
    block = resolve_credentials(None)
    assert block.api_key.get_secret_value() == KEY
    assert block.base_url == "http://127.0.0.1:9/v1"
    assert block.retry_attempts == 2


def test_resolve_returns_the_block_given(no_env: None) -> None:
    block = AutoTalkCredentials(api_key=KEY)
    assert resolve_credentials(block) is block


def test_missing_key_says_what_to_set(no_env: None) -> None:
    with pytest.raises(MissingCredentialsError) as excinfo:
        resolve_credentials(None)
    assert "AUTOTALK_API_KEY" in str(excinfo.value)
    assert "AutoTalkCredentials" in str(excinfo.value)


def test_an_empty_key_counts_as_missing(no_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", "")
    with pytest.raises(MissingCredentialsError, match="AUTOTALK_API_KEY"):
        AutoTalkCredentials.from_settings()


def test_resolve_refuses_something_else() -> None:
    with pytest.raises(TypeError, match="AutoTalkCredentials"):
        resolve_credentials({"api_key": KEY})  # type: ignore[arg-type]


@pytest.mark.floor
def test_save_and_load_round_trip_keeps_the_key_out_of_the_document_display() -> None:
    name = f"creds-{uuid.uuid4().hex[:8]}"
    block = AutoTalkCredentials(api_key=KEY, base_url="http://127.0.0.1:9/v1", retry_attempts=3)
    block.save(name)

    loaded = AutoTalkCredentials.load(name)
    assert loaded.api_key.get_secret_value() == KEY
    assert loaded.base_url == "http://127.0.0.1:9/v1"
    assert loaded.retry_attempts == 3
    assert KEY not in repr(loaded)

    with get_client(sync_client=True) as client:
        shown = client.read_block_document_by_name(
            name, block_type_slug="autotalk-credentials", include_secrets=False
        )
    display = shown.model_dump_json()
    assert KEY not in display
    assert shown.data["api_key"] != KEY
    assert shown.data["base_url"] == "http://127.0.0.1:9/v1"
    assert shown.block_schema is not None
    assert "api_key" in shown.block_schema.fields.get("secret_fields", [])


@pytest.mark.floor
def test_the_entry_point_lets_a_fresh_process_load_the_block_by_slug() -> None:
    """Only the `prefect.collections` entry point can tell Prefect where the class lives."""
    name = f"entry-{uuid.uuid4().hex[:8]}"
    AutoTalkCredentials(api_key=KEY, base_url="http://127.0.0.1:9/v1").save(name)
    script = (
        "import sys\n"
        "from prefect.blocks.core import Block\n"
        "assert not any(m.startswith('autotalk_prefect') for m in sys.modules)\n"
        f"block = Block.load('autotalk-credentials/{name}')\n"
        "print(type(block).__module__, type(block).__name__, block.base_url)\n"
        "print(repr(block))\n"
        f"assert block.api_key.get_secret_value() == {KEY!r}\n"
    )
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "autotalk_prefect.credentials AutoTalkCredentials http://127.0.0.1:9/v1" in result.stdout
    assert KEY not in result.stdout + result.stderr
