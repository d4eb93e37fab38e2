"""OpenAI-compatible API: `GET /v1/models` lists personas; `POST /v1/chat/completions` runs a turn.

`model` is a persona id and the Bearer token is a user's JWT. Facts are not mixed into the text:
non-streaming responses carry them in a top-level `mentor.events` array (tool results, citations,
handoffs) and the grounding check in `mentor.grounding`; streaming responses send each as its own
chunk whose one choice has an empty delta, with a `mentor.event` object (the official `openai` client
exposes it as `chunk.model_extra["mentor"]`), and the grounding check on the chunk that carries the
finish reason. Under strict grounding a `mentor.event` of type `answer_replaced` means: discard the
content streamed so far; what follows is the replacement.

The contract (docs/protocol.md, "/v1"): every documented parameter is honoured or refused with a 400
that names it (`CompletionRequest.refusal`); `max_tokens`/`max_completion_tokens` and `stop` hold for
every provider, the composer included (agents/sampling.py).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.composer import GroundedComposer
from agents.personas import all_personas, get_persona
from agents.requests import HistoryMessage, TurnRequest
from agents.runtime import strictly_grounded
from agents.sampling import Sampling
from core.errors import NotFound
from server.deps import Svc, User
from server.services import Services
from server.turns import RunningTurn, TurnInput, TurnRejected
from store.conversations import Caller

router = APIRouter(prefix="/v1")
FACT_EVENTS = ("tool_result", "citation", "handoff", "answer_replaced", "error")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    include_usage: bool | None = False


class CompletionRequest(BaseModel):
    """Every documented chat-completions parameter, each honoured or refused (`refusal`); fields OpenAI
    does not document are ignored, as OpenAI-compatible servers commonly do."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # honoured: passed to the model, and max_tokens/stop applied to whatever writes the answer
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=65_536)
    max_completion_tokens: int | None = Field(None, ge=1, le=65_536)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    n: int | None = Field(None, ge=1, le=128)
    # accepted, with no effect on the answer (documented): hints for OpenAI's own products
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # refused unless absent or neutral
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None

    def refusal(self) -> tuple[str, str] | None:
        """(param, why) for the first parameter this service cannot honour, else None."""
        checks: list[tuple[str, bool, str]] = [
            ("n", (self.n or 1) > 1, "only n=1 is supported: a request is one turn of one persona"),
            ("tools", bool(self.tools), "client-defined tools are not supported: each persona calls its own tools "
                                        "(see GET /v1/models); send the request without tools"),
            ("functions", bool(self.functions), "client-defined functions are not supported"),
            ("tool_choice", self.tool_choice not in (None, "none", "auto"),
             "tool_choice must be 'none' or 'auto': there are no client-defined tools"),
            ("function_call", self.function_call not in (None, "none", "auto"),
             "function_call must be 'none' or 'auto': there are no client-defined functions"),
            ("response_format", (self.response_format or {"type": "text"}).get("type") != "text",
             "only response_format {'type': 'text'} is supported: answers are prose with citations"),
            ("logprobs", bool(self.logprobs), "logprobs are not available"),
            ("top_logprobs", bool(self.top_logprobs), "logprobs are not available"),
            ("logit_bias", bool(self.logit_bias), "logit_bias is not supported"),
            ("audio", self.audio is not None, "audio output is not supported"),
            ("modalities", self.modalities not in (None, ["text"]), "only the text modality is supported"),
            ("prediction", self.prediction is not None, "predicted outputs are not supported"),
            ("web_search_options", self.web_search_options is not None, "web search is not supported"),
            ("reasoning_effort", self.reasoning_effort is not None, "the personas are not reasoning models"),
            ("verbosity", self.verbosity is not None, "verbosity is not supported"),
            ("service_tier", self.service_tier not in (None, "auto", "default"),
             "only the 'auto' and 'default' service tiers exist here"),
        ]
        if isinstance(self.stop, list) and len(self.stop) > 4:
            checks.append(("stop", True, "at most 4 stop sequences"))
        return next(((param, why) for param, bad, why in checks if bad), None)

    def sampling(self) -> Sampling:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Sampling(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                        max_tokens=self.max_completion_tokens or self.max_tokens, stop=[s for s in stop if s],
                        frequency_penalty=self.frequency_penalty, presence_penalty=self.presence_penalty)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        return "".join(part.get("text", "") for part in message.content if part.get("type") == "text")
    return message.content or ""


