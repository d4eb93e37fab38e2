"""`/ws/inbox`: a support agent's live view of the conversations they handle.

Frames: `watch {conversation_id, after_seq}` (a handed-over conversation the agent may read: its stored
events from that seq, then live), `typing {conversation_id}`, `read {conversation_id, upto_seq}`, `ping`.
`queue_changed` tells the agent to reload `/api/inbox` (a handoff opened, claimed, released or resolved).
The agent receives the customer's messages (`ack` events with their text), the bot's events, read
receipts and `typing` from the customer. Replies, claims and releases go through `/api/inbox`.
The same session machinery as `/ws/chat` (server/ws.py), speaking for the agent.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter

from core.errors import NotFound
from server import metrics
from server.auth import AuthError, accept_socket, protocol_credentials, verify_token
from server.protocol import AGENT_TYPES, AgentFrame, Pong, QueueChanged, ReadFrame, ReadyFrame, TypingFrame, WatchFrame
from server.services import Services
from server.ws import ChatSession, _error
from store import handoffs
from store.conversations import Caller


class AgentSession(ChatSession):
    FRAMES = TypeAdapter(AgentFrame)
    TYPES = AGENT_TYPES
    role = "agent"

    queue_news = False  # a `queue_changed` frame is on its way: a burst of changes sends one
    TOKEN_RECHECK_S = 0.5  # a streamed answer's tokens re-check access at most this often; every other event each time

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked_at: dict[str, float] = {}  # conversation -> when access was last confirmed
        self.ended: set[str] = set()  # conversations this socket lost access to

    async def may_follow(self, conversation: str, event_type: str | None) -> bool:
        """Access is checked on delivery, not once at `watch`: claimed by another agent, resolved past this
        agent, or the agent's role taken away — the next event is not sent and the watch ends."""
        if conversation in self.ended:
            return False
        now = time.monotonic()
        if event_type == "token" and now - self.checked_at.get(conversation, 0.0) < self.TOKEN_RECHECK_S:
            return True
        try:
            await asyncio.to_thread(handoffs.visible, self.s.db, self.staff, conversation)
        except NotFound:
            self.ended.add(conversation)
            await super().send(_error("not_found", f"conversation {conversation} is no longer yours to follow"))
            self.stop_watching(conversation)  # (from its own relay too: it ends at its next wait)
            return False
        self.checked_at[conversation] = now
        return True

    def stop_watching(self, conversation: str) -> None:
        self.watching.discard(conversation)
        listener = self.signal_listeners.pop(conversation, None)
        if listener is not None:
            self.s.hub.stop_signals(conversation, listener)
        task = self.watch_tasks.pop(conversation, None)
        if task is not None:
            task.cancel()

    async def send(self, event: dict[str, Any], fresh_only: bool = False) -> None:
        conversation = event.get("conversation_id")
        if conversation is not None and event.get("type") != "error" \
                and not await self.may_follow(str(conversation), event.get("type")):
            return
        await super().send(event, fresh_only)

    async def on_typing(self, frame: TypingFrame) -> None:
        if await self.still_allowed(str(frame.conversation_id)):
            await super().on_typing(frame)

    async def on_read(self, frame: ReadFrame) -> None:
        if await self.still_allowed(str(frame.conversation_id)):
            await super().on_read(frame)

    async def still_allowed(self, conversation: str) -> bool:
        """`typing` and `read` only while access holds (the customer must not see a typing agent who left)."""
        if conversation in self.ended:
            await super().send(_error("not_found", f"no handed-over conversation {conversation} here"))
            return False
        return conversation not in self.watching or await self.may_follow(conversation, "typing")

    def on_queue_changed(self) -> None:
        """A handoff was opened, claimed, released or resolved (on any worker): reload the queue."""
        if not self.queue_news:
            self.queue_news = True
            task = asyncio.create_task(self._queue_changed())
            self.pumps.add(task)  # held (and cancelled with the socket) like a relay
            task.add_done_callback(self.pumps.discard)

    async def _queue_changed(self) -> None:
        await asyncio.sleep(0.1)
        self.queue_news = False
        await self.send(QueueChanged().wire())

    async def dispatch(self, frame: Any) -> None:
        if frame.type == "ping":
            await self.send(Pong(time=time.time()).wire())
        elif isinstance(frame, WatchFrame):
            conversation = str(frame.conversation_id)
            try:
                await asyncio.to_thread(handoffs.visible, self.s.db, self.staff, conversation)
            except NotFound as exc:
                await self.send(_error("not_found", str(exc)))
                return
            self.ended.discard(conversation)  # (released back to the queue, say: it may be followed again)
            self.checked_at[conversation] = time.monotonic()
            self.seen[conversation] = max(self.seen.get(conversation, 0), frame.after_seq)
            self.watch(conversation)
        elif isinstance(frame, TypingFrame):
            await self.on_typing(frame)
        elif isinstance(frame, ReadFrame):
            await self.on_read(frame)

    @property
    def staff(self) -> handoffs.Staff:
        return handoffs.Staff(self.user["id"], self.user["name"], self.user["role"])


async def inbox_endpoint(ws: WebSocket, services: Services) -> None:
    """Accept, then require an agent's token (`Sec-WebSocket-Protocol: mentor.v1, bearer.<jwt>`,
    `Authorization: Bearer`, or `?token=`); anyone else gets a typed error and close code 4403/4401."""
    offered = await accept_socket(ws)
    header = ws.headers.get("authorization", "")
    token = protocol_credentials(offered).get("bearer") or (header[7:] if header.lower().startswith("bearer ")
                                                            else None) or ws.query_params.get("token")
    try:
        if not token:
            raise AuthError("the inbox needs a support agent's token")
        staff = await asyncio.to_thread(handoffs.staff_member, services.db, verify_token(services.settings, token))
    except AuthError as exc:
        await ws.send_text(json.dumps(_error("unauthorized", str(exc))))
        await ws.close(code=4401)
        return
    if staff is None:
        await ws.send_text(json.dumps(_error("forbidden", "the inbox is for support agents")))
        await ws.close(code=4403)
        return
    metrics.CONNECTIONS.inc()
    session = AgentSession(ws, services, Caller(user_id=staff.id), {"id": staff.id, "name": staff.name,
                                                                    "role": staff.role})
    services.hub.listen_inbox(session.on_queue_changed)
    try:
        await session.send(ReadyFrame(user=session.user).wire())
        await session.receive_frames_until_closed()
    except WebSocketDisconnect:
        pass
    finally:
        services.hub.stop_inbox(session.on_queue_changed)
        metrics.CONNECTIONS.dec()
