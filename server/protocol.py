"""The WebSocket protocol's frames (see docs/protocol.md). Every client frame is validated here."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageFrame(Frame):
    type: Literal["message"]
    client_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    text: str = Field(min_length=1)
    persona: str | None = Field(None, max_length=64)
    conversation_id: UUID | None = None
    project_id: int | None = Field(None, gt=0)
    mode: Literal["chat", "simulate_client"] = "chat"


class CancelFrame(Frame):
    type: Literal["cancel"]
    conversation_id: UUID | None = None


class FeedbackFrame(Frame):
    type: Literal["feedback"]
    message_id: int = Field(gt=0)
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=2000)
    implemented: bool = False


class ResumeFrame(Frame):
    type: Literal["resume"]
    conversation_id: UUID
    after_seq: int = Field(ge=0)


class PingFrame(Frame):
    type: Literal["ping"]


ClientFrame = Annotated[MessageFrame | CancelFrame | FeedbackFrame | ResumeFrame | PingFrame,
                        Field(discriminator="type")]
CLIENT_TYPES = ("message", "cancel", "feedback", "resume", "ping")


class FeedbackBody(BaseModel):
    """REST body for POST /api/messages/{id}/feedback."""

    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=2000)
    implemented: bool = False
