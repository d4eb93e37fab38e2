"""`/ws/chat`: the WebSocket protocol (docs/protocol.md).

Nothing is lost: the user's message is stored before the model is called, and every event is stored
(with the conversation's next seq) before it is sent. A turn keeps running if the socket drops, so a
client that reconnects anywhere can `resume` and get every event after the seq it saw — from the
database, then live (by polling the event log) while the answer is still streaming.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketState

from agents.hooks import PROJECT_REF
from agents.personas import all_personas, get_persona
from agents.runtime import TurnRequest, run_turn
from server import metrics
from server.auth import SUBPROTOCOL, AuthError, protocol_credentials, site_caller, user_exists, verify_token
from server.event_writer import Pending
from server.protocol import (
    CLIENT_TYPES,
    CancelFrame,
    ClientFrame,
    ContactFrame,
    FeedbackFrame,
    MessageFrame,
    ResumeFrame,
)
from server.services import Services, stream_from_thread
from store import conversations as convs
from store.conversations import Caller
from store.errors import DatabaseUnavailable, MentorError, NotFound

log = logging.getLogger("mentor.ws")
FRAMES = TypeAdapter(ClientFrame)
MAX_STRIKES = 20  # consecutive bad frames before the connection is closed as abusive
POLL_S = 0.1


def _error(code: str, message: str, *, retryable: bool = False, retry_after: float | None = None,
           **extra: Any) -> dict[str, Any]:
    metrics.ERRORS.labels(code).inc()
    return {"type": "error", "code": code, "message": message, "retryable": retryable,
            "retry_after": retry_after, "seq": None, **extra}


class ChatSession:
    def __init__(self, ws: WebSocket, services: Services, caller: Caller, user: dict | None) -> None:
        self.ws, self.s, self.caller, self.user = ws, services, caller, user
        self.send_lock = asyncio.Lock()
        self.active: dict[str, asyncio.Task] = {}  # conversation id -> task streaming a turn
        self.strikes = 0

    async def send(self, event: dict[str, Any]) -> None:
        if self.ws.client_state != WebSocketState.CONNECTED:
            return
        try:
            async with self.send_lock:
                await self.ws.send_text(json.dumps(event, default=str))
        except (WebSocketDisconnect, RuntimeError):
            pass  # the turn goes on and is stored; the client can resume

    # -- receiving ------------------------------------------------------------------------------
    async def serve(self) -> None:
        personas = [p for p in all_personas().values() if self.user or p.anonymous]
        await self.send({"type": "ready", "protocol": 1, "seq": None, "user": self.user,
                         "visitor_id": self.caller.visitor_id if self.caller.anonymous else None,
                         "personas": [{"id": p.id, "name": p.name, "role": p.role} for p in personas],
                         "limits": {"max_message_chars": self.s.settings.max_message_chars,
                                    "max_frame_bytes": self.s.settings.max_frame_bytes,
                                    "messages_per_minute": self.s.settings.user_messages_per_minute,
                                    "max_turns_per_connection": self.s.settings.max_turns_per_connection}})
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
        if data["type"] not in CLIENT_TYPES:
            await self.send(_error("unknown_type", f"unknown frame type {str(data['type'])[:40]!r}; "
                                                   f"expected one of {', '.join(CLIENT_TYPES)}"))
            return None
        if data["type"] == "message" and isinstance(data.get("text"), str) \
                and len(data["text"]) > self.s.settings.max_message_chars:
            await self.send(_error("text_too_long", f"messages are limited to {self.s.settings.max_message_chars} "
                                                    "characters", client_id=data.get("client_id")))
            return None
        try:
            return FRAMES.validate_python(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:]) or "frame"
            await self.send(_error("invalid_frame", f"{where}: {first['msg']}", client_id=data.get("client_id")))
            return None

    async def dispatch(self, frame: Any) -> None:
        if frame.type == "ping":
            await self.send({"type": "pong", "seq": None, "time": time.time()})
        elif isinstance(frame, MessageFrame):
            await self.on_message(frame)
        elif isinstance(frame, CancelFrame):
            await self.on_cancel(frame)
        elif isinstance(frame, ResumeFrame):
            await self.on_resume(frame)
        elif isinstance(frame, FeedbackFrame):
            await self.on_feedback(frame)
        elif isinstance(frame, ContactFrame):
            try:
                await asyncio.to_thread(convs.save_contact, self.s.db, self.caller, frame.ticket_id, frame.email)
            except NotFound as exc:
                await self.send(_error("not_found", str(exc)))
                return
            await self.send({"type": "contact_saved", "seq": None, "ticket_id": frame.ticket_id})

    # -- frames ---------------------------------------------------------------------------------
    async def on_message(self, frame: MessageFrame) -> None:
        s, caller = self.s, self.caller
        conv_id = str(frame.conversation_id) if frame.conversation_id else None
        persona_id = frame.persona or ("support" if caller.anonymous else "marcus")
        try:
            persona = get_persona(persona_id)
        except NotFound as exc:
            await self.send(_error("unknown_persona", str(exc), client_id=frame.client_id))
            return
        if caller.anonymous and not persona.anonymous:
            await self.send(_error("forbidden", f"{persona.name} needs a signed-in user; widget visitors talk "
                                                "to support", client_id=frame.client_id))
            return
        duplicate = await asyncio.to_thread(convs.find_duplicate, s.db, caller, frame.client_id, conv_id)
        if duplicate is not None and duplicate.status == "error":
            conv_id = duplicate.conversation_id  # a retry of a failed answer: same message, new attempt
        elif duplicate is not None:  # a re-sent frame starts nothing, so no limit applies to it
            await self.send_duplicate(duplicate, frame.client_id)
            return
        wait = self.rate_limited()
        if wait is not None:
            await self.send(_error("rate_limited", f"too many messages; retry in {wait} s", retryable=True,
                                   retry_after=wait, client_id=frame.client_id))
            return
        if len([t for t in self.active.values() if not t.done()]) >= s.settings.max_turns_per_connection:
            await self.send(_error("too_many_turns", "a turn is already running on this connection; wait for its "
                                                     "'done' or cancel it", retryable=True, retry_after=1.0,
                                   client_id=frame.client_id))
            return
        if conv_id:
            try:
                used = await asyncio.to_thread(convs.tokens_used, s.db, conv_id, caller)
            except MentorError:
                used = 0
            if used >= s.settings.conversation_token_budget:
                await self.send(_error("token_budget_exceeded",
                                       f"this conversation used {used} tokens (limit "
                                       f"{s.settings.conversation_token_budget}); start a new conversation",
                                       client_id=frame.client_id))
                return
        try:
            named = PROJECT_REF.search(frame.text)  # "project 42" in the text moves the conversation to it
            project = frame.project_id or (int(named.group(1)) if named else None)
            start = await asyncio.to_thread(convs.start_turn, s.db, caller, persona=persona_id, text=frame.text,
                                            client_id=frame.client_id, conversation_id=conv_id, project_id=project,
                                            mode=frame.mode)
        except NotFound as exc:
            await self.send(_error("not_found", str(exc), client_id=frame.client_id))
            return
        if start.duplicate:  # a concurrent re-send won the race to insert
            await self.send_duplicate(start, frame.client_id)
            return
        # the ack carries the user's own words, so a replay of the events alone rebuilds the conversation
        ack = {"type": "ack", "client_id": frame.client_id, "message_id": start.assistant_message_id,
               "user_message_id": start.user_message_id, "duplicate": False, "persona": persona_id,
               "text": frame.text, "project_id": start.project_id, "mode": start.mode}
        seq = await asyncio.to_thread(convs.append_event, s.db, start.conversation_id, caller.user_id,
                                      start.assistant_message_id, ack)
        await self.send({**ack, "seq": seq, "conversation_id": start.conversation_id})
        history = await asyncio.to_thread(convs.history, s.db, start.conversation_id, start.user_message_id)
        req = TurnRequest(persona=persona_id, text=frame.text, user_id=caller.user_id, history=history,
                          project_id=start.project_id, mode=start.mode, conversation_id=start.conversation_id)
        self.active[start.conversation_id] = asyncio.create_task(self.stream_turn(start, req))

    def rate_limited(self) -> float | None:
        """Seconds to wait, or None. A visitor is limited per visitor, per network address and per site,
        because an Origin header can be copied: one client cannot use up a whole site's allowance."""
        s, caller = self.s, self.caller
        if not caller.anonymous:
            return s.limiter.hit(f"user:{caller.user_id}", s.settings.user_messages_per_minute)
        buckets = [(f"visitor:{caller.visitor_id}", s.settings.visitor_messages_per_minute),
                   (f"address:{caller.address}", s.settings.address_messages_per_minute),
                   (f"site:{caller.site_id}", s.settings.site_messages_per_minute)]
        for key, per_minute in buckets:
            if (wait := s.limiter.hit(key, per_minute)) is not None:
                return wait
        return None

    @property
    def owner(self) -> str:
        return f"user:{self.caller.user_id}" if not self.caller.anonymous else f"visitor:{self.caller.visitor_id}"

    async def send_duplicate(self, start: convs.TurnStart, client_id: str) -> None:
        """Acknowledge a re-sent message and replay (then follow) the turn it already started."""
        await self.send({"type": "ack", "seq": None, "conversation_id": start.conversation_id,
                         "client_id": client_id, "message_id": start.assistant_message_id,
                         "user_message_id": start.user_message_id, "duplicate": True})
        await self.replay(start.conversation_id, 0, only_message=start.assistant_message_id)

    async def stream_turn(self, start: convs.TurnStart, req: TurnRequest) -> None:
        cancel = threading.Event()
        self.s.running[start.conversation_id] = (self.owner, cancel)
        try:
            async for item in stream_from_thread(
                    lambda emit: run_and_store(self.s, self.caller, start, req, cancel, emit),
                    name=f"turn-{start.assistant_message_id}"):
                await self.send(item)
        finally:
            if self.s.running.get(start.conversation_id, (None, None))[1] is cancel:
                self.s.running.pop(start.conversation_id, None)

    async def on_cancel(self, frame: CancelFrame) -> None:
        targets = [str(frame.conversation_id)] if frame.conversation_id else \
            [c for c, t in self.active.items() if not t.done()]
        # only the caller's own turns: a conversation id seen elsewhere (a log line) cancels nothing
        flags = [entry[1] for c in targets if (entry := self.s.running.get(c)) and entry[0] == self.owner]
        if not flags:
            await self.send(_error("nothing_to_cancel", "no answer is being generated"))
            return
        for flag in flags:
            flag.set()

    async def on_resume(self, frame: ResumeFrame) -> None:
        try:
            await asyncio.to_thread(convs.get_conversation, self.s.db, str(frame.conversation_id), self.caller)
        except NotFound as exc:
            await self.send(_error("not_found", str(exc)))
            return
        await self.replay(str(frame.conversation_id), frame.after_seq)

    async def replay(self, conversation_id: str, after_seq: int, only_message: int | None = None) -> None:
        """Send stored events after `after_seq`, then follow the log while an answer is still streaming."""
        db, last, quiet_rounds = self.s.db, after_seq, 0
        while True:
            events = await asyncio.to_thread(convs.events_after, db, conversation_id, last)
            for event in events:
                last = event["seq"]
                if only_message is None or event["message_id"] == only_message:
                    await self.send(event)
            streaming = await asyncio.to_thread(convs.latest_streaming_message, db, conversation_id)
            if streaming is None or (only_message is not None and streaming != only_message):
                quiet_rounds += 1
                if quiet_rounds >= 2:  # one more read after the answer finished catches its last events
                    return
            else:
                quiet_rounds = 0
            if self.ws.client_state != WebSocketState.CONNECTED:
                return
            await asyncio.sleep(POLL_S)

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
        await self.send({"type": "feedback_saved", "seq": None, "message_id": frame.message_id, "feedback_id": fid})


