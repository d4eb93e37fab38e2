"""Typed events one turn yields, in order. The server streams and stores them as they are.

Facts (rates, revenue, fees) always travel in `tool_result` and `citation` events, so a client can
show them even when the model's prose is poor.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from agents.grounding import Grounding


class TokenEvent(BaseModel):
    type: Literal["token"] = "token"
    delta: str


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    args: dict[str, Any]


class ToolResultEvent(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    id: str
    name: str
    args: dict[str, Any] = Field(default_factory=dict, description="what the tool was called with")
    data: Any = None
    error: str | None = None


class CitationEvent(BaseModel):
    type: Literal["citation"] = "citation"
    index: int = Field(description="the [n] marker the answer may use")
    chunk_id: int
    corpus: str
    source: str
    title: str
    section: str
    anchor: str
    snippet: str


class HandoffEvent(BaseModel):
    type: Literal["handoff"] = "handoff"
    ticket_id: int
    reason: str


class AnswerReplacedEvent(BaseModel):
    """Strict grounding: the answer so far is withdrawn; the tokens that follow are the composer's answer."""

    type: Literal["answer_replaced"] = "answer_replaced"
    reason: Literal["unsupported_figures"] = "unsupported_figures"
    unsupported: list[str] = Field(default_factory=list, description="the figures no evidence supported")
    by: str = Field("", description="what writes the replacement")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int = Field(0, description="of prompt_tokens, those the backend read from its prompt cache "
                                            "(priced as cached input, never counted twice)")
    counted: Literal["backend", "tiktoken"] = "tiktoken"


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    message_id: int | None = None
    usage: Usage
    finish_reason: Literal["stop", "length", "tool_steps", "cancelled", "error"] = "stop"
    provider: str = ""
    grounding: Grounding | None = Field(None, description="figures in the answer and those the evidence lacks")


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    retryable: bool = False


Event = Annotated[
    TokenEvent | ToolCallEvent | ToolResultEvent | CitationEvent | HandoffEvent | AnswerReplacedEvent | DoneEvent
    | ErrorEvent,
    Field(discriminator="type"),
]
