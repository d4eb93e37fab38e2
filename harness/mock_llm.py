"""A local OpenAI-compatible chat endpoint whose timing and failures we control.

Benchmarks need a model whose own part is known (first token after `ttft` seconds, then `rate`
tokens per second, each token distinct so a client can check none was lost or reordered); the fault
tests need one that times out, answers 429 or 500, drops the stream mid-answer or sends a malformed
tool call. Behaviours are queued per request with `POST /_mock/script {"behaviours": [...]}`; with
the queue empty every request streams the normal answer.

    python -m harness.mock_llm --port 8911 --tokens 200 --rate 50 --ttft 0.05

Then point the service at it: `OPENAI_BASE_URL=http://127.0.0.1:8911/v1 MENTOR_LLM=openai`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# timeout: no answer at all; silent: headers at once, then no data (llama-server answers so while it reads a
# long prompt)
Behaviour = Literal["ok", "timeout", "silent", "400", "429", "500", "drop", "bad_tool"]


def token_text(index: int) -> str:
    """The i-th streamed token: distinct, so order and completeness can be checked from the text."""
    return f" w{index}"


def expected_answer(tokens: int) -> str:
    return "".join(token_text(i) for i in range(tokens))


class Script(BaseModel):
    behaviours: list[Behaviour] = Field(default_factory=list, max_length=1000)


@dataclass
class MockLLM:
    tokens: int = 200
    rate: float = 50.0  # tokens per second after the first
    ttft: float = 0.05  # seconds from request to first token
    cached_tokens: int = 0  # of the 100 prompt tokens, reported as read from a prompt cache (OpenAI's usage)
    queue: deque[str] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_behaviour(self) -> str:
        with self.lock:
            return self.queue.popleft() if self.queue else "ok"

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self.completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/_mock/script", self.script, methods=["POST"]),
            Route("/_mock/stats", self.stats, methods=["GET"]),
        ])

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "mock", "object": "model", "owned_by": "mock"}]})

    async def script(self, request: Request) -> Response:
        body = Script.model_validate(await request.json())
        with self.lock:
            self.queue.extend(body.behaviours)
        return JSONResponse({"queued": len(self.queue)})

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"requests": len(self.requests), "queued": len(self.queue)})

    async def completions(self, request: Request) -> Response:
        arrived = time.perf_counter()
        body = await request.json()
        if body.get("model") != "mock":  # as OpenAI and vLLM answer a model they do not serve
            return JSONResponse({"error": {"message": f"The model `{body.get('model')}` does not exist (mock)",
                                           "type": "invalid_request_error", "code": "model_not_found"}},
                                status_code=404)
        behaviour = self.next_behaviour()
        with self.lock:
            self.requests.append({"behaviour": behaviour, "messages": len(body.get("messages", []))})
        if behaviour == "429":
            return JSONResponse({"error": {"message": "rate limited (mock)", "type": "rate_limit"}}, status_code=429,
                                headers={"retry-after": "0"})
        if behaviour == "400":  # e.g. a model name the endpoint does not serve: retrying cannot help
            return JSONResponse({"error": {"message": "The model `nope` does not exist (mock)",
                                           "type": "invalid_request_error"}}, status_code=400)
        if behaviour == "500":
            return JSONResponse({"error": {"message": "internal error (mock)", "type": "server_error"}},
                                status_code=500)
        if behaviour == "timeout":
            await asyncio.sleep(3600)
        if not body.get("stream"):
            text = expected_answer(self.tokens)
            return JSONResponse({"id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
                                 "model": body.get("model", "mock"),
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 100, "completion_tokens": self.tokens,
                                           "total_tokens": 100 + self.tokens}})
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self.stream(behaviour, arrived, usage), media_type="text/event-stream")

    async def stream(self, behaviour: str, arrived: float, usage: bool) -> AsyncIterator[bytes]:
        if behaviour == "silent":
            await asyncio.sleep(3600)
        yield _sse({"role": "assistant", "content": ""})
        if behaviour == "bad_tool":
            yield _sse({"tool_calls": [{"index": 0, "id": "call_bad", "type": "function",
                                        "function": {"name": "market_rates", "arguments": "{skill: React!!"}}]})
            yield _sse({}, finish="tool_calls")
            yield b"data: [DONE]\n\n"
            return
        for i in range(self.tokens):
            due = arrived + self.ttft + i / self.rate  # an absolute schedule: no drift however slow we are woken
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if behaviour == "drop" and i == self.tokens // 2:
                raise ConnectionAbortedError("mock: stream dropped mid-answer")
            yield _sse({"content": token_text(i)})
        yield _sse({}, finish="stop")
        if usage:
            yield ("data: " + json.dumps({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1,
                                          "model": "mock", "choices": [],
                                          "usage": {"prompt_tokens": 100, "completion_tokens": self.tokens,
                                                    "total_tokens": 100 + self.tokens,
                                                    "prompt_tokens_details": {"cached_tokens": self.cached_tokens}}})
                + "\n\n").encode()
        yield b"data: [DONE]\n\n"


def _sse(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "mock",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


def wait_http(url: str, timeout: float = 120) -> None:
    """Until `url` answers 200 (a server started as a process: the mock, `mentor serve`, a balancer)."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up within {timeout:.0f} s")


class ThreadedServer:
    """An ASGI app under uvicorn in a background thread on a free loopback port (tests, this mock)."""

    def __init__(self, app: Any, *, name: str, **config: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=name)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class MockServer(ThreadedServer):
    """The mock in a background thread (tests)."""

    def __init__(self, mock: MockLLM) -> None:
        self.mock = mock
        super().__init__(mock.app(), name="mock-llm", log_level="critical", lifespan="off")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *behaviours: Behaviour) -> None:
        with self.mock.lock:
            self.mock.queue.extend(behaviours)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8911)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds to the first token")
    args = parser.parse_args()
    mock = MockLLM(tokens=args.tokens, rate=args.rate, ttft=args.ttft)
    # the stand-in for a model elsewhere keeps its own collector's pauses out of the measured gaps
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    uvicorn.run(mock.app(), host=args.host, port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
