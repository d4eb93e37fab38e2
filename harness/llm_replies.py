"""OpenAI-format streamed responses for respx, so the real openai/langchain-openai client code runs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx
import respx

BASE_URL = "http://llm.test/v1"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _sse(chunks: Iterable[dict[str, Any]], usage: tuple[int, int] | None) -> httpx.Response:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    if usage:
        body += "data: " + json.dumps({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1,
                                       "model": "gpt-test", "choices": [],
                                       "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                                 "total_tokens": usage[0] + usage[1]}}) + "\n\n"
    body += "data: [DONE]\n\n"
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def text_reply(text: str, pieces: int = 4, usage: tuple[int, int] | None = (120, 30)) -> httpx.Response:
    size = max(1, len(text) // pieces)
    parts = [text[i:i + size] for i in range(0, len(text), size)]
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": p}) for p in parts]
    chunks.append(_chunk({}, "stop"))
    return _sse(chunks, usage)


def tool_reply(calls: list[tuple[str, dict[str, Any]]], usage: tuple[int, int] | None = (150, 20)) -> httpx.Response:
    """Tool calls whose JSON arguments arrive split across several chunks, as real endpoints send them."""
    chunks = [_chunk({"role": "assistant", "content": None})]
    for index, (name, args) in enumerate(calls):
        raw = json.dumps(args)
        cut = max(1, len(raw) // 2)
        chunks.append(_chunk({"tool_calls": [{"index": index, "id": f"call_{index}_{name}", "type": "function",
                                              "function": {"name": name, "arguments": raw[:cut]}}]}))
        chunks.append(_chunk({"tool_calls": [{"index": index, "function": {"arguments": raw[cut:]}}]}))
    chunks.append(_chunk({}, "tool_calls"))
    return _sse(chunks, usage)


class ScriptedEndpoint:
    """Serves one scripted response per request and keeps the request bodies for assertions."""

    def __init__(self, router: respx.MockRouter, responses: list[httpx.Response | Exception]) -> None:
        self.responses = list(responses)
        self.requests: list[dict[str, Any]] = []
        router.post(f"{BASE_URL}/chat/completions").mock(side_effect=self._serve)

    def _serve(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content))
        if not self.responses:
            return text_reply("(no more scripted replies)")
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def system_prompt(self, index: int = 0) -> str:
        return self.requests[index]["messages"][0]["content"]


def make_provider(retries: int = 2):
    """The real OpenAI-compatible provider pointed at the respx-mocked endpoint."""
    from agents.llm import OpenAICompatibleProvider
    from core.settings import Settings

    # httpx's own transport: respx intercepts it (the server's default, aiohttp, it cannot see)
    return OpenAICompatibleProvider(Settings(openai_base_url=BASE_URL, openai_api_key="sk-test",
                                             mentor_model="gpt-test", llm_max_retries=retries, llm_timeout_s=5,
                                             llm_http="httpx"))
