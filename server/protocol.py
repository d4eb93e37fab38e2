"""The WebSocket protocol's frames (docs/protocol.md), both ways: every client frame is validated here,
and every frame a client can receive is a model here (`ServerFrame`). Turn events are the runtime's own
(agents/events.py) with the conversation's envelope; tests validate every frame they receive against the
union, and check the protocol document's tables against it (tests/test_protocol.py)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from agents.events import (
    AnswerReplacedEvent,
    CitationEvent,
    DoneEvent,
    ErrorEvent,
    HandoffEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\ud800" decodes to a lone surrogate, which UTF-8 cannot hold
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


# PostgreSQL text holds neither NUL nor a lone surrogate: refuse them at the boundary, as a 422 naming the field
NoNul = Annotated[str, AfterValidator(_no_nul)]
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



# -- server -> client ---------------------------------------------------------------------------------
class Envelope(BaseModel):
    """What every frame carries besides its own fields: an event of a conversation its `seq` (one more
    than the last, from the database), the conversation and the assistant message it belongs to; a
    connection-level frame (ready, pong, a bad frame's error) `seq: null`."""

    model_config = ConfigDict(extra="forbid")
    always: ClassVar[tuple[str, ...]] = ("type", "seq")  # on the wire even when left at their default
    seq: int | None = None
    conversation_id: str | None = None
    message_id: int | None = None

    def wire(self) -> dict[str, Any]:
        """The frame as sent: `always`, and the fields it was given (an optional left unset is not sent)."""
        return {**{k: getattr(self, k) for k in self.always}, **self.model_dump(exclude_unset=True)}


class PersonaCard(BaseModel):
    id: str
    name: str
    role: str


class Limits(BaseModel):
    max_message_chars: int
    max_frame_bytes: int
    messages_per_minute: int
    max_turns_per_connection: int


class ReadyFrame(Envelope):
    always: ClassVar[tuple[str, ...]] = ("type", "seq", "protocol")
    type: Literal["ready"] = "ready"
    protocol: int = 1
    user: dict | None = None
    visitor_id: str | None = None
    site_user: str | None = None
    personas: list[PersonaCard] = Field(default_factory=list)
    limits: Limits | None = None


class AckFrame(Envelope):
    """The user's message is stored (`message_id`: the answer's; None when a person answers it)."""

    type: Literal["ack"] = "ack"
    client_id: str
    user_message_id: int
    duplicate: bool
    persona: str | None = None
    text: str | None = None
    project_id: int | None = None
    mode: str | None = None


class ServerError(ErrorEvent, Envelope):
    retry_after: float | None = None
    client_id: str | None = None


class TokenFrame(TokenEvent, Envelope):
    pass


class ToolCallFrame(ToolCallEvent, Envelope):
    pass


class ToolResultFrame(ToolResultEvent, Envelope):
    pass


class CitationFrame(CitationEvent, Envelope):
    pass


class HandoffFrame(HandoffEvent, Envelope):
    pass


class AnswerReplacedFrame(AnswerReplacedEvent, Envelope):
    pass


class DoneFrame(DoneEvent, Envelope):
    provider: str | None = ""  # None: a worker that stopped left the answer, which another closed


class Agent(BaseModel):
    id: int
    name: str


class AgentJoined(Envelope):
    type: Literal["agent_joined"] = "agent_joined"
    agent: Agent


class AgentMessage(Envelope):
    type: Literal["agent_message"] = "agent_message"
    text: str
    agent: Agent


class AgentLeft(Envelope):
    type: Literal["agent_left"] = "agent_left"
    agent: Agent


class HandoffResolved(Envelope):
    type: Literal["handoff_resolved"] = "handoff_resolved"
    outcome: str


class TypingSignal(Envelope):
    """The other side is typing (not stored)."""

    type: Literal["typing"] = "typing"
    who: Literal["customer", "agent"]
    name: str | None = None


class ReadReceipt(Envelope):
    type: Literal["read"] = "read"
    who: Literal["customer", "agent"]
    upto_seq: int


class Pong(Envelope):
    type: Literal["pong"] = "pong"
    time: float


class FeedbackSaved(Envelope):
    type: Literal["feedback_saved"] = "feedback_saved"
    feedback_id: int


class ContactSaved(Envelope):
    type: Literal["contact_saved"] = "contact_saved"
    ticket_id: int


class QueueChanged(Envelope):
    """/ws/inbox: a handoff changed somewhere; reload `GET /api/inbox`."""

    type: Literal["queue_changed"] = "queue_changed"


ServerFrame = Annotated[
    ReadyFrame | AckFrame | TokenFrame | ToolCallFrame | ToolResultFrame | CitationFrame | HandoffFrame
    | AnswerReplacedFrame | DoneFrame | ServerError | AgentJoined | AgentMessage | AgentLeft | HandoffResolved
    | TypingSignal | ReadReceipt | Pong | FeedbackSaved | ContactSaved | QueueChanged,
    Field(discriminator="type"),
]
SERVER_FRAMES = TypeAdapter(ServerFrame)


def event_payload(frame: Envelope) -> dict:
    """A conversation event as the event log stores it: the envelope is added as it is stored."""
    return {k: v for k, v in frame.wire().items() if k not in Envelope.model_fields}
