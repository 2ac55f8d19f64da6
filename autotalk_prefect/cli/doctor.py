"""``autotalk-prefect doctor``: what the AutoTalk server really answers, for a bug report.

Our contract is a guess (docs/contract.md). With the user's key this makes read-only calls and
reports which auth scheme was accepted, the list envelope and page style seen, how the answers
compare with our wire models (missing and extra fields) and each call's latency. HTTP goes
through the client's low-level path (``client._send``), which returns the decoded JSON.
Nothing here prints the key: errors come from the client, which redacts it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import typer
from pydantic import BaseModel, SecretStr

from autotalk_prefect._version import __version__
from autotalk_prefect.api import endpoints as ep
from autotalk_prefect.api.base_url import check_base_url
from autotalk_prefect.api.client import AutoTalkClient
from autotalk_prefect.api.config import AuthScheme
from autotalk_prefect.api.errors import AuthenticationError, AutoTalkError
from autotalk_prefect.api.models import (
    Assistant,
    Channel,
    Company,
    Conversation,
    DynadataItem,
    DynadataType,
    Message,
)
from autotalk_prefect.api.paging import LIST_KEYS
from autotalk_prefect.api.retries import RetryPolicy
from autotalk_prefect.api.settings import AutoTalkSettings
from autotalk_prefect.cli.errors import InputError
from autotalk_prefect.credentials import AutoTalkCredentials

CURSOR_KEYS = ("nextCursor", "next_cursor", "cursor", "has_more", "hasMore", "next")
PAGE_NUMBER_KEYS = ("totalPages", "hasNextPage", "nextPage", "page", "pageSize")
SKIP_KEYS = ("skip", "offset")
PROBE_SIZE = 2


# ---- pure trait detection ----------------------------------------------------------------------


def list_items(payload: Any) -> tuple[str, list[Any]]:
    """The envelope name of a list answer (``bare array``, ``data``, ``docs``...) and its items."""
    if isinstance(payload, list):
        return "bare array", payload
    if isinstance(payload, dict):
        for key in LIST_KEYS:
            if isinstance(payload.get(key), list):
                return key, payload[key]
    return "unknown", []


def unwrap_object(payload: Any) -> tuple[str | None, Any]:
    """A single-object answer without its envelope: ``("data", obj)`` for ``{success, data}``."""
    enveloped = isinstance(payload, dict) and isinstance(payload.get("data"), dict)
    if enveloped and not {"_id", "id", "name"} & set(payload):
        return "data", payload["data"]
    return None, payload


def _first_id(payload: Any) -> object:
    items = list_items(payload)[1]
    first = items[0] if items else None
    return first.get("_id", first.get("id")) if isinstance(first, dict) else None


def page_style(first: Any, skipped: Any, page_two: Any) -> str:
    """How a listing pages, from one page asked three ways: plain, with ``skip``, with ``page=2``.

    The keys of an envelope say it when they can (cursor, page-number or skip fields); a bare
    array or unknown keys are read by behaviour: did ``skip`` move the page, or did ``page``?
    """
    keys = set(first) if isinstance(first, dict) else set()
    if keys & set(CURSOR_KEYS):
        return "cursor"
    if keys & set(PAGE_NUMBER_KEYS):
        return "page-number"
    if keys & set(SKIP_KEYS):
        return "skip/limit"
    start = _first_id(first)
    if start is None:
        return "unknown (the listing was empty)"
    if _first_id(skipped) not in (None, start):
        return "skip/limit"
    if _first_id(page_two) not in (None, start):
        return "page-number"
    return "unknown (neither skip nor page moved the listing)"


def compare_fields(
    model: type[BaseModel], item: Any, *, extra_expected: bool = False
) -> dict[str, list[str]]:
    """The wire keys of ``item`` against ``model``: required/optional fields missing, extras.

    A field counts as present under its alias (``_id``) or its name (``id``), and the id under
    any key the model reads it from (a message's ``messageId``), as the models accept them all.
    """
    keys = set(item) if isinstance(item, dict) else set()
    known: set[str] = set()
    missing: list[str] = []
    missing_optional: list[str] = []
    id_keys = set(getattr(model, "id_keys", ()))
    for name, info in model.model_fields.items():
        wire = info.alias or name
        names = {name, wire} | (id_keys if name == "id" else set())
        known |= names
        if not names & keys:
            (missing if info.is_required() else missing_optional).append(wire)
    extra = [] if extra_expected else sorted(keys - known)
    return {"missing": missing, "missing_optional": missing_optional, "extra": extra}


# ---- the report -------------------------------------------------------------------------------


@dataclass
class EndpointReport:
    """One call: did it answer, how fast, in which shape, against which model."""

    name: str
    ok: bool
    latency_ms: float | None = None
    shape: str | None = None
    items: int | None = None
    missing: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class DoctorReport:
    base_url: str
    version: str = __version__
    auth_scheme: str | None = None
    auth_tried: list[str] = field(default_factory=list)
    list_envelope: str | None = None
    page_style: str | None = None
    single_object_envelope: str | None = None
    id_field: str | None = None
    endpoints: list[EndpointReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.auth_scheme is not None and all(e.ok for e in self.endpoints)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _fields(model: type[BaseModel], item: Any, *, extra_expected: bool = False) -> dict[str, Any]:
    return dict(compare_fields(model, item, extra_expected=extra_expected))


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, round((time.perf_counter() - started) * 1000, 1)


def _client(api_key: SecretStr, base_url: str, scheme: str) -> AutoTalkClient:
    return AutoTalkClient(
        api_key,
        base_url,
        auth_scheme=cast(AuthScheme, scheme),
        retry_policy=RetryPolicy(attempts=2),
    )


def _connect(report: DoctorReport, api_key: SecretStr) -> tuple[AutoTalkClient, Any] | None:
    """The first client whose scheme gets past 401 on ``get_self``, and that answer."""
    for scheme in ("x-api-key", "bearer"):
        report.auth_tried.append(scheme)
        client = _client(api_key, report.base_url, scheme)
        try:
            answer, latency = _timed(functools.partial(client._send, ep.build("get_self")))
        except AuthenticationError as exc:
            client.close()
            last = EndpointReport("get_self", ok=False, error=f"{scheme}: {exc}")
            continue
        except AutoTalkError as exc:
            client.close()
            report.endpoints.append(EndpointReport("get_self", ok=False, error=str(exc)))
            return None
        report.auth_scheme = scheme
        envelope, company = unwrap_object(answer)
        report.single_object_envelope = envelope
        if isinstance(company, dict):
            report.id_field = "_id" if "_id" in company else "id" if "id" in company else None
        report.endpoints.append(
            EndpointReport(
                "get_self",
                ok=True,
                latency_ms=latency,
                shape=f"object{_in(envelope)}",
                **_fields(Company, company),
            )
        )
        return client, answer
    report.endpoints.append(last)
    return None


def _in(envelope: str | None) -> str:
    return f" in {envelope!r}" if envelope else ""


def _listing(
    report: DoctorReport,
    client: AutoTalkClient,
    name: str,
    model: type[BaseModel],
    params: Mapping[str, Any] | None = None,
    **ids: str,
) -> Any:
    """One page of a list endpoint, recorded; its raw answer (``None`` if it failed)."""
    try:
        call = ep.build(name, params=params, **cast("dict[str, Any]", ids))
        answer, latency = _timed(lambda: client._send(call))
    except AutoTalkError as exc:
        report.endpoints.append(EndpointReport(name, ok=False, error=str(exc)))
        return None
    envelope, items = list_items(answer)
    sample = items[0] if items else {}
    fields = _fields(model, sample, extra_expected=model is DynadataItem) if items else {}
    report.endpoints.append(
        EndpointReport(
            name,
            ok=envelope != "unknown",
            latency_ms=latency,
            shape=envelope,
            items=len(items),
            **fields,
        )
    )
    return answer


def diagnose(api_key: SecretStr, base_url: str) -> DoctorReport:
    """Read-only calls against ``base_url``; never raises for what the server answers."""
    report = DoctorReport(base_url=base_url)
    connected = _connect(report, api_key)
    if connected is None:
        return report
    client = connected[0]
    with client:
        types = _listing(report, client, "list_dynadata_types", DynadataType)
        _listing(report, client, "list_channels", Channel)
        _listing(report, client, "list_assistants", Assistant)
        conversations = _listing(
            report, client, "list_conversations", Conversation, {"limit": PROBE_SIZE}
        )
        conversation = _first_id(conversations)
        if isinstance(conversation, str):
            _listing(
                report, client, "list_messages", Message, {"limit": PROBE_SIZE}, id=conversation
            )
        type_names = [t.get("name") for t in list_items(types)[1] if isinstance(t, dict)]
        type_name = "clients" if "clients" in type_names or not type_names else str(type_names[0])
        segment = ep.segment(type_name, "type")
        first = _listing(
            report, client, "list_dynadata_items", DynadataItem, {"limit": PROBE_SIZE}, type=segment
        )
        if first is not None:
            report.list_envelope = list_items(first)[0]
            probes = []
            for extra in ({"skip": PROBE_SIZE}, {"page": 2, "pageSize": PROBE_SIZE}):
                params = {"limit": PROBE_SIZE, **extra}
                try:
                    probe: ep.Call[Any] = ep.build(
                        "list_dynadata_items", params=params, type=segment
                    )
                    probes.append(client._send(probe))
                except AutoTalkError:
                    probes.append(None)
            report.page_style = page_style(first, probes[0], probes[1])
    return report


# ---- the command ------------------------------------------------------------------------------


def _resolve(api_key: str | None, base_url: str | None, block: str | None) -> tuple[SecretStr, str]:
    if block:
        credentials = cast(AutoTalkCredentials, AutoTalkCredentials.load(block, _sync=True))  # type: ignore[call-arg]
        return credentials.api_key, base_url or credentials.base_url
    settings = AutoTalkSettings()
    if base_url:
        settings = settings.model_copy(update={"base_url": check_base_url(base_url)})
    key = SecretStr(api_key) if api_key else settings.api_key
    if key is None:
        raise ValueError("no AutoTalk API key: set AUTOTALK_API_KEY, or pass --api-key or --block")
    return key, settings.base_url


def _describe(report: DoctorReport) -> list[str]:
    tried = ", ".join(report.auth_tried)
    lines = [
        f"AutoTalk doctor {report.version}: {report.base_url}",
        f"auth: {report.auth_scheme or 'refused'} (tried {tried})",
        f"list envelope: {report.list_envelope}; page style: {report.page_style}",
        f"single objects: {'in ' + repr(report.single_object_envelope) if report.single_object_envelope else 'bare'}; "
        f"id field: {report.id_field}",
    ]  # fmt: skip
    for e in report.endpoints:
        if not e.ok:
            lines.append(f"  {e.name:<22} FAILED {e.error}")
            continue
        detail = [
            f"{e.latency_ms} ms",
            e.shape or "",
            f"{e.items} items" if e.items is not None else "",
        ]
        for label, names in (("missing", e.missing), ("missing optional", e.missing_optional),
                             ("extra", e.extra)):  # fmt: skip
            if names:
                detail.append(f"{label}: {', '.join(names)}")
        lines.append(f"  {e.name:<22} ok  " + "  ".join(d for d in detail if d))
    return lines


def doctor_command(
    api_key: str | None = typer.Option(
        None, "--api-key", help="The key to check (default: AUTOTALK_API_KEY).", show_default=False
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="The API base URL (default: AUTOTALK_BASE_URL or AutoTalk's)."
    ),
    block: str | None = typer.Option(
        None, "--block", help="Read key and URL from this saved AutoTalkCredentials block."
    ),
    as_json: bool = typer.Option(
        False, "--json/--no-json", help="Print the report as JSON (for a bug report)."
    ),
) -> None:
    """Check your key against AutoTalk with read-only calls: auth scheme, paging, answer shapes."""
    try:
        key, url = _resolve(api_key, base_url, block)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    report = diagnose(key, url)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in _describe(report):
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(code=1)
