"""Every ``autotalk-prefect`` command fails with one line that names what was wrong and what to
do; no traceback unless ``--debug``. Help works with ``-h`` and labels no flag ``<bool>``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from autotalk_prefect.cli import app
from autotalk_prefect.sandbox import SandboxHandle

CLI = Path(sys.executable).parent / "autotalk-prefect"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AUTOTALK_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), COLUMNS="100", **extra)
    return env


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.mark.floor
@pytest.mark.parametrize(
    "command",
    [
        [],
        ["demo"],
        ["sandbox"],
        ["webhooks"],
        ["blocks", "save"],
        ["rate-limit", "set"],
        ["rate-limit", "show"],
    ],
    ids=lambda c: "-".join(c) or "top",
)
def test_help_answers_to_h_and_labels_no_flag_bool(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "<bool>" not in result.output


@pytest.mark.floor
def test_blocks_save_check_refuses_a_wrong_key_in_one_line(
    autotalk_sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", "sk-wrong")
    monkeypatch.setenv("AUTOTALK_BASE_URL", autotalk_sandbox.base_url)
    name = f"check-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(app, ["blocks", "save", "--name", name, "--check"])
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert "refused the API key" in line and "AUTOTALK_API_KEY" in line and "sk-wrong" not in line
    assert name not in result.output  # nothing was saved


def test_blocks_save_check_names_the_url_it_could_not_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", "sk-any")
    monkeypatch.setenv("AUTOTALK_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AUTOTALK_RETRY_ATTEMPTS", "1")
    result = CliRunner().invoke(app, ["blocks", "save", "--name", "unreached", "--check"])
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert "could not reach AutoTalk at http://127.0.0.1:9/v1" in line


def test_blocks_save_check_accepts_the_right_key(
    autotalk_sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", autotalk_sandbox.api_key)
    monkeypatch.setenv("AUTOTALK_BASE_URL", autotalk_sandbox.base_url)
    name = f"check-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(app, ["blocks", "save", "--name", name, "--check"])
    assert result.exit_code == 0, result.output
    assert "the key works" in result.output and result.output.strip().endswith("created")


def test_demo_with_a_wrong_key_says_so_in_one_line_and_writes_nothing(
    autotalk_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    done = _run(tmp_path, "demo", "--api-key", "sk-wrong", "--base-url", autotalk_sandbox.base_url)
    assert done.returncode == 1, done.stdout + done.stderr
    line = _one_error_line(done.stderr)
    assert "refused the API key" in line and "nothing was saved" in line
    assert "sk-wrong" not in done.stdout + done.stderr
    assert not (tmp_path / ".autotalk" / "demo" / "prefect-home" / "prefect.db").exists()


@pytest.mark.floor
def test_sandbox_on_a_busy_port_says_so_in_one_line(
    autotalk_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    port = str(urlsplit(autotalk_sandbox.base_url).port)
    done = _run(tmp_path, "sandbox", "--port", port)
    assert done.returncode == 1
    line = _one_error_line(done.stderr)
    assert "in use" in line and "--port" in line


def test_rate_limit_show_names_the_prefect_api_it_could_not_use(tmp_path: Path) -> None:
    done = _run(tmp_path, "rate-limit", "show", PREFECT_API_URL="http://127.0.0.1:9/api")
    assert done.returncode == 1
    line = _one_error_line(done.stderr)
    assert "http://127.0.0.1:9/api" in line and "prefect server start" in line


def test_debug_shows_the_traceback(autotalk_sandbox: SandboxHandle, tmp_path: Path) -> None:
    port = str(urlsplit(autotalk_sandbox.base_url).port)
    done = _run(tmp_path, "--debug", "sandbox", "--port", port)
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_troubleshooting_has_a_row_for_each_line_a_user_can_meet() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md").read_text()
    for phrase in (
        "AutoTalk refused the API key",
        "could not reach AutoTalk at",
        "the port is in use",
        "could not use http://",
        "PREFECT_API_URL is not set",
        "No AutoTalk API key",
        "already exists with other values",
        "--debug",
    ):
        assert phrase in page, phrase


def test_bad_input_is_one_line_and_exit_2_even_with_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from autotalk_prefect.cli.errors import DEBUG, InputError, one_line_errors

    @one_line_errors
    def command() -> None:
        raise InputError("--format must be csv or json, got 'xml'")

    for debug in (False, True):
        monkeypatch.setitem(DEBUG, "on", debug)
        single = typer.Typer()
        single.command()(command)
        result = CliRunner().invoke(single, [])
        assert result.exit_code == 2, result.output
        assert _one_error_line(result.stderr) == "error: --format must be csv or json, got 'xml'"


def test_the_ledger_export_format_goes_through_the_one_error_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["ledger", "export", "c1", "--ledger", str(tmp_path), "--format", "xml"]
    )
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == "error: --format must be csv or json, got 'xml'"
