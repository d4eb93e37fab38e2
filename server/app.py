"""The FastAPI app, assembled: routers per resource (server/routes/), middleware, one error handler per API
family (server/errors.py). Nothing else lives here.

`create_app(services)` takes ready services (tests pass a database and a scripted model); `create_app()`
builds them at start-up — database, embeddings and model loaded once — and logs which backend is active.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.settings import get_settings
from server import errors, middleware
from server.demo import demo_origins, ensure_demo_site
from server.routes import admin, api, health, inbox, knowledge, openai, pages, sockets
from server.services import Services

log = logging.getLogger("mentor.app")


def build_services() -> Services:
    from agents.providers import get_provider
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


def worker_app() -> FastAPI:
    """The app in one of `mentor serve --workers N`'s worker processes (uvicorn imports it in each)."""
    from server import logs

    logs.configure()
    return create_app(tune_gc=True)


def create_app(services: Services | None = None, tune_gc: bool = False) -> FastAPI:
    """`tune_gc`: the process is a serving worker (`mentor serve`): once started, tune its garbage
    collector for streaming (server/gc_tuning.py). Tests' in-process apps leave the test runner's alone."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
    for router in (api.router, admin.router, knowledge.router, inbox.router, openai.router, health.router,
                   sockets.router, pages.router):
        app.include_router(router)
    app.mount("/static", pages.static_files(), name="static")
    errors.install(app)
    middleware.install(app, services.settings if services else get_settings())
    return app
