"""``autotalk-prefect sandbox`` serves until interrupted, with faults from its flags."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
from typer.testing import CliRunner

from autotalk_prefect.cli import app


def test_help_lists_the_fault_flags() -> None:
    result = CliRunner().invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0
    for flag in ("--port", "--api-key", "--seed", "--contacts", "--latency-ms", "--error-rate",
                 "--rate-429", "--rate-limit-rps", "--drop-rate"):  # fmt: skip
        assert flag in result.output


def test_bad_flag_value_is_refused_by_name() -> None:
    result = CliRunner().invoke(app, ["sandbox", "--error-rate", "3"])
    assert result.exit_code != 0 and "error_rate" in result.output


def test_serves_until_interrupted() -> None:
    command = [sys.executable, "-c", "from autotalk_prefect.cli import app; app()"]
    args = [
        "sandbox",
        "--port",
        "0",
        "--api-key",
        "sk-cli-secret",
        "--rate-429",
        "1",
        "--retry-after",
        "2",
    ]
    process = subprocess.Popen(
        command + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("AutoTalk sandbox: http://127.0.0.1:"), first
        base_url = first.split(": ", 1)[1].strip()
        response = httpx.get(f"{base_url}/self", headers={"x-api-key": "sk-cli-secret"})
        assert response.status_code == 429 and response.headers["retry-after"] == "2"
        assert httpx.get(f"{base_url}/self", headers={"x-api-key": "sk-test"}).status_code == 401
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output
        assert "sk-cli-secret" not in first + output
    finally:
        if process.poll() is None:
            process.kill()