def _unreadable_part(body: CompletionRequest) -> str | None:
    """The first content part that is not text (an image, audio, a file): refused, never dropped silently."""
    for i, message in enumerate(body.messages):
        for j, part in enumerate(message.content if isinstance(message.content, list) else []):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                return f"messages[{i}].content[{j}]"
    return None


def _refuse(status: int, code: str, message: str, retry_after: float | None = None,
            param: str | None = None) -> HTTPException:
    error: dict[str, Any] = {"message": message, "type": "rate_limit_error" if status == 429
                             else "invalid_request_error", "param": param, "code": code}
    if retry_after is not None:
        error["retry_after"] = retry_after
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return HTTPException(status, detail={"error": error}, headers=headers)


def check_contract(body: CompletionRequest) -> None:
    """A parameter this service cannot honour is refused with a 400 naming it, as OpenAI-compatible
    servers do: a client that relies on it must fail loudly, not get an answer that ignores it."""
    if refused := body.refusal():
        raise _refuse(400, "unsupported_parameter", f"{refused[0]}: {refused[1]}", param=refused[0])
    if part := _unreadable_part(body):
        raise _refuse(400, "unsupported_content", f"{part}: only text content parts can be read", param=part)


def check_limits(body: CompletionRequest, s: Services) -> None:
    """The request's own shape: message count and length, NUL characters. The turn service applies the
    rest (rate limit, token budget) exactly as for the WebSocket."""
    settings = s.settings
    if len(body.messages) > settings.max_messages_per_request:
        raise _refuse(400, "too_many_messages", f"at most {settings.max_messages_per_request} messages per request")
    texts = [_text(m) for m in body.messages]
    if any("\x00" in t for t in texts):
        raise _refuse(400, "invalid_body", "messages must not contain NUL characters")
    longest = max((len(t) for t in texts), default=0)
    if longest > settings.max_message_chars:
        raise _refuse(400, "message_too_long", f"messages are limited to {settings.max_message_chars} characters")


def _turn_request(body: CompletionRequest, user_id: int, composes: bool) -> TurnRequest:
    """The request as a turn: its last message is the question, the user/assistant messages before it the
    history, and system/developer messages the caller's instructions (below the persona's own rules)."""
    try:
        get_persona(body.model)
    except NotFound as exc:
        raise _refuse(404, "model_not_found", str(exc), param="model") from None
    for i, m in enumerate(body.messages):
        if m.role == "tool":
            raise _refuse(400, "unsupported_parameter", f"messages[{i}]: tool messages answer client-defined tools, "
                          "which this service does not take", param=f"messages[{i}]")
        if m.role in ("system", "developer") and composes and _text(m).strip():
            raise _refuse(400, "unsupported_parameter", f"messages[{i}]: {m.role} instructions need a language "
                          "model, and this service answers with its offline grounded composer, which quotes the "
                          "persona's sources and follows no instructions; send the request without them",
                          param=f"messages[{i}]")
    convo = [m for m in body.messages if m.role in ("user", "assistant")]
    if not convo or convo[-1].role != "user" or not _text(convo[-1]).strip():
        raise _refuse(400, "invalid_body", "the last message must be a non-empty user message", param="messages")
    instructions = "\n\n".join(t for m in body.messages if m.role in ("system", "developer") if (t := _text(m).strip()))
    try:
        history = [HistoryMessage(role=m.role, content=_text(m)) for m in convo[:-1]]
        return TurnRequest(persona=body.model, text=_text(convo[-1]), user_id=user_id, history=history,
                           sampling=body.sampling(), instructions=instructions or None)
    except ValidationError as exc:  # e.g. a message over the length limit
        first = exc.errors()[0]
        raise _refuse(400, "invalid_body", f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


@router.get("/models")
def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": p.id, "object": "model", "created": 0, "owned_by": "mentor",
                                        "description": p.role} for p in all_personas().values()]}


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: CompletionRequest, user: User, s: Svc):
    """A turn through the same service as the WebSocket: limits, budget, and the turn stored as a new
    conversation (the request's history is used as given, not stored)."""
    check_contract(body)
    req = _turn_request(body, user, isinstance(s.provider, GroundedComposer))
    check_limits(body, s)
    try:
        begun = await s.turns.begin(Caller(user_id=user), TurnInput(
            text=req.text, client_id=f"v1-{uuid.uuid4().hex}", persona=req.persona, history=req.history,
            sampling=req.sampling, instructions=req.instructions))
    except TurnRejected as exc:
        status = 429 if exc.code == "rate_limited" else 400
        raise _refuse(status, exc.code, str(exc), retry_after=exc.retry_after) from None
    assert isinstance(begun, RunningTurn)  # a fresh client id is never a duplicate
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if not body.stream:
        events = [e async for e in begun.events()]
        done = events[-1] if events and events[-1]["type"] == "done" else None
        if done is None or done["finish_reason"] == "error":
            raise _failed(events)
        replaced = max((i for i, e in enumerate(events) if e["type"] == "answer_replaced"), default=-1)
        text = "".join(e["delta"] for e in events[replaced + 1:] if e["type"] == "token")
        return ChatCompletion(
            id=cid, object="chat.completion", created=created, model=body.model,
            choices=[Choice(index=0, message=ChatCompletionMessage(role="assistant", content=text),
                            finish_reason=_finish(done))],
            usage=_usage(done), mentor={"events": [e for e in events if e["type"] in FACT_EVENTS],
                                        "grounding": done.get("grounding"),
                                        "conversation_id": begun.start.conversation_id}).model_dump(exclude_unset=True)
    hold = strictly_grounded(get_persona(body.model), s.settings.grounding, s.provider)
    return StreamingResponse(_sse(begun, cid, created, body.model, body.include_usage, hold),
                             media_type="text/event-stream")


