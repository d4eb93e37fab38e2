"""The model's streaming POST straight over aiohttp, with the openai client's retry rules.

Why not the `openai` client here: measured alone, its request path (request options, httpx request
and headers, cookies, the transport adapter) costs ~0.8 ms of CPU per request against ~0.17 ms for an
aiohttp POST, and each streamed chunk passes through three line/text/byte iterators of its own. Under a
burst of 300 turns on one worker that was ~19% of the event loop's samples (py-spy, `--tokens 1`). What
the client gave us is kept: timeouts, retries on connection errors, 408/409/429/5xx with exponential
backoff and jitter (0.5 s doubling to 8 s) or the server's `retry-after`, and its error categories.
The `httpx` transport (MENTOR_LLM_HTTP=httpx) still goes through the `openai` client; respx, the tests'
HTTP double, intercepts that one. This one is exercised against a real local server (tests/test_faults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

INITIAL_RETRY_DELAY_S, MAX_RETRY_DELAY_S = 0.5, 8.0
RETRY_STATUSES = frozenset({408, 409, 429})


class EndpointError(Exception):
    """What went wrong, in the categories the provider maps to typed errors."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        # "status" | "unreachable" | "timeout" (no first byte in time) | "broken" (mid-stream) | "failed"
        self.kind = kind
        self.status = status


def _should_retry(response: aiohttp.ClientResponse) -> bool:
    hint = response.headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return response.status in RETRY_STATUSES or response.status >= 500


def retry_delay(attempt: int, headers: Any = None) -> float:
    """The server's `retry-after(-ms)` when it is a sane wait (0-60 s), else exponential backoff with jitter."""
    headers = headers or {}
    wait: float | None = None
    try:
        if headers.get("retry-after-ms"):
            wait = float(headers["retry-after-ms"]) / 1000
        elif headers.get("retry-after"):
            value = headers["retry-after"]
            try:
                wait = float(value)
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(value)
                wait = parsed.timestamp() - time.time()
    except (TypeError, ValueError):
        wait = None
    if wait is not None and 0 < wait <= 60:
        return wait
    return min(INITIAL_RETRY_DELAY_S * 2 ** attempt, MAX_RETRY_DELAY_S) * (1 - 0.25 * random.random())


def _status_message(status: int, body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
        detail = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        detail = None
    text = str(detail) if detail else body.decode(errors="replace").strip()
    return (text.splitlines()[0] if text else "no details")[:200]


class ChatEndpoint:
    """POST {base_url}/chat/completions and yield the response's lines; one aiohttp session per event loop."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float, max_retries: int) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                        "Accept": "text/event-stream"}
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        self.timeout_s, self.max_retries = timeout_s, max_retries
        # an HTTP(S)_PROXY / NO_PROXY from the environment, looked up once: a session that trusts the
        # environment does it (and a ~/.netrc lookup) on a thread for every request
        self.proxy: dict[str, Any] = {}
        with contextlib.suppress(LookupError):
            proxy, proxy_auth = get_env_proxy_for_url(URL(self.url))
            self.proxy = {"proxy": proxy, "proxy_auth": proxy_auth}
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary())

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # no connection limit: every streaming answer holds one connection for its whole length
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30), timeout=self.timeout,
                cookie_jar=aiohttp.DummyCookieJar())  # an API: no cookies to keep
            from agents.aio import on_loop_close

            on_loop_close(loop, session.close)
        return session

    def warm_up(self) -> None:
        self._session()

    async def _open(self, body: bytes) -> aiohttp.ClientResponse:
        """The response's headers, within one deadline (the timeout) for every attempt and wait together.

        Retried: a connection refused or reset, 408/409/429/5xx — the request did not run, or says to come
        back. Not retried: no first byte within the deadline — the model may be working on it, and a second
        copy would only queue behind it; that is one timeout error, however many retries are allowed."""
        session, attempt = self._session(), 0
        deadline = time.monotonic() + self.timeout_s
        while True:
            last = attempt >= self.max_retries
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    response = await session.post(self.url, data=body, headers=self.headers, **self.proxy)
            except TimeoutError:
                raise EndpointError("timeout", f"no response within {self.timeout_s:g} s") from None
            except aiohttp.ClientConnectionError as exc:
                delay = retry_delay(attempt)
                if last or time.monotonic() + delay >= deadline:
                    raise EndpointError("unreachable", str(exc) or type(exc).__name__) from None
                await asyncio.sleep(delay)
                attempt += 1
                continue
            except aiohttp.ClientError as exc:  # e.g. an invalid URL or a malformed response: retrying cannot help
                raise EndpointError("failed", str(exc) or type(exc).__name__) from None
            if response.status < 400:
                return response
            try:
                detail = await response.content.read(4096)
            except (aiohttp.ClientError, TimeoutError):
                detail = b""
            response.close()
            delay = retry_delay(attempt, response.headers)
            if last or not _should_retry(response) or time.monotonic() + delay >= deadline:
                raise EndpointError("status", _status_message(response.status, detail), response.status)
            await asyncio.sleep(delay)
            attempt += 1

    async def lines(self, payload: dict[str, Any]) -> AsyncIterator[str]:
        """The response body's lines (server-sent events), read as they arrive; closed when the caller stops."""
        response = await self._open(orjson.dumps(payload))
        received = False
        try:
            pending = b""
            async for data in response.content.iter_any():
                received = True
                pending += data
                if b"\n" in pending:
                    *complete, pending = pending.split(b"\n")
                    for line in complete:
                        yield line.decode()
            if pending:
                yield pending.decode()
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not received and isinstance(exc, TimeoutError):  # headers came, then nothing (llama-server
                raise EndpointError("timeout", f"no data within {self.timeout_s:g} s") from None  # sends them first)
            raise EndpointError("broken", str(exc) or type(exc).__name__) from None
        finally:
            if response.content.at_eof():
                response.release()  # read to the end: the connection goes back for the next request
            else:
                response.close()
