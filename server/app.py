"""The FastAPI app: chat WebSocket, REST, OpenAI-compatible /v1, pages, health and metrics.

`create_app(services)` takes ready services (tests pass a database and a scripted model);
`create_app()` builds them at start-up — database, embeddings and model loaded once — and logs
which LLM backend is active.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server import metrics
from server.openai_api import router as openai_router
from server.rest import router as rest_router
from server.services import Services
from server.ws import chat_endpoint
from store.errors import DatabaseUnavailable, MentorError, NotFound

log = logging.getLogger("mentor.app")
STATIC = Path(__file__).resolve().parent / "static"


def build_services() -> Services:
    from agents.llm import get_provider
    from retrieval.embedder import get_embedder
    from store.db import Database
    from store.migrate import migrate
    from store.settings import get_settings

    settings = get_settings()
    db = Database.connect(settings)
    migrate(db)
    get_embedder().embed_query("warm up")
    provider = get_provider(settings)
    log.info("LLM backend active", extra={"backend": provider.name})
    return Services(settings=settings, db=db, provider=provider)


def create_app(services: Services | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if getattr(app.state, "services", None) is None:
            app.state.services = await asyncio.to_thread(build_services)
        yield

    app = FastAPI(title="mentor", version="0.1.0", lifespan=lifespan,
                  description="AI mentor and chat-agent service. WebSocket protocol: /docs/protocol "
                              "(docs/protocol.md in the repository).")
    app.state.services = services
    app.include_router(rest_router)
    app.include_router(openai_router)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        message = f"{where}: {first.get('msg', 'invalid')}"
        if request.url.path.startswith("/v1/"):  # the shape OpenAI clients parse
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                           "code": "invalid_body"}}, status_code=400)
        return JSONResponse({"detail": {"code": "invalid_request", "message": message}}, status_code=422)

    @app.exception_handler(MentorError)
    async def mentor_error(request: Request, exc: MentorError) -> JSONResponse:
        status = 503 if isinstance(exc, DatabaseUnavailable) else 404 if isinstance(exc, NotFound) else 400
        body = {"code": exc.code, "message": str(exc), "retryable": getattr(exc, "retryable", False)}
        if request.url.path.startswith("/v1/"):
            return JSONResponse({"error": {"message": str(exc), "type": "server_error" if status == 503
                                           else "invalid_request_error", "code": exc.code}}, status_code=status)
        return JSONResponse({"detail": body}, status_code=status)

    @app.middleware("http")
    async def request_log(request: Request, call_next):  # type: ignore[no-untyped-def]
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        log.info("request", extra={"request_id": request_id, "path": request.url.path,
                                   "status": response.status_code,
                                   "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
        return response

    @app.websocket("/ws/chat")
    async def ws_chat(websocket: WebSocket) -> None:
        await chat_endpoint(websocket, websocket.app.state.services)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(request: Request) -> JSONResponse:
        s: Services | None = request.app.state.services
        checks = {"database": False, "model": False}
        if s is not None:
            checks["database"] = s.db.ping()
            checks["model"] = s.provider is not None
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks, "backend": s.provider.name if s else None},
                            status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            return JSONResponse({"code": "not_found", "message": "no such file"}, status_code=404)
        # the widget imports these modules from other sites' pages
        return FileResponse(path, headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})

    @app.get("/knowledge/{source:path}", response_class=HTMLResponse)
    def knowledge(source: str, request: Request) -> HTMLResponse:
        """A cited document, one section per chunk with its anchor, so citations can link to it."""
        s: Services = request.app.state.services
        with s.db.as_user(None) as conn:
            chunks = conn.execute("SELECT title, section, anchor, text FROM chunks WHERE source = %s ORDER BY ordinal",
                                  (source,)).fetchall()
        if not chunks:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        parts, seen = [f"<h1>{html.escape(chunks[0]['title'])}</h1>"], set()
        for c in chunks:
            if c["anchor"] not in seen:
                seen.add(c["anchor"])
                parts.append(f'<h2 id="{html.escape(c["anchor"])}">{html.escape(c["section"])}</h2>')
            body = c["text"].split("\n\n", 1)[-1]
            parts.append("".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n")))
        return HTMLResponse('<!doctype html><meta charset="utf-8"><link rel="stylesheet" href="/static/style.css">'
                            f'<body style="max-width:760px;margin:2rem auto">{"".join(parts)}</body>')

    @app.get("/widget.js")
    def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.js", media_type="application/javascript",
                            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})

    @app.get("/widget/demo", response_class=HTMLResponse)
    def widget_demo(request: Request) -> HTMLResponse:
        """A host page embedding the widget; in demo mode its own origin is registered on the fly."""
        s: Services = request.app.state.services
        origin = f"{request.url.scheme}://{request.url.netloc}"
        key = ensure_demo_site(s, origin) if s.settings.demo_login else "SITE_KEY"
        html = (STATIC / "widget_demo.html").read_text().replace("{{SITE_KEY}}", key).replace("{{ORIGIN}}", origin)
        return HTMLResponse(html)

    @app.get("/docs/protocol", response_class=HTMLResponse)
    def protocol_doc() -> Response:
        doc = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
        return Response(doc.read_text(), media_type="text/markdown")

    return app


def ensure_demo_site(s: Services, origin: str) -> str:
    with s.db.admin() as conn:
        row = conn.execute("SELECT site_key, origins FROM sites WHERE name = 'demo'").fetchone()
        if row is None:
            from server.auth import add_site

            return add_site(s.db, "demo", [origin])["site_key"]
        if origin not in row["origins"]:
            conn.execute("UPDATE sites SET origins = array_append(origins, %s) WHERE name = 'demo'", (origin,))
        return row["site_key"]
