"""The pages: the chat page and the inbox (static), cited documents and the protocol (templates), the
widget and its demo host page, Swagger UI served from its package (works offline)."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from core.errors import NotFound
from server.deps import Svc

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "static"
TEMPLATES = Jinja2Templates(directory=ROOT / "templates")  # autoescaped: no text reaches a page unescaped
SWAGGER = next(Path(swagger_ui_bundle.__file__).parent.glob("vendor/swagger-ui-*"))  # the packaged Swagger UI
PROTOCOL_DOC = ROOT.parent / "docs" / "protocol.md"
# the widget's script and modules are loaded by other sites' pages, and must be fresh after a deploy
CROSS_SITE = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


class WidgetAssets(StaticFiles):
    """/static: files other sites' pages import (the widget's modules), so each carries CROSS_SITE."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(CROSS_SITE)
        return response


def static_files() -> WidgetAssets:
    return WidgetAssets(directory=STATIC)


@router.get("/", response_class=HTMLResponse)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page() -> FileResponse:
    """The support agents' inbox (the API behind it checks the role; the page itself is static)."""
    return FileResponse(STATIC / "inbox.html")


@router.get("/admin", response_class=HTMLResponse)
def admin_page() -> FileResponse:
    """The operator's page: figures, charts, knowledge gaps (the API behind it is for admins only)."""
    return FileResponse(STATIC / "admin.html")


@router.get("/knowledge/{source:path}", response_class=HTMLResponse)
def knowledge(source: str, request: Request, s: Svc) -> Response:
    """A cited document from a public corpus, one section per anchor, so citations link to it."""
    chunks = []
    if "\x00" not in source and len(source) <= 500:
        with s.db.as_user(None) as conn:
            chunks = conn.execute(
                """SELECT k.title, k.section, k.anchor, k.text FROM chunks k JOIN corpora c ON c.name = k.corpus
                   WHERE k.source = %s AND c.public ORDER BY k.ordinal""", (source,)).fetchall()
    if not chunks:
        return TEMPLATES.TemplateResponse(request, "not_found.html", {
            "title": "Not found", "message": "No public document has this address."}, status_code=404)
    from markdown_it import MarkdownIt

    # the operator's own documents, as Markdown (links, emphasis, lists); raw HTML in them stays escaped
    render = MarkdownIt("commonmark", {"html": False}).enable("table").render
    sections = [{"anchor": anchor, "title": group[0]["section"],
                 "html": render("\n\n".join(c["text"].split("\n\n", 1)[-1] for c in group))}
                for anchor, group in ((a, list(g)) for a, g in groupby(chunks, key=lambda c: c["anchor"]))]
    return TEMPLATES.TemplateResponse(request, "knowledge.html", {"title": chunks[0]["title"], "sections": sections})


@router.get("/docs/protocol", response_class=HTMLResponse)
def protocol_doc(request: Request) -> Response:
    """docs/protocol.md as a page (raw HTML in the Markdown is escaped, not rendered)."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(PROTOCOL_DOC.read_text())
    return TEMPLATES.TemplateResponse(request, "document.html", {"title": "WebSocket protocol", "html": html})


@router.get("/widget.js")
def widget() -> FileResponse:
    return FileResponse(STATIC / "widget.js", media_type="application/javascript", headers=CROSS_SITE)


@router.get("/widget/demo", response_class=HTMLResponse)
def widget_demo(request: Request, s: Svc) -> Response:
    """A host page embedding the widget (demo mode only). The demo site's origins were registered at
    start-up from configuration (MENTOR_PUBLIC_URL); nothing a request says changes them."""
    if not s.settings.demo:
        raise NotFound("the widget demo needs MENTOR_DEMO=1")
    with s.db.service() as conn:
        site = conn.execute("SELECT site_key, origins FROM sites WHERE name = 'demo'").fetchone()
    origin = f"{request.url.scheme}://{request.url.netloc}"
    if site is None or origin not in site["origins"]:
        raise NotFound(f"{origin} is not the demo site's origin; set MENTOR_PUBLIC_URL to the address you open")
    return TEMPLATES.TemplateResponse(request, "widget_demo.html", {"origin": origin, "site_key": site["site_key"]})


@router.get("/docs")
def swagger() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="mentor API",
                               swagger_js_url="/swagger/swagger-ui-bundle.js",
                               swagger_css_url="/swagger/swagger-ui.css", swagger_favicon_url="/favicon.ico")


@router.get("/swagger/{name}")
def swagger_asset(name: str) -> FileResponse:
    path = (SWAGGER / name).resolve()
    if path.parent != SWAGGER or not path.is_file():
        raise NotFound("no such file")
    return FileResponse(path, headers={"Cache-Control": "max-age=86400"})


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
