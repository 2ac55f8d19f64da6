"""``autotalk-prefect webhooks``: serve the receiver with uvicorn until Ctrl-C.

Options override ``AUTOTALK_WEBHOOK_*``; prefer the environment for the secret (a command-line
argument is visible to other users of the machine in the process list).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import typer

from autotalk_prefect.webhooks.app import create_webhook_app
from autotalk_prefect.webhooks.redact import install_access_log_redaction
from autotalk_prefect.webhooks.settings import WebhookConfigError, WebhookSettings


def webhooks_command(
    host: str | None = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to bind (default 8787; 0 picks a free one)."),
    secret: str | None = typer.Option(
        None,
        help="Shared secret (better: set AUTOTALK_WEBHOOK_SECRET in the environment).",
        show_default=False,
    ),
    secret_header: str | None = typer.Option(None, help="Header carrying the secret."),
    hmac: bool | None = typer.Option(
        None,
        "--hmac/--no-hmac",
        help="Require an HMAC signature and timestamp.",
        show_default=False,
    ),
    tolerance_seconds: int | None = typer.Option(None, help="Timestamp and replay window."),
    max_body_bytes: int | None = typer.Option(None, help="Largest body accepted."),
    event_field: str | None = typer.Option(
        None, help="Body field naming the event, for POST /autotalk."
    ),
    dedupe_fields: str | None = typer.Option(
        None,
        help=(
            "Comma-separated body fields that identify a delivery without an id, e.g. "
            "'client.phone,message.text,event.date' (default: none, so every id-less "
            "delivery is its own event)."
        ),
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the AutoTalk webhook receiver: POST /autotalk/[<secret>/]<event> -> Prefect event."""
    import uvicorn
    from pydantic import ValidationError

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "secret": secret,
        "secret_header": secret_header,
        "hmac": hmac,
        "tolerance_seconds": tolerance_seconds,
        "max_body_bytes": max_body_bytes,
        "event_field": event_field,
        "dedupe_fields": dedupe_fields,
    }
    try:
        settings = WebhookSettings(**{k: v for k, v in overrides.items() if v is not None})
        app = create_webhook_app(settings)
    except WebhookConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise typer.BadParameter(problems) from None

    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise typer.BadParameter(
            "PREFECT_API_URL is not set: point it at your Prefect server's API "
            "(e.g. http://127.0.0.1:4200/api) so that events reach the server that runs "
            "your automations"
        )
    api = urlsplit(str(PREFECT_API_URL.value()))
    base = f"http://{settings.host}:{settings.port}/autotalk"
    typer.echo(
        f"AutoTalk webhook receiver on {base}/<event> (secret in the {settings.secret_header} "
        f"header) and {base}/<secret>/<event> "
        f"-> Prefect API at {api.scheme}://{api.hostname}:{api.port or ''}{api.path}"
    )
    if settings.dedupe_fields:
        typer.echo(
            f"Deliveries without an id are deduplicated by {', '.join(settings.dedupe_fields)}"
        )
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level, lifespan="off"
    )
    install_access_log_redaction()  # masks a path secret; after Config set up the loggers
    uvicorn.Server(config).run()
