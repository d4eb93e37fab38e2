"""`/ws/chat`: the WebSocket protocol (docs/protocol.md), a thin adapter over the turn service.

This module parses and answers frames; server/turns.py does the rest (limits, dedupe, storage, the
turn itself). Nothing is lost: the user's message is stored before the model is called, and every
event is stored (with the conversation's next seq) before it is sent. A turn keeps running if the
socket drops, so a client that reconnects to any worker can `resume` and get every event after the
seq it saw — from the database, then live (woken by LISTEN/NOTIFY) while the answer is still streaming.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketState

from agents.personas import all_personas
from core.errors import MentorError, NotFound
from server import metrics
from server.auth import (
    AuthError,
    accept_socket,
    protocol_credentials,
    refreshed_identity,
    site_caller,
    user_exists,
    verify_token,
)
from server.protocol import (
    CLIENT_TYPES,
    AckFrame,
    CancelFrame,
    ClientFrame,
    ContactFrame,
    ContactSaved,
    FeedbackFrame,
    FeedbackSaved,
    Limits,
    MessageFrame,
    PersonaCard,
    Pong,
    ReadFrame,
    ReadyFrame,
    ResumeFrame,
    ServerError,
    TypingFrame,
)
from server.services import Services
from server.turns import Duplicate, HumanOwned, RunningTurn, TurnInput, TurnRejected, widget_may_offer
from store import conversations as convs
from store import events
from store.conversations import Caller
from store.jsonfast import dumps

log = logging.getLogger("mentor.ws")
FRAMES = TypeAdapter(ClientFrame)
MAX_STRIKES = 20  # consecutive bad frames before the connection is closed as abusive
HANDOFF_EVENTS = ("handoff", "agent_joined", "agent_message", "agent_left")  # a person is (or will be) here


def _error(code: str, message: str, *, retryable: bool = False, retry_after: float | None = None,
           **extra: Any) -> dict[str, Any]:
    metrics.ERRORS.labels(code).inc()
    return ServerError(code=code, message=message, retryable=retryable, retry_after=retry_after, **extra).wire()


_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _echoed_id(data: dict[str, Any]) -> str | None:
    """A bad frame's client_id, echoed in its error only when it is one (a fuzzer sends objects there)."""
    value = data.get("client_id")
    return value if isinstance(value, str) and _CLIENT_ID.fullmatch(value) else None


