"""The ``demo`` command: options, environment, and the order of the steps."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autotalk_prefect.demo.prefect_api import prepare_environment

if TYPE_CHECKING:
    from autotalk_prefect.demo.report import DemoReport

DEMO_DIR = Path(".autotalk") / "demo"


def demo_command(
    contacts: int = typer.Option(
        300, min=10, max=20_000, help="Seeded sandbox contacts the outreach campaign messages."
    ),
    api_key: str | None = typer.Option(
        None,
        envvar="AUTOTALK_API_KEY",
        show_default=False,
        help="Run against the real AutoTalk with this key (better: set AUTOTALK_API_KEY).",
    ),
    base_url: str | None = typer.Option(
        None,
        envvar="AUTOTALK_BASE_URL",
        show_default=False,
        help="The real AutoTalk API base URL (with --api-key; default https://api.autotalk.io/v1).",
    ),
    contact_id: Annotated[
        list[str] | None,
        typer.Option(
            "--contact-id",
            help="Real AutoTalk only: a contact to include in the campaign (repeat the option). "
            "Without one, the real-API run only reads.",
        ),
    ] = None,
    skip_events: bool = typer.Option(
        False, "--skip-events", help="Leave out the webhook -> event -> deployment step."
    ),
) -> None:
    """Run the integration end to end and verify it: sandbox + Prefect's ephemeral API by default."""
    prepare_environment(DEMO_DIR / "prefect-home")
    # Prefect is imported only now, after its environment is set.
    from autotalk_prefect.demo.context import DemoContext
    from autotalk_prefect.demo.report import DemoReport
    from autotalk_prefect.demo.steps import run_real_demo, run_sandbox_demo

    report = DemoReport()
    context = DemoContext(
        work_dir=DEMO_DIR,
        report=report,
        run_id=secrets.token_hex(3),
    )
    held = False

    def hold(inbox_url: str) -> None:
        """With a person at the terminal: the verdict, then the inbox until they press Enter."""
        nonlocal held
        held = True
        _verdict(report)
        report.console.print(f"\n[bold]What the customers received:[/] {inbox_url}")
        report.console.print("The sandbox stays up for the inbox: press Enter to stop it.")
        with contextlib.suppress(EOFError, KeyboardInterrupt):
            input()

    try:
        if api_key:
            os.environ.pop("AUTOTALK_API_KEY", None)  # the steps pass the key as a SecretStr
            run_real_demo(context, api_key, base_url, contact_id or [])
        else:
            run_sandbox_demo(
                context,
                contacts=contacts,
                with_events=not skip_events,
                hold=hold if _at_terminal() else None,
            )
    except KeyboardInterrupt:
        report.console.print("[yellow]interrupted[/]")
        raise typer.Exit(code=130) from None
    if not held:
        _verdict(report)
    if not report.all_ok:
        raise typer.Exit(code=1)


def _at_terminal() -> bool:
    """A person can read the URL and press Enter (not CI, not a pipe)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _verdict(report: DemoReport) -> None:
    report.print_summary()
    if report.all_ok:
        report.console.print("[green bold]Every check held.[/]")
    else:
        report.console.print("[red bold]The demo found a problem: see the FAIL lines above.[/]")
