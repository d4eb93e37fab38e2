"""The FastAPI app: chat WebSocket, REST, OpenAI-compatible /v1, pages, health and metrics.

`create_app(services)` takes ready services (tests pass a database and a scripted model);
`create_app()` builds them at start-up — database, embeddings and model loaded once — and logs
which LLM backend is active.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import html
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from agents.llm import model_health
from agents.personas import personas_without_tools
from core.errors import Conflict, DatabaseUnavailable, MentorError, NotFound
from core.settings import Settings, get_settings
from server import metrics
from server.auth import WORKER_HEADER, worker_name
from server.inbox import router as inbox_router
from server.inbox_ws import inbox_endpoint
from server.openai_api import router as openai_router
from server.rest import router as rest_router
from server.services import Services
from server.ws import chat_endpoint
from store.db import Database

log = logging.getLogger("mentor.app")
STATIC = Path(__file__).resolve().parent / "static"
SWAGGER = next(Path(swagger_ui_bundle.__file__).parent.glob("vendor/swagger-ui-*"))  # the packaged Swagger UI
# Pages run only our own scripts (no inline script), connect only to us, and cannot be framed; the
# widget is a script other sites include, not a frame. Inline <style> stays allowed (the widget's Shadow
# DOM carries its own). FastAPI's /docs loads Swagger UI from its own CDN and keeps FastAPI's defaults.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
CSP_EXEMPT = {"/docs", "/docs/oauth2-redirect", "/redoc"}


def build_services() -> Services:
    from agents.providers import get_provider
    from core.settings import get_settings
    from retrieval.embedder import get_embedder, use_embedding_process
    from store.db import Database
    from store.migrate import migrate

    settings = get_settings()
    db = Database.connect(settings, serving=True)
    migrate(db)
    db.warm()
    # The model in its own process (no GIL shared with the event loop), under ONNX Runtime, with half the
    # cores: the event loop and PostgreSQL need the rest (on this 2-core machine, in batches, one thread
    # costs 4.0 ms of CPU a question under torch and 2.0 ms under ONNX Runtime; two threads cost more).
    use_embedding_process(threads=max(1, (os.cpu_count() or 2) // 2), onnx_dir=settings.mentor_home / "models")
    get_embedder().embed_query("warm up")
    provider = get_provider(settings)
    log.info("LLM backend active", extra={"backend": provider.name})
    if settings.demo:
        log.warning("demo mode is on (MENTOR_DEMO=1): anyone who can reach this service may sign in as a demo user")
        ensure_demo_site(db, demo_origins(settings))
    return Services(settings=settings, db=db, provider=provider)


def demo_origins(settings: Settings) -> list[str]:
    """Where the demo widget page may be opened from: MENTOR_PUBLIC_URL, else this host and port."""
    if settings.public_url:
        return [settings.public_url.rstrip("/")]
    port = os.environ.get("MENTOR_PORT", "8000")
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


def worker_app() -> FastAPI:
    """The app in one of `mentor serve --workers N`'s worker processes (uvicorn imports it in each)."""
    from server import logs

    logs.configure()
    return create_app(tune_gc=True)


