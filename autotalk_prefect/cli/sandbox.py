"""``autotalk-prefect sandbox``: serve the sandbox on loopback until Ctrl-C."""

from __future__ import annotations

import threading

import typer

from autotalk_prefect.sandbox.config import DEFAULT_API_KEY, SandboxConfig
from autotalk_prefect.sandbox.faults import FaultConfig
from autotalk_prefect.sandbox.server import run_sandbox


def sandbox_command(
    port: int = typer.Option(8765, help="Port on 127.0.0.1 (0 picks a free one)."),
    api_key: str = typer.Option(
        DEFAULT_API_KEY,
        help="The x-api-key the sandbox accepts.",
        envvar="AUTOTALK_SANDBOX_API_KEY",
    ),
    seed: int = typer.Option(0, help="Seed of the data and of fault decisions."),
    contacts: int = typer.Option(25, help="Number of seeded contacts (clients items)."),
    latency_ms: float = typer.Option(0, help="Added latency per API request, in ms."),
    error_rate: float = typer.Option(
        0.0, help="Fraction of API requests answered 500/502/503/504."
    ),
    rate_429: float = typer.Option(0.0, help="Fraction of API requests answered 429."),
    retry_after: float = typer.Option(1.0, help="Retry-After seconds sent with 429 (and 503)."),
    rate_limit_rps: float | None = typer.Option(
        None, help="Per-key rate limit in requests/second (429 beyond it)."
    ),
    drop_rate: float = typer.Option(
        0.0, help="Fraction of API requests applied, then dropped without an answer."
    ),
    webhook_url: str | None = typer.Option(
        None, help="POST events to <url>/autotalk/<event> (loopback receivers only)."
    ),
    webhook_secret: str | None = typer.Option(
        None, help="x-autotalk-secret sent with webhooks.", envvar="AUTOTALK_WEBHOOK_SECRET"
    ),
    webhook_hmac: bool = typer.Option(False, help="Also sign webhooks (HMAC-SHA256)."),
    webhook_delivery: str = typer.Option(
        "post", help="How webhooks are sent: post (a JSON object), array (a JSON array) or get."
    ),
    paging: str | None = typer.Option(
        None,
        help="Page every list endpoint this way, whatever the dialect: json_link, header_link, "
        "cursor, header_cursor, offset or page (see docs/sandbox.md).",
    ),
    prefect_api_url: str | None = typer.Option(
        None,
        help="Where the inbox's Appointments page reads each reminder run's time and fate.",
        envvar="PREFECT_API_URL",
    ),
    dialect: str = typer.Option(
        "contract",
        help="Wire shapes served: contract (default), mongoose, cursor, minimal "
        "(see docs/sandbox.md). The data is the same in each.",
    ),
) -> None:
    """Run the AutoTalk sandbox on 127.0.0.1: every API endpoint, faults and an admin API."""
    try:
        faults = FaultConfig(
            latency_ms=latency_ms,
            error_rate=error_rate,
            rate_429=rate_429,
            retry_after_seconds=retry_after,
            retry_after_on_503=True,
            rate_limit_rps=rate_limit_rps,
            drop_after_processing=drop_rate,
            seed=seed,
        )
        config = SandboxConfig(
            api_key=api_key,
            seed=seed,
            contacts=contacts,
            faults=faults,
            dialect=dialect,
            paging=paging,
            prefect_api_url=prefect_api_url,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if webhook_url and not webhook_secret:
        raise typer.BadParameter("--webhook-url needs --webhook-secret")

    with run_sandbox(config=config, port=port) as sandbox:
        if webhook_url and webhook_secret:
            try:
                sandbox.configure_webhook(
                    webhook_url, webhook_secret, hmac=webhook_hmac, delivery=webhook_delivery
                )
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
        # From the first line on the sandbox is up: Ctrl-C at any point after it (even while the
        # other lines print) is a clean stop with exit code 0, not typer's "Aborted!".
        try:
            typer.echo(f"AutoTalk sandbox: {sandbox.base_url}", color=False)
            typer.echo(f"admin API: {sandbox.root_url}/_sandbox (see docs/sandbox.md)")
            typer.echo(f"inbox (what your customers received): {sandbox.root_url}/")
            header = next(iter(sandbox.auth_headers()))
            how = "Authorization: Bearer <key>" if header == "authorization" else "x-api-key: <key>"
            typer.echo(
                f"dialect: {sandbox.dialect}; send {how} with the key you passed with --api-key"
            )
            typer.echo("(default sk-test); Ctrl-C stops")
            threading.Event().wait()
        except KeyboardInterrupt:
            typer.echo("stopping the sandbox")
