"""`mentor serve`: the web service under uvicorn, one worker or several."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer

from cli.common import app, handle_errors, open_db
from core.errors import InvalidArgument


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn's process manager restarts any that "
                                              "die); they share one PostgreSQL.", min=1, max=64)] = 1,
) -> None:
    """Start the web service (chat page, widget, WebSocket, REST, /v1) under uvicorn."""
    import socket

    import uvicorn

    from server import logs

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidArgument(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    logs.configure()
    os.environ["MENTOR_PORT"] = str(port)  # the demo site's default origin (MENTOR_PUBLIC_URL overrides it)
    # uvicorn shuts down on SIGTERM, then re-raises it under the handler it found: make that a normal exit,
    # so exit hooks run (the embedded PostgreSQL this process started is stopped, not left behind)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # Token frames are a few bytes: per-message deflate costs CPU on every frame and saves nothing.
    # The client's address behind a balancer is the app's decision (MENTOR_TRUSTED_PROXIES, server/app.py),
    # not uvicorn's default trust of X-Forwarded-For from 127.0.0.1.
    options = dict(host=host, port=port, log_config=None, ws="websockets-sansio", ws_per_message_deflate=False,
                   proxy_headers=False)
    if workers == 1:
        from server.app import create_app

        uvicorn.run(create_app(tune_gc=True), **options)
        return
    _prepare_shared_database()
    # Each of several workers on one host does best with fewer setup slots than a lone worker: on 2 cores,
    # --workers 2, 64 each beat both 48 and 96 each in every pair run back to back (burst_pairs.py).
    os.environ.setdefault("MENTOR_TURN_SETUP_SLOTS", "64")
    uvicorn.run("server.app:worker_app", factory=True, workers=workers, **options)


def _prepare_shared_database() -> None:
    """Before the workers start: one database for all of them (the embedded one is started here, once, and
    handed to them as DATABASE_URL), migrated once, the demo site registered once."""
    from core.settings import get_settings
    from server.demo import demo_origins, ensure_demo_site
    from store.migrate import migrate

    settings = get_settings()
    database = open_db()
    migrate(database)
    if settings.demo:
        ensure_demo_site(database, demo_origins(settings))
    os.environ["DATABASE_URL"] = database.url
    get_settings.cache_clear()
