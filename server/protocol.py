"""The WebSocket protocol's frames (see docs/protocol.md). Every client frame is validated here."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = Annotated[str, AfterValidator(_no_nul)]  # PostgreSQL text cannot hold NUL: refuse it at the boundary
Id = Annotated[int, Field(gt=0, le=2**63 - 1)]  # a bigint: anything larger is no row of ours


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageFrame(Frame):
    type: Literal["message"]
    client_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    text: NoNul = Field(min_length=1)
    persona: str | None = Field(None, max_length=64)
    conversation_id: UUID | None = None
    project_id: Id | None = None
    mode: Literal["chat", "simulate_client"] | None = Field(
        None, description="unset: the conversation's mode (a new conversation: chat)")


class CancelFrame(Frame):
    type: Literal["cancel"]
    conversation_id: UUID | None = None


class FeedbackFrame(Frame):
    type: Literal["feedback"]
    message_id: Id
    rating: int = Field(ge=1, le=5)
    comment: NoNul | None = Field(None, max_length=2000)
    implemented: bool = False


class ResumeFrame(Frame):
    type: Literal["resume"]
    conversation_id: UUID
    after_seq: int = Field(ge=0, le=2**63 - 1)


class ContactFrame(Frame):
    """A widget visitor's email for a ticket of theirs, so a person can reach them after a handoff."""

    type: Literal["contact"]
    ticket_id: Id
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class PingFrame(Frame):
    type: Literal["ping"]


class TypingFrame(Frame):
    """The customer (or, on /ws/inbox, the agent) is typing in a handed-over conversation: not stored."""

    type: Literal["typing"]
    conversation_id: UUID


class ReadFrame(Frame):
    """Everything up to this seq has been seen: stored, so the other side's "seen" marks survive a reload."""

    type: Literal["read"]
    conversation_id: UUID
    upto_seq: int = Field(ge=1, le=2**63 - 1)


class WatchFrame(Frame):
    """/ws/inbox: follow a handed-over conversation from this seq on."""

    type: Literal["watch"]
    conversation_id: UUID
    after_seq: int = Field(0, ge=0, le=2**63 - 1)


ClientFrame = Annotated[MessageFrame | CancelFrame | FeedbackFrame | ResumeFrame | ContactFrame | PingFrame
                        | TypingFrame | ReadFrame, Field(discriminator="type")]
CLIENT_TYPES = ("message", "cancel", "feedback", "resume", "contact", "ping", "typing", "read")
AgentFrame = Annotated[WatchFrame | TypingFrame | ReadFrame | PingFrame, Field(discriminator="type")]
AGENT_TYPES = ("watch", "typing", "read", "ping")


class FeedbackBody(BaseModel):
    """REST body for POST /api/messages/{id}/feedback."""

    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=1, le=5)
    comment: NoNul | None = Field(None, max_length=2000)
    implemented: bool = False
