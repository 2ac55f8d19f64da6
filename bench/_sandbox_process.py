"""The sandbox in its own process for a benchmark (so it never shares a GIL with the measured side)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(
    api_key: str, contacts: int, *options: str, timeout: float = 120
) -> tuple[subprocess.Popen[bytes], str]:
    """``autotalk-prefect sandbox`` on a free loopback port; returns the process and its root URL."""
    port = free_port()
    cli = Path(sys.executable).parent / "autotalk-prefect"
    command = [str(cli), "sandbox", "--port", str(port), "--api-key", api_key]
    command += ["--contacts", str(contacts), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{root}/_sandbox/stats", timeout=1).status_code == 200:
                return process, root
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("sandbox did not start")