class TurnLog:
    """A turn's events on their way out: to the event writer, and once stored (with a seq) to the client.

    If storing fails (the database went away), the model is stopped, the client gets one typed error
    without a seq, and the message is closed with its partial answer once the database is back.
    """

    def __init__(self, s: Services, caller: Caller, start: convs.TurnStart, cancel: threading.Event,
                 emit: Any) -> None:
        self.s, self.user_id, self.cancel, self.emit = s, caller.user_id, cancel, emit
        self.conv, self.msg = start.conversation_id, start.assistant_message_id
        self.answer: list[str] = []
        self.failed = threading.Event()
        self.last: Pending | None = None

    def store(self, payload: dict[str, Any], finish: tuple[str, str, dict | None] | None = None) -> None:
        if self.failed.is_set():
            return
        extra = {"conversation_id": self.conv} if payload["type"] == "done" else \
            {"conversation_id": self.conv, "message_id": self.msg}
        self.last = self.s.writer.submit(Pending(
            convs.NewEvent(self.conv, self.user_id, self.msg, payload, finish),
            on_stored=lambda seq: self.emit({**payload, "seq": seq, **extra}), on_error=self.lost))

    def lost(self, exc: Exception) -> None:
        """Called by the writer thread for each event it could not store; acts on the first."""
        if self.failed.is_set():
            return
        self.failed.set()
        self.cancel.set()
        code = exc.code if isinstance(exc, MentorError) else "internal"
        log.warning("turn events could not be stored: %s", exc, extra={"conversation_id": self.conv, "code": code})
        self.emit({**_error(code, str(exc) if isinstance(exc, MentorError) else "the turn could not be stored",
                            retryable=isinstance(exc, DatabaseUnavailable), retry_after=1.0),
                   "conversation_id": self.conv, "message_id": self.msg})
        threading.Thread(target=_close_when_back, args=(self.s, self.msg, "".join(self.answer)), daemon=True,
                         name=f"close-{self.msg}").start()

    def drain(self) -> None:
        """Wait until the writer has handled everything this turn handed it (so `done` is the last item)."""
        if self.last is not None:
            self.last.processed.wait()


