"""Every error in the shape of its API family, from one place: `/v1/...` in OpenAI's shape
(`{"error": {"message", "type", "param", "code"}}`, which the official client parses), everything else as
`{"detail": {"code", "message"}}`. Each carries the request id (also in the `x-request-id` header), so a
user's report finds the log line; typed errors answer their own `http_status` (core/errors.py), and
anything unexpected answers 500 in the same shape — never a bare text page or a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import MentorError

log = logging.getLogger("mentor.app")


def openai_family(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def error_response(request: Request, status: int, code: str, message: str, *, param: str | None = None,
                   retryable: bool | None = None, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    if openai_family(request):
        kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
        error = {"message": message, "type": kind, "param": param, "code": code, **(extra or {}),
                 "request_id": request_id}
        return JSONResponse({"error": error}, status_code=status, headers=headers)
    detail = {"code": code, "message": message, **({"retryable": retryable} if retryable is not None else {}),
              **(extra or {}), "request_id": request_id}
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def openai_param(loc: tuple | list) -> str | None:
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


async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    if openai_family(request):  # 400 naming the parameter, as OpenAI-compatible servers answer
        param = openai_param(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            return error_response(request, 400, "invalid_body", "the body is not valid JSON")
        message = f"{param}: {first.get('msg', 'invalid')}" if param else first.get("msg", "invalid")
        return error_response(request, 400, "invalid_body", message, param=param)
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    return error_response(request, 422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Routes that raise with a detail of their own (the `/v1` refusals name their parameter) keep it."""
    detail = exc.detail
    if isinstance(detail, dict) and "error" in detail and openai_family(request):
        body = {**detail, "error": {**detail["error"], "request_id": getattr(request.state, "request_id", None)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    if isinstance(detail, dict):
        return error_response(request, exc.status_code, str(detail.get("code", f"http_{exc.status_code}")),
                              str(detail.get("message", detail)), headers=exc.headers)
    code = "not_found" if exc.status_code == 404 else "invalid_body" if exc.status_code == 400 \
        else f"http_{exc.status_code}"
    return error_response(request, exc.status_code, code, str(detail), headers=exc.headers)


async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
    return error_response(request, 400, "invalid_body" if openai_family(request) else "invalid_request",
                          "the body is nested too deeply")


async def typed_error(request: Request, exc: MentorError) -> JSONResponse:
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return error_response(request, exc.http_status, exc.code, str(exc), retryable=exc.retryable, headers=headers,
                          extra={"retry_after": retry_after} if retry_after is not None else None)


def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged whole with the request id; the client gets the family's shape and that id."""
    log.error("request failed", exc_info=exc, extra={"request_id": getattr(request.state, "request_id", None),
                                                     "path": request.url.path})
    return error_response(request, 500, "internal", "something went wrong on our side; quote the request id if "
                          "you report it", retryable=True)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(MentorError, typed_error)