class ChatSession:
    FRAMES = FRAMES
    TYPES = CLIENT_TYPES
    role = "customer"  # who this socket speaks for in a handed-over conversation (typing, read receipts)
    TYPING_EVERY_S = 2.0  # at most one typing signal per conversation this often
    READ_EVERY_S = 0.5  # at most one read receipt per conversation this often (more are dropped)
    RESUMES_PER_WINDOW, RESUME_WINDOW_S = 20, 10.0

    def __init__(self, ws: WebSocket, services: Services, caller: Caller, user: dict | None) -> None:
        self.ws, self.s, self.caller, self.user = ws, services, caller, user
        self.send_lock = asyncio.Lock()
        self.active: dict[str, RunningTurn] = {}  # conversation id -> a turn this connection started
        self.pumps: set[asyncio.Task] = set()  # relaying events to this socket
        self.seen: dict[str, int] = {}  # conversation id -> the highest seq sent on this socket
        self.watching: set[str] = set()  # conversations followed for a person's messages
        self.signal_listeners: dict[str, Any] = {}  # conversation -> its typing listener
        self.watch_tasks: dict[str, asyncio.Task] = {}  # conversation -> the relay following it
        self.typed_at: dict[str, float] = {}
        self.read_at: dict[str, float] = {}
        self.read_pending: dict[str, int] = {}  # conversation -> the newest receipt waiting for its slot
        self.resumes: list[float] = []
        self.strikes = 0

    async def send(self, event: dict[str, Any], fresh_only: bool = False) -> None:
        """`fresh_only`: skip an event this socket already got (a turn's relay and a watch may both have it;
        each sends in seq order, so skipping the older never loses one). Replays asked for are sent as is."""
        if self.ws.client_state != WebSocketState.CONNECTED:
            return
        conversation, seq = event.get("conversation_id"), event.get("seq")
        if conversation is not None and seq is not None:
            if fresh_only and seq <= self.seen.get(conversation, 0):
                return
            self.seen[conversation] = max(seq, self.seen.get(conversation, 0))
            if event["type"] in HANDOFF_EVENTS:
                self.watch(conversation)
        try:
            async with self.send_lock:
                await self.ws.send_text(dumps(event))
        except (WebSocketDisconnect, RuntimeError):
            pass  # the turn goes on and is stored; the client can resume

    # -- receiving ------------------------------------------------------------------------------
    async def serve(self) -> None:
        personas = [p for p in all_personas().values() if p.anonymous or (self.user and widget_may_offer(self.caller))]
        settings = self.s.settings
        await self.send(ReadyFrame(
            user=self.user, site_user=self.caller.site_user,
            # a site-scoped identity comes from the site's token each time: nothing to keep
            visitor_id=self.caller.visitor_id if self.caller.anonymous and not self.caller.site_user else None,
            personas=[PersonaCard(id=p.id, name=p.name, role=p.role) for p in personas],
            limits=Limits(max_message_chars=settings.max_message_chars, max_frame_bytes=settings.max_frame_bytes,
                          messages_per_minute=settings.user_messages_per_minute,
                          max_turns_per_connection=settings.max_turns_per_connection)).wire())
        await self.receive_frames_until_closed()

    async def receive_frames_until_closed(self) -> None:
        try:
            await self.receive_frames()
        finally:
            for task in list(self.pumps):  # stop relaying to a closed socket; the turns go on
                task.cancel()
            for conversation, listener in self.signal_listeners.items():
                self.s.hub.stop_signals(conversation, listener)

    async def receive_frames(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            frame = await self.parse(raw)
            if frame is None:
                self.strikes += 1
                if self.strikes > MAX_STRIKES:
                    await self.send(_error("abusive", "too many invalid frames; closing"))
                    await self.ws.close(code=1008)
                    return
                continue
            self.strikes = 0
            try:
                await self.dispatch(frame)
            except MentorError as exc:  # e.g. the database is down: say so, keep the connection
                await self.send(_error(exc.code, str(exc), retryable=getattr(exc, "retryable", False),
                                       retry_after=1.0 if getattr(exc, "retryable", False) else None,
                                       client_id=getattr(frame, "client_id", None)))
            except (WebSocketDisconnect, asyncio.CancelledError):
                raise
            except Exception:  # a bug must not drop the socket: say so, keep the connection
                log.exception("frame failed")
                await self.send(_error("internal", "this frame could not be handled",
                                       client_id=getattr(frame, "client_id", None)))

    async def parse(self, raw: str) -> Any:
        limit = self.s.settings.max_frame_bytes
        if len(raw.encode("utf-8", errors="replace")) > limit:
            await self.send(_error("frame_too_large", f"frames are limited to {limit} bytes"))
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            await self.send(_error("bad_json", "frame is not valid JSON"))
            return None
        except RecursionError:
            await self.send(_error("bad_json", "frame is nested too deeply"))
            return None
        if not isinstance(data, dict) or "type" not in data:
            await self.send(_error("invalid_frame", "a frame is a JSON object with a 'type'"))
            return None
        if data["type"] not in self.TYPES:
            await self.send(_error("unknown_type", f"unknown frame type {str(data['type'])[:40]!r}; "
                                                   f"expected one of {', '.join(self.TYPES)}"))
            return None
        if data["type"] == "message" and isinstance(data.get("text"), str) \
                and len(data["text"]) > self.s.settings.max_message_chars:
            await self.send(_error("text_too_long", f"messages are limited to {self.s.settings.max_message_chars} "
                                                    "characters", client_id=_echoed_id(data)))
            return None
        try:
            return self.FRAMES.validate_python(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:]) or "frame"
            await self.send(_error("invalid_frame", f"{where}: {first['msg']}", client_id=_echoed_id(data)))
            return None

    async def dispatch(self, frame: Any) -> None:
        if self.caller.site_identity is not None and frame.type != "ping":
            await self.refresh_identity()
        if frame.type == "ping":
            await self.send(Pong(time=time.time()).wire())
        elif isinstance(frame, MessageFrame):
            await self.on_message(frame)
        elif isinstance(frame, CancelFrame):
            await self.on_cancel(frame)
        elif isinstance(frame, ResumeFrame):
            await self.on_resume(frame)
        elif isinstance(frame, FeedbackFrame):
            await self.on_feedback(frame)
        elif isinstance(frame, TypingFrame):
            await self.on_typing(frame)
        elif isinstance(frame, ReadFrame):
            await self.on_read(frame)
        elif isinstance(frame, ContactFrame):
            try:
                await asyncio.to_thread(convs.save_contact, self.s.db, self.caller, frame.ticket_id, frame.email)
            except NotFound as exc:
                await self.send(_error("not_found", str(exc)))
                return
            await self.send(ContactSaved(ticket_id=frame.ticket_id).wire())

    async def refresh_identity(self) -> None:
        """A third-party site's user: whether a marketplace account is linked is read again for every frame,
        so an unlink (or a new link) holds on sockets already open."""
        caller = await asyncio.to_thread(refreshed_identity, self.s.db, self.caller)
        if caller != self.caller:
            self.caller = caller
            self.user = None if caller.user_id is None else dict(
                await asyncio.to_thread(user_exists, self.s.db, caller.user_id))
            self.watching.clear()  # conversations followed as the old identity are not this one's

    # -- frames ---------------------------------------------------------------------------------
    async def on_message(self, frame: MessageFrame) -> None:
        if len([t for t in self.active.values() if not t.done()]) >= self.s.settings.max_turns_per_connection:
            await self.send(_error("too_many_turns", "a turn is already running on this connection; wait for its "
                                                     "'done' or cancel it", retryable=True, retry_after=1.0,
                                   client_id=frame.client_id))
            return
        inp = TurnInput(text=frame.text, client_id=frame.client_id, persona=frame.persona,
                        conversation_id=str(frame.conversation_id) if frame.conversation_id else None,
                        project_id=frame.project_id, mode=frame.mode)
        try:
            begun = await self.s.turns.begin(self.caller, inp)
        except TurnRejected as exc:
            await self.send(_error(exc.code, str(exc), retryable=exc.retryable, retry_after=exc.retry_after,
                                   client_id=frame.client_id))
            return
        except NotFound as exc:
            await self.send(_error("not_found", str(exc), client_id=frame.client_id))
            return
        if isinstance(begun, HumanOwned):  # a person answers: their replies come through the watch
            # stored with a NOTIFY: this socket's own watch of the conversation may have sent it already
            await self.send(begun.ack, fresh_only=True)
            self.watch(begun.start.conversation_id)
            return
        if isinstance(begun, Duplicate):
            await self.send(AckFrame(conversation_id=begun.start.conversation_id, client_id=frame.client_id,
                                     message_id=begun.start.assistant_message_id,
                                     user_message_id=begun.start.user_message_id, duplicate=True).wire())
            if begun.start.assistant_message_id is not None:  # None: a person answers it; nothing to replay
                self.pump(self.s.turns.follow(begun.start.conversation_id, 0,
                                              only_message=begun.start.assistant_message_id))
            return
        await self.send(begun.ack, fresh_only=True)  # (a watch of the conversation may have read it first)
        self.active[begun.start.conversation_id] = begun
        self.pump(begun.events(), fresh_only=True)

    def watch(self, conversation_id: str) -> None:
        """Keep this socket up to date with a conversation a person takes part in (a handoff): the other
        side's messages, read receipts and typing arrive whenever they happen, on whichever worker."""
        if conversation_id in self.watching:
            return
        self.watching.add(conversation_id)

        def on_signal(signal: dict[str, Any]) -> None:
            if signal.get("who") != self.role:  # the other side is typing
                asyncio.create_task(self.send({**signal, "seq": None}))

        self.signal_listeners[conversation_id] = on_signal
        self.s.hub.listen_signals(conversation_id, on_signal)

        self.watch_tasks[conversation_id] = self.pump(
            self.s.turns.follow(conversation_id, self.seen.get(conversation_id, 0), forever=True), fresh_only=True)

    def pump(self, events: AsyncIterator[dict[str, Any]], fresh_only: bool = False) -> asyncio.Task:
        """Relay events to this socket in the background; the turn itself lives on if the socket goes."""
        async def relay() -> None:
            async for event in events:
                await self.send(event, fresh_only)

        task = asyncio.create_task(relay())
        self.pumps.add(task)
        task.add_done_callback(self.pumps.discard)
        return task

    async def on_typing(self, frame: TypingFrame) -> None:
        conversation = str(frame.conversation_id)
        if conversation not in self.watching:  # only a handed-over conversation this socket follows
            await self.send(_error("not_found", f"no handed-over conversation {conversation} here"))
            return
        now = time.monotonic()
        if now - self.typed_at.get(conversation, 0.0) < self.TYPING_EVERY_S:
            return
        self.typed_at[conversation] = now
        name = (self.user or {}).get("name") if self.role == "agent" else None
        await self.s.hub.send_signal(conversation, {"type": "typing", "who": self.role, "name": name})

    async def on_read(self, frame: ReadFrame) -> None:
        conversation = str(frame.conversation_id)
        if conversation not in self.watching:
            await self.send(_error("not_found", f"no handed-over conversation {conversation} here"))
            return
        # each receipt is a stored event sent to every watcher: at most one per READ_EVERY_S, the newest
        # of those that came meanwhile written when the interval is over (none is lost, a flood is one)
        pending = self.read_pending.get(conversation)
        self.read_pending[conversation] = max(pending or 0, frame.upto_seq)
        if pending is not None:
            return  # a write is already scheduled: it takes this one along

        async def write() -> None:
            wait = self.read_at.get(conversation, 0.0) + self.READ_EVERY_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            upto = self.read_pending.pop(conversation)
            self.read_at[conversation] = time.monotonic()
            await asyncio.to_thread(events.append_read, self.s.db, conversation, self.role, upto)

        task = asyncio.create_task(write())  # in the background: other frames are not held up meanwhile
        self.pumps.add(task)
        task.add_done_callback(self.pumps.discard)

    async def on_cancel(self, frame: CancelFrame) -> None:
        targets = [str(frame.conversation_id)] if frame.conversation_id else \
            [c for c, t in self.active.items() if not t.done()]
        if not await self.s.turns.cancel(self.caller, targets):
            await self.send(_error("nothing_to_cancel", "no answer is being generated"))

    async def on_resume(self, frame: ResumeFrame) -> None:
        now = time.monotonic()  # a replay can be the whole conversation: a socket may ask a few times, not a flood
        self.resumes = [t for t in self.resumes if now - t < self.RESUME_WINDOW_S]
        if len(self.resumes) >= self.RESUMES_PER_WINDOW:
            await self.send(_error("rate_limited", f"at most {self.RESUMES_PER_WINDOW} resumes every "
                                                   f"{self.RESUME_WINDOW_S:g} s on one connection",
                                   retryable=True, retry_after=self.RESUME_WINDOW_S))
            return
        self.resumes.append(now)
        try:
            await asyncio.to_thread(convs.get_conversation, self.s.db, str(frame.conversation_id), self.caller)
        except NotFound as exc:
            await self.send(_error("not_found", str(exc)))
            return
        self.pump(self.s.turns.follow(str(frame.conversation_id), frame.after_seq))

    async def on_feedback(self, frame: FeedbackFrame) -> None:
        if self.caller.anonymous:
            await self.send(_error("sign_in_required", "feedback needs a signed-in user"))
            return
        try:
            fid = await asyncio.to_thread(convs.save_feedback, self.s.db, self.caller.user_id, frame.message_id,
                                          rating=frame.rating, comment=frame.comment, implemented=frame.implemented)
        except NotFound as exc:
            await self.send(_error("not_found", str(exc)))
            return
        await self.send(FeedbackSaved(message_id=frame.message_id, feedback_id=fid).wire())


