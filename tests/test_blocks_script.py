"""blocks/register.py and `autotalk-prefect blocks save`: block documents from the environment."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from autotalk_prefect.cli import app
from autotalk_prefect.credentials import AutoTalkCredentials

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "blocks" / "register.py"
KEY = "sk-blocks-script-31f2e4d5c6b7"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AUTOTALK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("AUTOTALK_API_KEY", KEY)
    monkeypatch.setenv("AUTOTALK_BASE_URL", "http://127.0.0.1:9/v1")
    return monkeypatch


def run_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    out, err = capsys.readouterr()
    assert KEY not in out + err
    return int(exit_info.value.code or 0), out + err


def test_the_script_creates_then_leaves_alone_then_needs_overwrite(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"script-{uuid.uuid4().hex[:8]}"
    assert run_script(env, capsys, "--name", name) == (
        0,
        f"AutoTalkCredentials block {name!r}: created\n",
    )
    assert run_script(env, capsys, "--name", name)[1].endswith(": unchanged\n")

    env.setenv("AUTOTALK_BASE_URL", "http://127.0.0.1:10/v1")
    env.setenv("AUTOTALK_RETRY_ATTEMPTS", "2")
    code, text = run_script(env, capsys, "--name", name)
    assert code == 1 and "--overwrite" in text and name in text
    assert AutoTalkCredentials.load(name).base_url == "http://127.0.0.1:9/v1"  # untouched

    assert run_script(env, capsys, "--name", name, "--overwrite")[1].endswith(": updated\n")
    saved = AutoTalkCredentials.load(name)
    assert (saved.base_url, saved.retry_attempts) == ("http://127.0.0.1:10/v1", 2)
    assert saved.api_key.get_secret_value() == KEY
    assert run_script(env, capsys, "--name", name, "--overwrite")[1].endswith(": unchanged\n")


def test_a_changed_key_counts_as_a_change(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"rotate-{uuid.uuid4().hex[:8]}"
    assert run_script(env, capsys, "--name", name)[0] == 0
    env.setenv("AUTOTALK_API_KEY", KEY + "-rotated")
    assert run_script(env, capsys, "--name", name)[0] == 1
    assert run_script(env, capsys, "--name", name, "--overwrite")[0] == 0
    assert AutoTalkCredentials.load(name).api_key.get_secret_value() == KEY + "-rotated"


def test_the_script_without_a_key_says_what_to_set(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.delenv("AUTOTALK_API_KEY")
    code, text = run_script(env, capsys, "--name", f"nokey-{uuid.uuid4().hex[:8]}")
    assert code == 1 and "AUTOTALK_API_KEY" in text


@pytest.mark.floor
def test_the_cli_command_is_idempotent(env: pytest.MonkeyPatch) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    runner = CliRunner()
    first = runner.invoke(app, ["blocks", "save", "--name", name])
    assert first.exit_code == 0, first.output
    assert first.output.strip().endswith("created")
    second = runner.invoke(app, ["blocks", "save", "--name", name])
    assert second.exit_code == 0 and second.output.strip().endswith("unchanged")
    assert KEY not in first.output + second.output
    assert AutoTalkCredentials.load(name).api_key.get_secret_value() == KEY


def test_the_cli_refuses_a_bad_block_name(env: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["blocks", "save", "--name", "Not A/Slug"])
    assert result.exit_code == 1
    assert "name" in result.output.lower()


@pytest.mark.floor
def test_prefect_block_register_finds_the_block_type() -> None:
    """`prefect block register -m autotalk_prefect` (the package's lazy exports included)."""
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "autotalk_prefect"],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200"},
        cwd=ROOT,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "AutoTalk Credentials" in result.stdout
