"""A turn's input: who asks what of which persona, with the history, project and mode, and — for API
callers — their sampling and instructions. Its own module so hooks and transports can name it without
importing the runtime."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agents.sampling import Sampling


class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class TurnRequest(BaseModel):
    persona: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=8000)
    user_id: int | None = None
    history: list[HistoryMessage] = Field(default_factory=list)
    project_id: int | None = Field(None, gt=0, le=2**63 - 1)
    mode: Literal["chat", "simulate_client"] = "chat"
    conversation_id: str | None = None
    # new tickets an hour from anonymous visitors of one network address, of one site (the server's settings)
    visitor_ticket_limits: tuple[int, int] = (10, 100)
    sampling: Sampling | None = None  # an API caller's own (/v1): sampling for the model, max_tokens and stop
    # an API caller's system/developer messages (/v1): given to the model below the persona's own rules
    instructions: str | None = Field(None, max_length=20_000)