async def authenticate(ws: WebSocket, services: Services) -> tuple[Caller, dict | None] | None:
    """Accept the socket, then identify the caller; on failure send a typed error and close (4401).

    Credentials: `Sec-WebSocket-Protocol: mentor.v1, bearer.<jwt>` (browsers: the page and the widget),
    or `Authorization: Bearer <jwt>` (other clients); `?token=` still works for old clients and is
    redacted from the logs. Widget visitors: `?site_key=` (public) and `visitor.<id>` in the protocol.
    """
    offered = await accept_socket(ws)
    params = ws.query_params
    header = ws.headers.get("authorization", "")
    carried = protocol_credentials(offered)
    token = carried.get("bearer") or (header[7:] if header.lower().startswith("bearer ") else None) \
        or params.get("token")
    try:
        if token:
            user_id = verify_token(services.settings, token)
            user = await asyncio.to_thread(user_exists, services.db, user_id)
            return Caller(user_id=user_id), dict(user)
        if params.get("site_key"):
            visitor = carried.get("visitor") or params.get("visitor_id")
            caller = await asyncio.to_thread(site_caller, services.db, services.settings, params["site_key"],
                                             ws.headers.get("origin"), visitor, ws.client.host if ws.client else None,
                                             carried.get("user"))
            if caller.user_id is not None:  # the site vouched for its signed-in user
                return caller, dict(await asyncio.to_thread(user_exists, services.db, caller.user_id))
            return caller, None
        raise AuthError("sign in with a token, or connect from a registered site with its site_key")
    except (AuthError, NotFound) as exc:
        metrics.ERRORS.labels("unauthorized").inc()
        await ws.send_text(json.dumps(_error("unauthorized", str(exc))))
        await ws.close(code=4401)
        return None


async def chat_endpoint(ws: WebSocket, services: Services) -> None:
    who = await authenticate(ws, services)
    if who is None:
        return
    metrics.CONNECTIONS.inc()
    try:
        await ChatSession(ws, services, *who).serve()
    except WebSocketDisconnect:
        pass
    finally:
        metrics.CONNECTIONS.dec()
