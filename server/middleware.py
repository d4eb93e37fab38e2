"""Around every HTTP request: a request id, the body-size cap, the security headers, one log line, and —
for anything a route did not expect — a typed 500 that still carries the id and the headers."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from core.settings import Settings
from server.auth import WORKER_HEADER, worker_name
from server.errors import error_response, unexpected

log = logging.getLogger("mentor.app")
# Pages run only our own scripts (no inline script), connect only to us, and cannot be framed; the
# widget is a script other sites include, not a frame. Inline <style> stays allowed (the widget's Shadow
# DOM carries its own). FastAPI's /docs loads Swagger UI from its own CDN and keeps FastAPI's defaults.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
UPLOAD_PATH = "/api/knowledge"  # POST: multipart files (server/routes/knowledge.py)
UPLOAD_FILES_PER_BODY = 4
CSP_EXEMPT = {"/docs", "/docs/oauth2-redirect", "/redoc"}


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if given.isalnum() and len(given) <= 64 else uuid.uuid4().hex[:16]  # no log injection


async def around_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    request.state.request_id = request_id_of(request)
    started = time.perf_counter()
    services = request.app.state.services
    limit = services.settings.max_body_bytes if services else 262_144
    upload = request.method == "POST" and request.url.path == UPLOAD_PATH
    if upload and services:  # files (each up to MENTOR_UPLOAD_MAX_BYTES, named when over) in one body
        limit = services.settings.upload_max_bytes * UPLOAD_FILES_PER_BODY
    if "\x00" in request.url.path:
        response: Response = error_response(request, 404, "not_found", "no such path")
    elif not request.headers.get("content-length") and (upload or "transfer-encoding" in request.headers):
        # a body without a length (chunked) would be read whole before any size check or authentication
        response = error_response(request, 411, "length_required", "a request body needs a Content-Length")
    elif not (request.headers.get("content-length") or "0").isdigit():
        response = error_response(request, 400, "invalid_body", "Content-Length must be a number")
    elif int(request.headers.get("content-length") or 0) > limit:
        response = error_response(request, 413, "body_too_large", f"the body is larger than {limit} bytes")
    else:
        try:
            response = await call_next(request)
        except Exception as exc:  # a bug: typed, with the id and the headers, never a bare 500
            response = unexpected(request, exc)
    response.headers["x-request-id"] = request.state.request_id
    response.headers[WORKER_HEADER] = worker_name()
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.url.path not in CSP_EXEMPT:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
    log.info("request", extra={"request_id": request.state.request_id, "path": request.url.path,
                               "client": request.client.host if request.client else None,
                               "status": response.status_code,
                               "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
    return response


def install(app: FastAPI, settings: Settings) -> None:
    app.middleware("http")(around_request)
    if settings.trusted_proxies:  # the client's address from the balancer's X-Forwarded-For, only from these
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