def create_app(services: Services | None = None, tune_gc: bool = False) -> FastAPI:
    """`tune_gc`: the process is a serving worker (`mentor serve`): once started, tune its garbage
    collector for streaming (server/gc_tuning.py). Tests' in-process apps leave the test runner's alone."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if getattr(app.state, "services", None) is None:
            app.state.services = await asyncio.to_thread(build_services)
        await app.state.services.start()
        if tune_gc:
            from server.gc_tuning import tune_gc as tune

            tune()
        try:
            yield
        finally:
            await app.state.services.stop()

    app = FastAPI(title="mentor", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="AI mentor and chat-agent service. WebSocket protocol: /docs/protocol "
                              "(docs/protocol.md in the repository).")
    app.state.services = services
    trusted = (services.settings if services else get_settings()).trusted_proxies
    if trusted:  # the client's address from the balancer's X-Forwarded-For, only when the peer is one of these
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
    app.include_router(rest_router)
    app.include_router(inbox_router)
    app.include_router(openai_router)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        message = f"{where}: {first.get('msg', 'invalid')}"
        if request.url.path.startswith("/v1/"):  # the shape OpenAI clients parse, naming the parameter
            param = _openai_param(first.get("loc", ()))
            if first.get("type") == "json_invalid":
                message, param = "the body is not valid JSON", None
            elif param:
                message = f"{param}: {first.get('msg', 'invalid')}"
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                           "code": "invalid_body"}}, status_code=400)
        return JSONResponse({"detail": {"code": "invalid_request", "message": message}}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """/v1 answers in the shape OpenAI clients parse ({"error": {...}}); other paths keep {"detail": ...}."""
        if not request.url.path.startswith("/v1/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        detail = exc.detail
        if isinstance(detail, dict) and "error" in detail:
            error = detail["error"]
        elif isinstance(detail, dict):
            error = {"message": detail.get("message", str(detail)), "type": "invalid_request_error",
                     "code": detail.get("code", f"http_{exc.status_code}")}
        else:
            error = {"message": str(detail), "type": "invalid_request_error",
                     "code": "invalid_body" if exc.status_code == 400 else f"http_{exc.status_code}"}
        return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        message = "the body is nested too deeply"
        if request.url.path.startswith("/v1/"):
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                           "code": "invalid_body"}}, status_code=400)
        return JSONResponse({"detail": {"code": "invalid_request", "message": message}}, status_code=400)

    @app.exception_handler(MentorError)
    async def mentor_error(request: Request, exc: MentorError) -> JSONResponse:
        status = 503 if isinstance(exc, DatabaseUnavailable) else 404 if isinstance(exc, NotFound) \
            else 409 if isinstance(exc, Conflict) else 400
        body = {"code": exc.code, "message": str(exc), "retryable": getattr(exc, "retryable", False)}
        if request.url.path.startswith("/v1/"):
            return JSONResponse({"error": {"message": str(exc), "type": "server_error" if status == 503
                                           else "invalid_request_error", "code": exc.code}}, status_code=status)
        return JSONResponse({"detail": body}, status_code=status)

    @app.middleware("http")
    async def request_log(request: Request, call_next):  # type: ignore[no-untyped-def]
        given = request.headers.get("x-request-id", "")
        request_id = given if given.isalnum() and len(given) <= 64 else uuid.uuid4().hex[:16]  # no log injection
        started = time.perf_counter()
        services: Services | None = request.app.state.services
        limit = services.settings.max_body_bytes if services else 262_144
        if "\x00" in request.url.path:
            response: Response = JSONResponse({"detail": {"code": "not_found", "message": "no such path"}},
                                              status_code=404)
        elif int(request.headers.get("content-length") or 0) > limit:
            response = JSONResponse({"error": {"message": f"the body is larger than {limit} bytes",
                                               "type": "invalid_request_error", "code": "body_too_large"}}
                                    if request.url.path.startswith("/v1/") else
                                    {"detail": {"code": "body_too_large",
                                                "message": f"the body is larger than {limit} bytes"}},
                                    status_code=413)
        else:
            response = await call_next(request)
        response.headers["x-request-id"] = request_id
        response.headers[WORKER_HEADER] = worker_name()
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.url.path not in CSP_EXEMPT:
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Frame-Options"] = "DENY"
        log.info("request", extra={"request_id": request_id, "path": request.url.path,
                                   "client": request.client.host if request.client else None,
                                   "status": response.status_code,
                                   "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
        return response

    @app.websocket("/ws/chat")
    async def ws_chat(websocket: WebSocket) -> None:
        await chat_endpoint(websocket, websocket.app.state.services)

    @app.websocket("/ws/inbox")
    async def ws_inbox(websocket: WebSocket) -> None:
        await inbox_endpoint(websocket, websocket.app.state.services)

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness for the balancer: answered on the event loop itself (a plain `def` would wait for a
        thread and a second pass of a busy loop), so it measures what it should — that the loop runs."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Ready = the database answers and the model can: its endpoint is reachable and serves the configured
        model (a probe of its models list at most every 5 s, or the last request's outcome if newer), with
        whether its chat template can do tools and which personas lose them if not."""
        s: Services | None = request.app.state.services
        if s is None:
            return JSONResponse({"ready": False, "database": False, "model": False, "backend": None}, 503)
        database = await asyncio.to_thread(s.db.ping)
        health = await model_health(s.provider)
        ready = database and health.ok
        return JSONResponse({"ready": ready, "database": database, "model": health.ok, "backend": s.provider.name,
                             "model_detail": {**dataclasses.asdict(health),
                                              "personas_without_tools": personas_without_tools(health.tools)}},
                            status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        """Prometheus metrics; with MENTOR_METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
        wanted = request.app.state.services.settings.metrics_token
        given = request.headers.get("authorization", "")
        if wanted and not hmac.compare_digest(given.encode(), f"Bearer {wanted}".encode()):
            return JSONResponse({"detail": {"code": "unauthorized", "message": "metrics need the metrics token"}},
                                status_code=401)
        from store.handoffs import queue_length

        # the queue is in the database: every worker reports the same figure (if it is away, the last one)
        with contextlib.suppress(MentorError):
            metrics.HANDOFF_QUEUE.set(queue_length(request.app.state.services.db))
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/inbox", response_class=HTMLResponse)
    def inbox_page() -> FileResponse:
        """The support agents' inbox (the API behind it checks the role; the page itself is static)."""
        return FileResponse(STATIC / "inbox.html")

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            return JSONResponse({"code": "not_found", "message": "no such file"}, status_code=404)
        # the widget imports these modules from other sites' pages
        return FileResponse(path, headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})

    @app.get("/knowledge/{source:path}", response_class=HTMLResponse)
    def knowledge(source: str, request: Request) -> HTMLResponse:
        """A cited document from a public corpus, one section per chunk with its anchor, so citations link to it."""
        s: Services = request.app.state.services
        chunks = []
        if "\x00" not in source and len(source) <= 500:
            with s.db.as_user(None) as conn:
                chunks = conn.execute(
                    """SELECT k.title, k.section, k.anchor, k.text FROM chunks k JOIN corpora c ON c.name = k.corpus
                       WHERE k.source = %s AND c.public ORDER BY k.ordinal""", (source,)).fetchall()
        if not chunks:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        parts, seen = ['<p><a href="/" class="back">← back to the chat</a></p>',
                       f"<h1>{html.escape(chunks[0]['title'])}</h1>"], set()
        for c in chunks:
            if c["anchor"] not in seen:
                if seen:
                    parts.append("</section>")
                seen.add(c["anchor"])
                # a section element per anchor: the cited one is highlighted through :target
                parts.append(f'<section id="{html.escape(c["anchor"])}" tabindex="-1">'
                             f'<h2>{html.escape(c["section"])}</h2>')
            body = c["text"].split("\n\n", 1)[-1]
            parts.append("".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n")))
        parts.append("</section>" if seen else "")
        return HTMLResponse(_page(chunks[0]["title"], "".join(parts)))

    @app.get("/widget.js")
    def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.js", media_type="application/javascript",
                            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})

    @app.get("/widget/demo", response_class=HTMLResponse)
    def widget_demo(request: Request) -> HTMLResponse:
        """A host page embedding the widget (demo mode only). The demo site's origins were registered at
        start-up from configuration (MENTOR_PUBLIC_URL); nothing a request says changes them."""
        s: Services = request.app.state.services
        if not s.settings.demo:
            raise HTTPException(404, detail={"code": "not_found", "message": "the widget demo needs MENTOR_DEMO=1"})
        with s.db.service() as conn:
            site = conn.execute("SELECT site_key, origins FROM sites WHERE name = 'demo'").fetchone()
        origin = f"{request.url.scheme}://{request.url.netloc}"
        if site is None or origin not in site["origins"]:
            raise HTTPException(404, detail={"code": "not_found", "message": f"{origin} is not the demo site's "
                                             "origin; set MENTOR_PUBLIC_URL to the address you open"})
        page = (STATIC / "widget_demo.html").read_text().replace("{{SITE_KEY}}", site["site_key"])
        return HTMLResponse(page.replace("{{ORIGIN}}", html.escape(origin)))

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        """Swagger UI from the swagger-ui-bundle package: works with no internet."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mentor API",
                                   swagger_js_url="/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/swagger/swagger-ui.css", swagger_favicon_url="/favicon.ico")

    @app.get("/swagger/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> Response:
        path = (SWAGGER / name).resolve()
        if path.parent != SWAGGER or not path.is_file():
            return JSONResponse({"detail": {"code": "not_found", "message": "no such file"}}, status_code=404)
        return FileResponse(path, headers={"Cache-Control": "max-age=86400"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs/protocol", response_class=HTMLResponse)
    def protocol_doc() -> HTMLResponse:
        """docs/protocol.md as a page (raw HTML in the Markdown is escaped, not rendered)."""
        from markdown_it import MarkdownIt

        doc = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(doc.read_text())
        return HTMLResponse(_page("WebSocket protocol", f'<p><a href="/">← back to the chat</a></p>{body}'))

    return app


def _openai_param(loc: tuple | list) -> str | None:
    """A validation error's place as OpenAI names parameters: `max_tokens`, `messages[2].content`."""
    path = list(loc[1:])
    if not path or not isinstance(path[0], str):
        return None
    param = path[0]
    if param == "messages" and len(path) > 1 and isinstance(path[1], int):
        param += f"[{path[1]}]"
        if len(path) > 2 and path[2] in ("role", "content"):
            param += f".{path[2]}"
    return param


def _page(title: str, body: str) -> str:
    """A plain document page in the site's style (citations, the protocol)."""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)} · Mentor</title><link rel="icon" href="/favicon.ico">'
            '<link rel="stylesheet" href="/static/style.css"></head>'
            f'<body class="document"><main class="doc">{body}</main></body></html>')


def ensure_demo_site(db: Database, origins: list[str]) -> str:
    """The demo site with exactly these origins (configuration, at start-up, as the owner)."""
    with db.admin() as conn:
        row = conn.execute("SELECT site_key FROM sites WHERE name = 'demo'").fetchone()
        if row is not None:
            conn.execute("UPDATE sites SET origins = %s WHERE name = 'demo'", (origins,))
            return row["site_key"]
    from server.auth import add_site

    return add_site(db, "demo", origins, first_party=True)["site_key"]  # the service's own page
