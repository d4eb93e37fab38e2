"""OpenAI-compatible API: `GET /v1/models` lists personas; `POST /v1/chat/completions` runs a turn.

`model` is a persona id and the Bearer token is a user's JWT. Facts are not mixed into the text:
non-streaming responses carry them in a top-level `mentor.events` array (tool results, citations,
handoffs) and the grounding check in `mentor.grounding`; streaming responses send each as its own
chunk with `choices: []` and a `mentor.event` object (the official `openai` client exposes it as
`chunk.model_extra["mentor"]`), and the grounding check on the last chunk, beside `usage`. Under
strict grounding a `mentor.event` of type `answer_replaced` means: discard the content streamed so
far; what follows is the replacement.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from agents.personas import all_personas, get_persona
from agents.runtime import HistoryMessage, TurnRequest
from server.rest import Svc, User
from server.services import Services
from server.turns import RunningTurn, TurnInput, TurnRejected
from store.conversations import Caller
from store.errors import NotFound

router = APIRouter(prefix="/v1")
FACT_EVENTS = ("tool_result", "citation", "handoff", "answer_replaced", "error")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class CompletionRequest(BaseModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    user: str | None = None


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        return "".join(part.get("text", "") for part in message.content if part.get("type") == "text")
    return message.content or ""


def _refuse(status: int, code: str, message: str, retry_after: float | None = None) -> HTTPException:
    error = {"message": message, "type": "rate_limit_error" if status == 429 else "invalid_request_error",
             "code": code}
    if retry_after is not None:
        error["retry_after"] = retry_after
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return HTTPException(status, detail={"error": error}, headers=headers)


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


def _turn_request(body: CompletionRequest, user_id: int) -> TurnRequest:
    try:
        get_persona(body.model)
    except NotFound as exc:
        raise HTTPException(404, detail={"error": {"message": str(exc), "type": "invalid_request_error",
                                                   "code": "model_not_found"}}) from None
    convo = [m for m in body.messages if m.role in ("user", "assistant")]
    if not convo or convo[-1].role != "user" or not _text(convo[-1]).strip():
        raise HTTPException(400, detail={"error": {"message": "the last message must be a non-empty user message",
                                                   "type": "invalid_request_error"}})
    try:
        history = [HistoryMessage(role=m.role, content=_text(m)) for m in convo[:-1]]
        return TurnRequest(persona=body.model, text=_text(convo[-1]), user_id=user_id, history=history)
    except ValidationError as exc:  # e.g. a message over the length limit
        first = exc.errors()[0]
        raise HTTPException(400, detail={"error": {"message": f"{'.'.join(map(str, first['loc']))}: {first['msg']}",
                                                   "type": "invalid_request_error", "code": "invalid_body"}}) from None


@router.get("/models")
def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": p.id, "object": "model", "created": 0, "owned_by": "mentor",
                                        "description": p.role} for p in all_personas().values()]}


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: CompletionRequest, user: User, s: Svc):  # type: ignore[no-untyped-def]
    """A turn through the same service as the WebSocket: limits, budget, and the turn stored as a new
    conversation (the request's history is used as given, not stored)."""
    req = _turn_request(body, user)
    check_limits(body, s)
    try:
        begun = await s.turns.begin(Caller(user_id=user), TurnInput(
            text=req.text, client_id=f"v1-{uuid.uuid4().hex}", persona=req.persona, history=req.history))
    except TurnRejected as exc:
        status = 429 if exc.code == "rate_limited" else 400
        raise _refuse(status, exc.code, str(exc), retry_after=exc.retry_after) from None
    assert isinstance(begun, RunningTurn)  # a fresh client id is never a duplicate
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if not body.stream:
        events = [e async for e in begun.events()]
        replaced = max((i for i, e in enumerate(events) if e["type"] == "answer_replaced"), default=-1)
        text = "".join(e["delta"] for e in events[replaced + 1:] if e["type"] == "token")
        done = events[-1] if events and events[-1]["type"] == "done" else _broken(events)
        return {"id": cid, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "length" if done["finish_reason"] == "length" else "stop"}],
                "usage": {k: done["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
                "mentor": {"events": [e for e in events if e["type"] in FACT_EVENTS],
                           "grounding": done.get("grounding"), "conversation_id": begun.start.conversation_id}}
    return StreamingResponse(_sse(begun, cid, created, body.model), media_type="text/event-stream")


def _broken(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The turn could not be stored (the database went away mid-answer): answer 503, typed."""
    error = next((e for e in events if e["type"] == "error"), {"code": "internal", "message": "the turn failed"})
    raise HTTPException(503, detail={"error": {"message": error["message"], "type": "server_error",
                                               "code": error["code"]}})


async def _sse(turn: RunningTurn, cid: str, created: int, model: str):  # type: ignore[no-untyped-def]
    def chunk(choices: list, **extra: Any) -> str:
        return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                      "model": model, "choices": choices, **extra}, default=str) + "\n\n"

    try:
        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        async for event in turn.events():
            if event["type"] == "token":
                yield chunk([{"index": 0, "delta": {"content": event["delta"]}, "finish_reason": None}])
            elif event["type"] in FACT_EVENTS:
                yield chunk([], mentor={"event": event})
            elif event["type"] == "done":
                finish = "length" if event["finish_reason"] == "length" else "stop"
                yield chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
                u = event["usage"]
                yield chunk([], usage={"prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
                                       "total_tokens": u["total_tokens"]},
                            mentor={"grounding": event.get("grounding")})
        yield "data: [DONE]\n\n"
    finally:
        turn.cancel()  # the client went away (or the answer is complete): stop generating
