"""`/api/inbox`: support agents answer the conversations the bot handed to a person.

Only users with the role `agent` or `admin` get past `current_staff` (everyone else: 403). What an agent
may read is decided by row-level security (store/handoffs.py); what they may change is checked against
the handoff's state under a row lock (409 when another agent owns it or it is resolved). Every change
is an event in the customer's conversation, delivered live to the customer on any worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from core.errors import NotFound
from server import metrics
from server.deps import ConversationId, Staff, Svc
from server.protocol import NoNul
from store import conversations as convs
from store import handoffs

router = APIRouter(prefix="/api/inbox", tags=["inbox"])


class ReplyBody(BaseModel):
    text: NoNul = Field(min_length=1, max_length=4000, description="what the customer will read")


class ResolveBody(BaseModel):
    outcome: NoNul = Field(min_length=1, max_length=500, description="how it ended, for the record")


async def _act(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """A handoff action on a worker thread; its typed errors (404, 409) answer for themselves."""
    return await asyncio.to_thread(fn, *args)


@router.get("")
async def inbox(staff: Staff, s: Svc, status: Literal["open", "mine", "resolved"] = "open") -> list[dict[str, Any]]:
    """Handoffs waiting for a person (`open`), the agent's own (`mine`) or closed (`resolved`), oldest first,
    each with the sentiment of the customer's last message (`upset` 0..1)."""
    from agents.sentiment import upset_score

    items = await asyncio.to_thread(handoffs.inbox, s.db, staff, status)
    for item in items:
        last = item["last_message"] or {}
        item["upset"] = round(upset_score(last.get("text", "")), 2) if last.get("role") == "user" else None
    return items


@router.get("/{conversation_id}")
async def conversation(conversation_id: ConversationId, staff: Staff, s: Svc, after_seq: int = 0) -> dict[str, Any]:
    """The handoff and the whole transcript (the customer's messages, the bot's events, tool results)."""
    return await _act(handoffs.transcript, s.db, staff, conversation_id, after_seq)


@router.post("/{conversation_id}/claim")
async def claim(conversation_id: ConversationId, staff: Staff, s: Svc) -> dict[str, Any]:
    """Own the conversation: the bot stays silent and the customer sees the agent join (409 if taken)."""
    return await _act(handoffs.claim, s.db, staff, conversation_id)


@router.post("/{conversation_id}/messages", status_code=201)
async def reply(conversation_id: ConversationId, body: ReplyBody, staff: Staff, s: Svc) -> dict[str, Any]:
    """Send the customer a message (claim first)."""
    sent = await _act(handoffs.reply, s.db, staff, conversation_id, body.text)
    if sent["first_reply_after_s"] is not None:
        metrics.FIRST_HUMAN_REPLY_SECONDS.observe(sent["first_reply_after_s"])
    return sent


@router.post("/{conversation_id}/suggest")
async def suggest(conversation_id: ConversationId, staff: Staff, s: Svc) -> dict[str, Any]:
    """Agent assist: a suggested reply to the customer's newest question (a request for a person is not a
    question), written like the support bot's (the grounded composer offline, else the configured model) with
    its citations, as from the agent: a greeting on the first reply, no offers of a person or a ticket. For the
    agent to edit; nothing is stored or sent, and no ticket is opened: the persona runs without its hooks."""
    from agents.assist import from_a_person, question_to_answer, support_without_tickets
    from agents.requests import HistoryMessage, TurnRequest
    from agents.runtime import Turn

    handoff = await _act(handoffs.visible, s.db, staff, conversation_id)
    # the transcript so far (every message id is below 2**62), the agents' replies on the assistant's side
    transcript = await asyncio.to_thread(convs.history, s.db, conversation_id, 2**62, 200)
    asked = [i for i, m in enumerate(transcript) if m["role"] == "user"]
    if not asked:
        raise NotFound("the customer has not written anything")
    picked = question_to_answer([transcript[i]["content"] for i in asked])
    first_reply = handoff["first_reply_at"] is None
    if picked is None:  # only "a person, please" and the like: greet them and ask
        return {"text": from_a_person("", staff.name, first_reply=first_reply), "citations": [], "grounding": None,
                "question": transcript[asked[-1]]["content"]}
    at = asked[picked[0]]
    question = transcript[at]["content"]
    history = [HistoryMessage(**h) for h in transcript[:at]][-10:]
    customer = await asyncio.to_thread(handoffs.customer_of, s.db, conversation_id)
    persona = support_without_tickets()
    req = TurnRequest(persona="support", text=picked[1], user_id=customer, history=history,
                      conversation_id=conversation_id)
    text, citations, grounding = "", [], None
    async for event in Turn(req, persona, s.db, s.provider, None, s.settings.grounding).run():
        if event.type == "token":
            text += event.delta
        elif event.type == "answer_replaced":
            text = ""
        elif event.type == "citation":
            citations.append({k: getattr(event, k) for k in ("index", "title", "section", "source", "anchor")})
        elif event.type == "done":
            grounding = event.grounding.model_dump() if event.grounding else None
    return {"text": from_a_person(text.strip(), staff.name, first_reply=first_reply), "citations": citations,
            "grounding": grounding, "question": question}


class NoteBody(BaseModel):
    text: NoNul = Field(min_length=1, max_length=4000, description="for staff only; never shown to the customer")


@router.post("/{conversation_id}/notes", status_code=201)
async def note(conversation_id: ConversationId, body: NoteBody, staff: Staff, s: Svc) -> dict[str, Any]:
    """An internal note on the handoff: kept beside it for staff, never sent or replayed to the customer."""
    return await _act(handoffs.add_note, s.db, staff, conversation_id, body.text)


@router.post("/{conversation_id}/release")
async def release(conversation_id: ConversationId, staff: Staff, s: Svc) -> dict[str, Any]:
    """Hand the conversation back to the bot; it answers the next message with the whole transcript."""
    return await _act(handoffs.release, s.db, staff, conversation_id)


@router.post("/{conversation_id}/resolve")
async def resolve(conversation_id: ConversationId, body: ResolveBody, staff: Staff, s: Svc) -> dict[str, Any]:
    """Close the handoff and its ticket."""
    return await _act(handoffs.resolve, s.db, staff, conversation_id, body.outcome)
