"""Server-rendered pages for the inbox: Jinja2 (autoescaped), shipped assets, loopback guard.

Nothing is fetched from the internet: the page's CSS and its small script are files of this
package, served from memory. Pages answer only requests addressed to a loopback host (so a
DNS-rebinding page cannot read them) and refuse form posts from another origin (so a web page
cannot change a developer's faults behind their back).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from autotalk_prefect.api.base_url import is_loopback
from autotalk_prefect.sandbox.problems import ApiProblem

HERE = Path(__file__).parent
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
NAV = (
    ("/", "Messages"),
    ("/contacts", "Contacts"),
    ("/campaigns", "Campaigns"),
    ("/webhooks", "Webhooks"),
    ("/appointments", "Appointments"),
    ("/faults", "Faults"),
)
PageEndpoint = Callable[[Request], Awaitable[Response]]

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship with the package: no stat() per render
)
_STATIC: dict[str, tuple[bytes, str]] = {
    path.name: (path.read_bytes(), STATIC_TYPES[path.suffix])
    for path in sorted((HERE / "static").iterdir())
    if path.suffix in STATIC_TYPES
}


def render(
    template: str, context: Mapping[str, Any], *, status: int = 200, active: str = "/"
) -> Response:
    """The page ``template`` with ``context`` (every value escaped by Jinja's autoescape)."""
    html = _env.get_template(template).render(nav=NAV, active=active, **context)
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def redirect(path: str) -> Response:
    """After a form post: 303 so a reload does not post it again."""
    return RedirectResponse(path, status_code=303)


def static_asset(name: str) -> Response:
    """One of the files under ``sandbox/static`` (404 for anything else)."""
    asset = _STATIC.get(name)
    if asset is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body, media_type = asset
    return Response(body, media_type=media_type, headers={"cache-control": "max-age=300"})


def _refusal(request: Request) -> str | None:
    """Why a request may not use the inbox, or None if it may."""
    host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
    if not is_loopback(host):
        return f"the inbox answers loopback hosts only, not {host!r}"
    if request.method == "POST":
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers['host']}":
            return "form posts must come from the inbox's own pages"
        if request.headers.get("sec-fetch-site") == "cross-site":
            return "form posts must come from the inbox's own pages"
    return None


def page(fn: PageEndpoint) -> PageEndpoint:
    """A page route: loopback only, and an ``ApiProblem`` becomes an error page saying why."""

    @wraps(fn)
    async def wrapper(request: Request) -> Response:
        refusal = _refusal(request)
        if refusal is not None:
            return Response(refusal, status_code=403, media_type="text/plain")
        try:
            return await fn(request)
        except ApiProblem as problem:
            context = {"title": f"Error {problem.status}", "problem": problem, "summary": None}
            return render("error.html", context, status=problem.status)

    return wrapper


def pager(
    path: str, params: Mapping[str, str], total: int, limit: int, skip: int
) -> dict[str, Any]:
    """Links to the previous and next pages (filters kept) and the range shown."""

    def link(at: int) -> str:
        query = {**params, "skip": str(at)} if at else dict(params)
        if limit:
            query["limit"] = str(limit)
        return f"{path}?{urlencode(query)}" if query else path

    return {
        "first": skip + 1 if total else 0,
        "last": min(total, skip + limit),
        "total": total,
        "previous": link(max(0, skip - limit)) if skip else None,
        "next": link(skip + limit) if skip + limit < total else None,
    }