def run_and_store(s: Services, caller: Caller, start: convs.TurnStart, req: TurnRequest, cancel: threading.Event,
                  emit: Any) -> None:
    """Worker thread: run the turn; each event is stored (batched by the writer) and then sent."""
    turn = TurnLog(s, caller, start, cancel, emit)
    started = time.perf_counter()
    first = True
    call_args: dict[str, dict] = {}
    metrics.TURNS.labels(req.persona).inc()
    try:
        for event in run_turn(req, db=s.db, provider=s.provider, cancel=cancel, grounding=s.settings.grounding):
            if turn.failed.is_set():
                break
            payload = event.model_dump()
            kind = payload["type"]
            if kind == "answer_replaced":  # strict grounding: what was streamed so far is withdrawn
                turn.answer.clear()
            elif kind == "token":
                turn.answer.append(payload["delta"])
                if first:
                    metrics.FIRST_EVENT_SECONDS.observe(time.perf_counter() - started)
                    first = False
            elif kind == "tool_call":
                call_args[payload["id"]] = payload["args"]
            elif kind == "tool_result":
                payload["args"] = call_args.get(payload["id"], {})
                metrics.TOOL_CALLS.labels(payload["name"], "error" if payload["error"] else "ok").inc()
            elif kind == "error":
                metrics.ERRORS.labels(payload["code"]).inc()
            elif kind == "done":
                payload["message_id"] = turn.msg
                usage = payload["usage"]
                metrics.TOKENS.labels("prompt").inc(usage["prompt_tokens"])
                metrics.TOKENS.labels("completion").inc(usage["completion_tokens"])
                status = {"cancelled": "cancelled", "error": "error"}.get(payload["finish_reason"], "complete")
                turn.store(payload, finish=("".join(turn.answer), status, usage))
                continue
            turn.store(payload)
    except DatabaseUnavailable as exc:  # a tool or retrieval could not reach the database
        turn.drain()
        turn.lost(exc)
    except Exception as exc:  # never leave a message "streaming" forever
        log.exception("turn failed", extra={"conversation_id": turn.conv})
        error = _error("internal", f"the turn failed: {type(exc).__name__}")
        turn.store({k: v for k, v in error.items() if k != "seq"})
        turn.store({"type": "done", "message_id": turn.msg, "finish_reason": "error", "provider": s.provider.name,
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "counted": "tiktoken"}},
                   finish=("".join(turn.answer), "error", None))
    finally:
        turn.drain()
        elapsed = time.perf_counter() - started
        metrics.TURN_SECONDS.observe(elapsed)
        log.info("turn finished", extra={"conversation_id": turn.conv, "persona": req.persona,
                                         "duration_ms": round(elapsed * 1000, 1)})


