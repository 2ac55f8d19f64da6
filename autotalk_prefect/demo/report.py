"""The demo's scorecard: each step records checks; the exit code is 0 only if all of them held."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table


@dataclass
class Check:
    """One thing the demo promised and verified."""

    step: str
    claim: str
    ok: bool
    detail: str = ""


@dataclass
class DemoReport:
    """Collects checks and prints them as they happen and as a final table."""

    console: Console = field(default_factory=Console)
    checks: list[Check] = field(default_factory=list)

    def step(self, title: str) -> None:
        self.console.print(f"\n[bold cyan]==> {title}[/]")

    def note(self, text: str) -> None:
        self.console.print(f"    {text}", highlight=False)

    def check(self, step: str, claim: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(step, claim, ok, detail))
        mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
        suffix = f" [dim]({detail})[/]" if detail else ""
        self.console.print(f"    {mark} {claim}{suffix}", highlight=False)
        return ok

    @property
    def all_ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def print_summary(self) -> None:
        table = Table(title="autotalk-prefect demo", show_lines=False)
        table.add_column("step", style="bold")
        table.add_column("what was checked")
        table.add_column("result")
        for c in self.checks:
            table.add_row(c.step, c.claim, "[green]ok[/]" if c.ok else f"[red]FAIL[/] {c.detail}")
        self.console.print()
        self.console.print(table)
