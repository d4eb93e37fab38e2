"""CPU per streamed chunk: LangChain's ChatOpenAI.astream against our reading of the same SSE stream.

Both go through the `openai` async client to a mocked endpoint (respx, no network), so the difference
is what happens per chunk: LangChain builds an openai pydantic chunk, an AIMessageChunk and merges it
into the running total; ours does one `json.loads`. Prints microseconds of CPU per chunk.

    .venv/bin/python benchmarks/sse_parse_bench.py --chunks 4000

`--http`: the HTTP path instead, over real HTTP: 200 streams from `harness/mock_llm.py` at 50 chunks/s
each (one chunk per socket read, as in production), read through the openai client with httpx's own
transport (MENTOR_LLM_HTTP=httpx) and straight over aiohttp (the default, agents/llm_http.py); client
CPU per chunk, request included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx
import respx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BASE = "http://llm.bench/v1"


def body(chunks: int) -> bytes:
    def chunk(delta: dict, finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
    return ("".join(chunk({"content": f" w{i}"}) for i in range(chunks)) + chunk({}, "stop")
            + "data: [DONE]\n\n").encode()


async def langchain_run(chunks: int) -> int:
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="m", api_key="x", base_url=BASE, streaming=True, stream_usage=True)
    total, n = None, 0
    async for part in chat.astream([HumanMessage("hi")]):
        total = part if total is None else total + part
        n += 1
    return n


async def ours_run(chunks: int) -> int:
    from langchain_core.messages import HumanMessage

    from agents.llm import OpenAICompatibleProvider
    from core.settings import Settings

    # httpx's own transport, like LangChain's client: respx intercepts it, and only the parsing differs
    provider = OpenAICompatibleProvider(Settings(openai_base_url=BASE, openai_api_key="x", mentor_model="mock",
                                                 llm_http="httpx"))
    return sum([1 async for piece in provider.astream([HumanMessage("hi")]) if isinstance(piece, str)])


def measure(fn, chunks: int, rounds: int) -> float:
    payload = body(chunks)
    with respx.mock() as router:
        router.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(
            200, content=payload, headers={"content-type": "text/event-stream"}))
        asyncio.run(fn(chunks))  # warm-up: imports, client
        started = time.process_time()
        for _ in range(rounds):
            asyncio.run(fn(chunks))
        return (time.process_time() - started) / (rounds * chunks) * 1e6


async def transport_run(transport: str, base_url: str, streams: int) -> float:
    from langchain_core.messages import HumanMessage

    from agents.llm import OpenAICompatibleProvider
    from core.settings import Settings

    provider = OpenAICompatibleProvider(Settings(openai_base_url=base_url, openai_api_key="x", mentor_model="mock",
                                                 llm_http=transport))

    async def one() -> int:
        return sum([1 async for piece in provider.astream([HumanMessage("hi")]) if isinstance(piece, str)])

    from agents.aio import close_loop_resources

    await asyncio.gather(*[one() for _ in range(2)])  # warm-up: client, connections
    started = time.thread_time()
    chunks = sum(await asyncio.gather(*[one() for _ in range(streams)]))
    spent = (time.thread_time() - started) / chunks * 1e6
    await close_loop_resources()
    return spent


def transports(streams: int) -> dict:
    from harness.mock_llm import MockLLM, MockServer

    mock = MockServer(MockLLM(tokens=100, rate=50, ttft=0))  # a thread: its CPU is not the client's
    try:
        return {"streams": streams, "chunks_per_stream": 100, "cpu_us_per_chunk": {
            name: round(asyncio.run(transport_run(name, mock.base_url, streams)), 1) for name in ("httpx", "aiohttp")}}
    finally:
        mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="compare HTTP transports over a real socket")
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args()
    if args.http:
        print(json.dumps(transports(args.streams), indent=2))
        return
    result = {"chunks": args.chunks, "cpu_us_per_chunk": {
        "langchain_astream": round(measure(langchain_run, args.chunks, args.rounds), 1),
        "openai_client_raw_sse": round(measure(ours_run, args.chunks, args.rounds), 1)}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