def _close_when_back(s: Services, message_id: int, partial: str, give_up_s: float = 3600.0) -> None:
    """Mark a turn cut off by a database outage as failed, keeping its partial answer, once writes work again."""
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        try:
            convs.fail_message(s.db, message_id, partial)
            return
        except DatabaseUnavailable:
            time.sleep(1.0)
    log.error("could not close message after the outage", extra={"message_id": message_id})


async def authenticate(ws: WebSocket, services: Services) -> tuple[Caller, dict | None] | None:
    """Accept the socket, then identify the caller; on failure send a typed error and close (4401).

    Credentials: `Sec-WebSocket-Protocol: mentor.v1, bearer.<jwt>` (browsers: the page and the widget),
    or `Authorization: Bearer <jwt>` (other clients); `?token=` still works for old clients and is
    redacted from the logs. Widget visitors: `?site_key=` (public) and `visitor.<id>` in the protocol.
    """
    offered = ws.headers.get("sec-websocket-protocol")
    await ws.accept(subprotocol=SUBPROTOCOL if offered and SUBPROTOCOL in offered else None)
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
                                             ws.headers.get("origin"), visitor, ws.client.host if ws.client else None)
            return caller, None
        raise AuthError("sign in with a token, or connect from a registered site with its site_key")
    except (AuthError, NotFound) as exc:
        metrics.ERRORS.labels("unauthorized").inc()
        await ws.send_text(json.dumps({"type": "error", "code": "unauthorized", "message": str(exc),
                                       "retryable": False, "retry_after": None, "seq": None}))
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