def _usage(done: dict[str, Any]) -> CompletionUsage:
    return CompletionUsage(**{k: done["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")})


def _finish(done: dict[str, Any]) -> Literal["stop", "length"]:
    """OpenAI's finish reasons: `length` at the cap (the caller's max_tokens or the model's), else `stop`
    (a stop sequence, the answer's end, a tool-step limit or a cancel)."""
    return "length" if done["finish_reason"] == "length" else "stop"


# A failed turn as HTTP: the model timed out (504) or failed (502); the service itself could not finish the
# turn (503: the database went away, the worker was fenced off); a turn the persona refused is the caller's (4xx).
FAILURE_STATUS = {"llm_timeout": 504, "llm_unavailable": 502, "interrupted": 503, "database_unavailable": 503,
                  "internal": 500, "sign_in_required": 403, "forbidden": 403, "not_found": 404}


def _failure(events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    error = next((e for e in events if e["type"] == "error"),
                 {"code": "internal", "message": "the turn failed", "retryable": True})
    status = FAILURE_STATUS.get(error["code"], 400)
    return status, {"message": error["message"], "type": "server_error" if status >= 500 else "invalid_request_error",
                    "param": None, "code": error["code"]}


def _failed(events: list[dict[str, Any]]) -> HTTPException:
    """Never a `200` with empty text: the official client raises on these (APIStatusError)."""
    status, error = _failure(events)
    return HTTPException(status, detail={"error": error})


async def _sse(turn: RunningTurn, cid: str, created: int, model: str, include_usage: bool, hold: bool):
    """Chunks as the spec has them: each before the last carries one choice (our facts ride on an empty
    delta); the usage chunk, with `choices: []`, comes last and only when `include_usage` asked for it.

    `hold`: a strictly grounded persona's text is sent once the whole answer is checked, so a standard
    client never shows a sentence that is later withdrawn (`answer_replaced` is our extension; they
    would glue the replacement to it). A failed turn ends with an SSE `error` event, which the official
    client raises as an `APIError`, and no `[DONE]`."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        choices = [] if delta is None else [ChunkChoice(index=0, delta=ChoiceDelta(**delta), finish_reason=finish)]
        return "data: " + ChatCompletionChunk(id=cid, object="chat.completion.chunk", created=created, model=model,
                                              choices=choices, **extra).to_json(indent=None) + "\n\n"

    held: list[str] = []
    seen: list[dict[str, Any]] = []
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for event in turn.events():
            seen.append(event)
            if event["type"] == "token":
                if hold:
                    held.append(event["delta"])
                else:
                    yield chunk({"content": event["delta"]})
            elif event["type"] == "answer_replaced" and hold:
                held.clear()  # never sent, so nothing to withdraw; an extension reader still learns of it
                yield chunk({}, mentor={"event": event})
            elif event["type"] in FACT_EVENTS and event["type"] != "error":
                yield chunk({}, mentor={"event": event})
            elif event["type"] == "done":
                if event["finish_reason"] == "error":
                    _, error = _failure(seen)
                    yield "event: error\ndata: " + json.dumps({"error": error}) + "\n\n"
                    return
                if held:
                    yield chunk({"content": "".join(held)})
                yield chunk({}, _finish(event), mentor={"grounding": event.get("grounding")})
                if include_usage:
                    yield chunk(None, usage=_usage(event))
        yield "data: [DONE]\n\n"
    finally:
        turn.cancel()  # the client went away (or the answer is complete): stop generating
