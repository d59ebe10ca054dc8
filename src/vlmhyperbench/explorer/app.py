"""The explorer's HTTP routes: a thin FastAPI router over :mod:`.pages`, :mod:`.media` and
:mod:`.export`; read-only (GET only).

Every response carries a Content-Security-Policy that allows the app's own stylesheet, script
and images and nothing else (no inline script, no request to another origin), and
``nosniff``; images also a sandbox. Bound to loopback, the app answers only requests addressed
to a loopback name (a page on another site cannot reach it through DNS rebinding).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from vlmhyperbench.explorer.export import export_html
from vlmhyperbench.explorer.filters import parse_filter
from vlmhyperbench.explorer.media import NotServed
from vlmhyperbench.explorer.pages import diff_page, overview, sample_page, task_page, thumb_url
from vlmhyperbench.explorer.render import render, static_text
from vlmhyperbench.explorer.session import Explorer

CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
IMAGE_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=600",
}
STATIC = {"explorer.css": "text/css", "explorer.js": "text/javascript"}
LOOPBACK_NAMES = ["127.0.0.1", "localhost"]


def _html(template: str, context: dict) -> HTMLResponse:
    return HTMLResponse(render(template, context), headers=HEADERS)


def create_app(explorer: Explorer, *, loopback_only: bool = True) -> FastAPI:
    app = FastAPI(title="vlmhb view", docs_url=None, redoc_url=None, openapi_url=None)
    if loopback_only:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)
    catalog = explorer.run.catalog

    def known(task: str) -> str:
        if task not in catalog.tasks():
            raise HTTPException(404, "no such task")
        return task

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return _html("overview.html.j2", overview(explorer))

    @app.get("/task/{task}", response_class=HTMLResponse)
    def task(task: str, request: Request) -> HTMLResponse:
        f = parse_filter(request.query_params.multi_items())
        return _html("task.html.j2", task_page(explorer, known(task), f, thumb_url))

    @app.get("/task/{task}/sample", response_class=HTMLResponse)
    def sample(task: str, sample_id: Annotated[str, Query(alias="id")]) -> HTMLResponse:
        context = sample_page(explorer, known(task), sample_id)
        if context is None:
            raise HTTPException(404, "no such sample")
        return _html("sample.html.j2", context)

    @app.get("/task/{task}/diff", response_class=HTMLResponse)
    def diff(task: str, metric: str = "") -> HTMLResponse:
        if explorer.baseline is None:
            raise HTTPException(404, "no baseline run (start with --baseline)")
        return _html("diff.html.j2", diff_page(explorer, known(task), metric))

    @app.get("/task/{task}/export")
    def export(task: str, request: Request) -> Response:
        f = parse_filter(request.query_params.multi_items())
        name = quote(f"{known(task)}.html", safe="")
        return HTMLResponse(
            export_html(explorer, task, f)[0],
            headers={**HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
        )

    @app.get("/media/{dataset}/{path:path}")
    def media(dataset: str, path: str) -> Response:
        try:
            data, media_type = explorer.media.original(dataset, path)
        except NotServed:
            raise HTTPException(404, "not found") from None
        return Response(data, media_type=media_type, headers=IMAGE_HEADERS)

    @app.get("/thumb/{dataset}/{path:path}")
    def thumb(dataset: str, path: str) -> Response:
        try:
            data = explorer.media.thumbnail(dataset, path)
        except NotServed:
            raise HTTPException(404, "not found") from None
        return Response(data, media_type="image/jpeg", headers=IMAGE_HEADERS)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "not found")
        return Response(static_text(name), media_type=STATIC[name], headers=HEADERS)

    return app
