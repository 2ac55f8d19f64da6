"""Serve an ASGI app with uvicorn on loopback in a background thread (sandbox, receiver, demo)."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn

LOOPBACK = "127.0.0.1"


def _http_implementation() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


@contextlib.contextmanager
def serve_in_thread(
    app: Any,
    *,
    port: int = 0,
    host: str = LOOPBACK,
    name: str = "autotalk-server",
    startup_timeout: float = 30.0,
    lifespan: Literal["auto", "on", "off"] = "off",
) -> Iterator[int]:
    """Serve ``app`` until the block exits; yield the bound port (``port=0``: a free one).

    The socket is bound before the thread starts, so the port is known and race-free.
    """
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are TCP,
    # and without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan=lifespan,
            http=_http_implementation(),
            timeout_graceful_shutdown=2,
            backlog=2048,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"{name} did not start on {host}:{port} (see the log above)")
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
