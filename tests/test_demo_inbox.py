"""``make demo`` at a terminal ends on the sandbox inbox and waits for Enter; elsewhere it exits.

The demo's steps are replaced by a stand-in (the full demo runs in tests/test_demo.py, without a
terminal): what is tested here is the command's decision and its order of output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autotalk_prefect.cli import demo as command
from autotalk_prefect.demo import steps

REPO = Path(__file__).resolve().parents[1]


def _run(monkeypatch: pytest.MonkeyPatch, *, at_terminal: bool) -> tuple[list[str], list[str]]:
    """Run ``demo_command`` with fake steps; (what happened in order, prompts shown)."""
    events: list[str] = []
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(command, "prepare_environment", lambda home: None)
    monkeypatch.setattr(command, "_at_terminal", lambda: at_terminal)
    monkeypatch.setattr("builtins.input", lambda *a: events.append("waited for Enter") or "")

    def fake_demo(ctx: Any, *, contacts: int, with_events: bool, hold: Any = None) -> None:
        ctx.report.check("outreach", "stand-in check", True)
        events.append("steps ran")
        if hold is not None:
            hold("http://127.0.0.1:5555/")
            events.append("sandbox stopped")

    monkeypatch.setattr(steps, "run_sandbox_demo", fake_demo)
    printed: list[str] = []
    original_verdict = command._verdict

    def verdict(report: Any) -> None:
        events.append("verdict")
        original_verdict(report)

    monkeypatch.setattr(command, "_verdict", verdict)
    monkeypatch.setattr(
        "rich.console.Console.print", lambda self, *a, **k: printed.append(" ".join(map(str, a)))
    )
    command.demo_command(
        contacts=40, api_key=None, base_url=None, contact_id=None, skip_events=False
    )
    return events, printed


def test_at_a_terminal_the_demo_prints_the_inbox_and_keeps_the_sandbox_up_until_enter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events, printed = _run(monkeypatch, at_terminal=True)
    assert events == ["steps ran", "verdict", "waited for Enter", "sandbox stopped"]
    assert any("http://127.0.0.1:5555/" in line for line in printed)
    assert any("press Enter" in line for line in printed)


def test_without_a_terminal_the_demo_exits_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    events, printed = _run(monkeypatch, at_terminal=False)
    assert events == ["steps ran", "verdict"]
    assert not any("press Enter" in line for line in printed)
