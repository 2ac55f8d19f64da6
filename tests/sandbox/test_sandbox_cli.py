"""``autotalk-prefect sandbox`` serves until interrupted, with faults from its flags."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from autotalk_prefect.cli import app

#: generous deadlines for a loaded machine; the test polls, so a fast one never waits for them
STARTUP_S = 180.0
STOP_S = 120.0


def test_help_lists_the_fault_flags() -> None:
    result = CliRunner().invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0
    for flag in ("--port", "--api-key", "--seed", "--contacts", "--latency-ms", "--error-rate",
                 "--rate-429", "--rate-limit-rps", "--drop-rate"):  # fmt: skip
        assert flag in result.output
    # the env var of an option reads as written: no rich escape (older typer printed "\\[env")
    assert "[env" in result.output and "\\[" not in result.output


@pytest.mark.parametrize("command", ["sandbox", "webhooks"])
def test_the_sandbox_and_the_receiver_start_without_importing_prefect(command: str) -> None:
    probe = (
        "import sys; from autotalk_prefect.cli import app; sys.argv = ['autotalk-prefect', "
        f"{command!r}, '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('prefect' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False"), out.stdout[-500:]


def test_bad_flag_value_is_refused_by_name() -> None:
    result = CliRunner().invoke(app, ["sandbox", "--error-rate", "3"])
    assert result.exit_code != 0 and "error_rate" in result.output


class _Output:
    """A child's stdout, read to the end by a thread so the pipe never fills and no read blocks."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        """The first line containing ``text``; fails (with what was printed) after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                assert left > 0 and self._thread.is_alive(), f"no {text!r} in:\n{self.text()}"
                self._changed.wait(min(left, 1.0))
            return next(line for line in self.lines if text in line)

    def text(self) -> str:
        return "".join(self.lines)


@pytest.mark.floor
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
    output = _Output(process)
    try:
        first = output.wait_for("AutoTalk sandbox: ", timeout=STARTUP_S)
        assert first.startswith("AutoTalk sandbox: http://127.0.0.1:"), output.text()
        base_url = first.split(": ", 1)[1].strip()
        response = httpx.get(f"{base_url}/self", headers={"x-api-key": "sk-cli-secret"}, timeout=60)
        assert response.status_code == 429 and response.headers["retry-after"] == "2"
        assert (
            httpx.get(f"{base_url}/self", headers={"x-api-key": "sk-test"}, timeout=60).status_code
            == 401
        )
        # the last line: the command is waiting for Ctrl-C (it stops cleanly from the first line
        # on, so this only makes the test's SIGINT land where a user's would)
        output.wait_for("Ctrl-C stops", timeout=STARTUP_S)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STOP_S) == 0, output.text()
        output.wait_for("stopping the sandbox", timeout=STOP_S)
        assert "sk-cli-secret" not in output.text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
