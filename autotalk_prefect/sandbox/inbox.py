"""The web inbox at the sandbox's root URL, and its JSON twins under ``/_sandbox/inbox/``.

Each view is one query in ``inbox_queries`` rendered twice: as a page (Jinja2 templates in
``sandbox/templates``) and as JSON, so tests and scripts read what a person sees. Pages need
no API key (like the admin API) and answer loopback hosts only; see docs/sandbox.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autotalk_prefect.sandbox import inbox_queries as queries
from autotalk_prefect.sandbox.admin import ADMIN_PREFIX
from autotalk_prefect.sandbox.fragments import RowCache, message_rows
from autotalk_prefect.sandbox.http import endpoint, json_response, page_params, time_param
from autotalk_prefect.sandbox.inbox_forms import (
    FORM_FIELDS,
    REFUSAL_BODY_CHOICES,
    FormRefused,
    faults_from_form,
    read_form,
    reply_from_form,
)
from autotalk_prefect.sandbox.pages import page, pager, redirect, render, static_asset
from autotalk_prefect.sandbox.problems import ApiProblem
from autotalk_prefect.sandbox.runtime import SandboxRuntime

INBOX_API = f"{ADMIN_PREFIX}/inbox"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
ROWS_CACHED = 20_000  # rendered message rows kept (~0.5 KB each)


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def _paging(request: Request) -> tuple[int, int]:
    return page_params(request, MAX_PAGE_SIZE, default=PAGE_SIZE)


def message_query(request: Request) -> queries.MessageQuery:
    """The message filters of a request (the same for the page and the JSON twin)."""
    limit, skip = _paging(request)
    return queries.MessageQuery(
        contact_id=_text(request, "contactId"),
        text=_text(request, "q"),
        since=time_param(request, "since", blank_is_absent=True),
        until=time_param(request, "until", blank_is_absent=True),
        limit=limit,
        skip=skip,
    )


def inbox_routes(runtime: SandboxRuntime) -> list[Route]:
    """The inbox's pages and JSON twins, bound to one runtime."""

    state = runtime.state
    row_cache = RowCache(
        message_rows,
        lambda m: (state.generation, m["_id"], m["contactName"], m["channelName"]),
        ROWS_CACHED,
    )

    def ctx(title: str, **values: Any) -> dict[str, Any]:
        return {"title": title, "summary": queries.summary(runtime), "error": None, **values}

    # ---- messages (the front page) -------------------------------------------------------------

    @page
    async def messages_page(request: Request) -> Response:
        query = message_query(request)
        data = queries.messages(runtime, query)
        paging = pager("/", query.params(), data["total"], query.limit, query.skip)
        rows = row_cache.render(data["data"])
        context = ctx("Messages", data=data, rows=rows, query=query, pager=paging)
        return render("messages.html", context)

    @endpoint
    async def messages_json(request: Request) -> Response:
        return json_response(queries.messages(runtime, message_query(request)))

    # ---- contacts and conversations ------------------------------------------------------------

    @page
    async def contacts_page(request: Request) -> Response:
        limit, skip = _paging(request)
        text = _text(request, "q")
        data = queries.contacts(runtime, text=text, limit=limit, skip=skip)
        paging = pager("/contacts", {"q": text} if text else {}, data["total"], limit, skip)
        context = ctx("Contacts", data=data, q=text or "", pager=paging)
        return render("contacts.html", context, active="/contacts")

    @endpoint
    async def contacts_json(request: Request) -> Response:
        limit, skip = _paging(request)
        text = _text(request, "q")
        return json_response(queries.contacts(runtime, text=text, limit=limit, skip=skip))

    @page
    async def contact_page(request: Request) -> Response:
        data = queries.contact(runtime, request.path_params["contact_id"])
        context = ctx(data["contact"]["name"] or data["contact"]["_id"], data=data)
        return render("contact.html", context, active="/contacts")

    @endpoint
    async def contact_json(request: Request) -> Response:
        return json_response(queries.contact(runtime, request.path_params["contact_id"]))

    @page
    async def conversation_page(request: Request) -> Response:
        limit, skip = _paging(request)
        conversation_id = request.path_params["conversation_id"]
        data = queries.conversation(runtime, conversation_id, limit=limit, skip=skip)
        paging = pager(f"/conversations/{conversation_id}", {}, data["total"], limit, skip)
        context = ctx("Conversation", data=data, pager=paging)
        return render("conversation.html", context, active="/contacts")

    @endpoint
    async def conversation_json(request: Request) -> Response:
        limit, skip = _paging(request)
        conversation_id = request.path_params["conversation_id"]
        return json_response(queries.conversation(runtime, conversation_id, limit=limit, skip=skip))

    # ---- campaigns -----------------------------------------------------------------------------

    @page
    async def campaigns_page(request: Request) -> Response:
        limit, skip = _paging(request)
        data = queries.campaigns(runtime, limit=limit, skip=skip)
        paging = pager("/campaigns", {}, data["total"], limit, skip)
        context = ctx("Campaigns", data=data, pager=paging)
        return render("campaigns.html", context, active="/campaigns")

    @endpoint
    async def campaigns_json(request: Request) -> Response:
        limit, skip = _paging(request)
        return json_response(queries.campaigns(runtime, limit=limit, skip=skip))

    # ---- webhooks and simulated replies --------------------------------------------------------

    def webhooks_view(
        request: Request, *, error: str | None = None, form: dict[str, str] | None = None
    ) -> Response:
        limit, skip = _paging(request)
        data = queries.deliveries(runtime, limit=limit, skip=skip)
        paging = pager("/webhooks", {}, data["total"], limit, skip)
        context = ctx(
            "Webhooks",
            data=data,
            pager=paging,
            error=error,
            form=form or {},
            replied=_text(request, "replied"),
        )
        return render("webhooks.html", context, status=422 if error else 200, active="/webhooks")

    @page
    async def webhooks_page(request: Request) -> Response:
        return webhooks_view(request)

    @endpoint
    async def deliveries_json(request: Request) -> Response:
        limit, skip = _paging(request)
        return json_response(queries.deliveries(runtime, limit=limit, skip=skip))

    @page
    async def simulate_reply(request: Request) -> Response:
        form = await read_form(request)
        try:
            reply = reply_from_form(form)
            message = runtime.state.simulate_reply(reply.contact_id, reply.text, reply.channel_id)
        except FormRefused as exc:
            return webhooks_view(request, error=f"reply refused: {exc}", form=form)
        except ApiProblem as problem:
            return webhooks_view(request, error=f"reply refused: {problem.message}", form=form)
        return redirect(f"/webhooks?replied={message['_id']}")

    # ---- faults --------------------------------------------------------------------------------

    def faults_view(
        *, error: str | None = None, form: dict[str, str] | None = None, applied: bool = False
    ) -> Response:
        data = queries.faults(runtime)
        shown = form if form is not None else _form_values(data["config"])
        context = ctx(
            "Faults",
            data=data,
            error=error,
            form=shown,
            applied=applied,
            refusal_bodies=REFUSAL_BODY_CHOICES,
        )
        return render("faults.html", context, status=422 if error else 200, active="/faults")

    @page
    async def faults_page(request: Request) -> Response:
        return faults_view(applied=request.query_params.get("applied") == "1")

    @page
    async def faults_post(request: Request) -> Response:
        form = await read_form(request)
        try:
            config = faults_from_form(form)
        except FormRefused as exc:
            return faults_view(error=f"faults unchanged: {exc}", form=form)
        runtime.set_faults(config)
        return redirect("/faults?applied=1")

    @page
    async def faults_clear(request: Request) -> Response:
        runtime.set_faults(None)
        return redirect("/faults?applied=1")

    # ---- live counters and assets --------------------------------------------------------------

    @endpoint
    async def summary_json(request: Request) -> Response:
        return json_response(queries.summary(runtime), headers={"cache-control": "no-store"})

    @page
    async def static(request: Request) -> Response:
        return static_asset(request.path_params["name"])

    a = INBOX_API
    return [
        Route("/", messages_page, methods=["GET"]),
        Route("/contacts", contacts_page, methods=["GET"]),
        Route("/contacts/{contact_id}", contact_page, methods=["GET"]),
        Route("/conversations/{conversation_id}", conversation_page, methods=["GET"]),
        Route("/campaigns", campaigns_page, methods=["GET"]),
        Route("/webhooks", webhooks_page, methods=["GET"]),
        Route("/simulate-reply", simulate_reply, methods=["POST"]),
        Route("/faults", faults_page, methods=["GET"]),
        Route("/faults", faults_post, methods=["POST"]),
        Route("/faults/clear", faults_clear, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route(f"{a}/summary", summary_json, methods=["GET"]),
        Route(f"{a}/messages", messages_json, methods=["GET"]),
        Route(f"{a}/contacts", contacts_json, methods=["GET"]),
        Route(f"{a}/contacts/{{contact_id}}", contact_json, methods=["GET"]),
        Route(f"{a}/conversations/{{conversation_id}}", conversation_json, methods=["GET"]),
        Route(f"{a}/campaigns", campaigns_json, methods=["GET"]),
        Route(f"{a}/deliveries", deliveries_json, methods=["GET"]),
    ]


def _form_values(config: dict[str, Any]) -> dict[str, str]:
    """The faults form pre-filled with the current config (lists comma-separated)."""
    values: dict[str, str] = {}
    for name in FORM_FIELDS:
        value = config.get(name)
        if value is None:
            values[name] = ""
        elif isinstance(value, list):
            values[name] = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            values[name] = "on" if value else ""
        else:
            values[name] = str(value)
    return values
