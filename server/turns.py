"""The turn service: what every transport (the WebSocket, `/v1`) does with a user's message.

Transports are thin adapters over it: they parse their own frames or bodies, call `begin`, and relay
the stored events. The service owns the rest, once for all of them:
- limits: the persona may serve this caller, rate limits (per user; per visitor, address and site),
  the conversation's token budget;
- dedupe: a re-sent client id replays the turn it started (or, if that answer failed, retries it);
- persistence: the user's message, the answer and every event are stored — with the conversation's
  next seq — before any client sees them (the event writer, group commit);
- cancellation from any connection on any worker, and following a conversation (resume, a second
  tab) through LISTEN/NOTIFY (server/hub.py).

A turn runs as its own task: a client that goes away does not stop it; it can resume anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from agents.aio import run_blocking
from agents.events import Usage
from agents.hooks import PROJECT_REF
from agents.llm import ChatProvider
from agents.personas import get_persona
from agents.requests import HistoryMessage, TurnRequest
from agents.runtime import arun_turn
from agents.sampling import Sampling
from core.errors import DatabaseUnavailable, MentorError, NotFound
from core.settings import Settings
from retrieval.tokens import count_tokens
from server import metrics
from server.event_writer import EventWriter, Pending
from server.hub import FALLBACK_S, Hub
from server.limits import RateLimiter
from server.protocol import AckFrame, DoneFrame, ServerError, event_payload
from store import conversations as convs
from store import events
from store.conversations import Caller
from store.db import Database

log = logging.getLogger("mentor.turns")
_END = object()


class TurnRejected(MentorError):
    """A message the service will not start a turn for (typed; nothing was stored)."""

    STATUS = {"rate_limited": 429, "unknown_persona": 404, "forbidden": 403, "not_found": 404}

    def __init__(self, code: str, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code, self.retryable, self.retry_after = code, retryable, retry_after
        self.http_status = self.STATUS.get(code, 400)


@dataclass
class TurnInput:
    text: str
    client_id: str
    persona: str | None = None  # default: support for visitors, marcus for users
    conversation_id: str | None = None
    project_id: int | None = None
    mode: str | None = None
    history: list[HistoryMessage] | None = None  # stateless callers (/v1) send theirs; else the conversation's
    sampling: Sampling | None = None  # an API caller's sampling, max_tokens and stop (/v1)
    instructions: str | None = None  # an API caller's system messages (/v1)


@dataclass
class Duplicate:
    """The client id already started a turn: replay it (`TurnService.follow(..., only_message=...)`)."""

    start: convs.TurnStart


@dataclass
class HumanOwned:
    """A support agent owns the conversation: the message is stored (its `ack` has the seq) for them to
    answer, and the bot stays silent. The agent's replies arrive as conversation events (`follow`)."""

    start: convs.TurnStart
    ack: dict[str, Any]


@dataclass
class RunningTurn:
    """A started turn: its stored `ack`, then its events as they are stored (each with its seq)."""

    start: convs.TurnStart
    ack: dict[str, Any]
    owner: str
    cancel_flag: threading.Event = field(default_factory=threading.Event)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None
    answered: bool = False  # its `done` is stored and on its way to the client

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while (event := await self.queue.get()) is not _END:
            yield event

    def cancel(self) -> None:
        self.cancel_flag.set()

    def done(self) -> bool:
        return self.answered or self.task is None or self.task.done()


def widget_may_offer(caller: Caller) -> bool:
    """May a signed-in caller use more than the support bot here? On the chat page and the marketplace's own
    (first-party) sites, yes; in a third-party site's widget, only support, linked account or not (the site
    must not reach the user's profile, revenue or drafts through the mentors)."""
    return caller.site_id is None or caller.first_party


def owner_of(caller: Caller) -> str:
    return f"user:{caller.user_id}" if not caller.anonymous else f"visitor:{caller.visitor_id}"


class TurnService:
    def __init__(self, *, db: Database, provider: ChatProvider, settings: Settings, hub: Hub, writer: EventWriter,
                 limiter: RateLimiter) -> None:
        self.db, self.provider, self.settings = db, provider, settings
        self.hub, self.writer, self.limiter = hub, writer, limiter
        self.running: dict[str, RunningTurn] = {}  # conversation id -> the turn streaming in it, on this worker
        self.setup_slots = asyncio.Semaphore(settings.turn_setup_slots)
        metrics.SETUP_SLOTS.set(settings.turn_setup_slots)
        hub.on_cancel = self.cancel_here

    # -- starting ---------------------------------------------------------------------------------
    async def begin(self, caller: Caller, inp: TurnInput) -> RunningTurn | Duplicate | HumanOwned:
        """Check, dedupe, store and start a turn. Raises TurnRejected, NotFound, PersonaMismatch or
        DatabaseUnavailable (all typed) with nothing stored."""
        s = self
        persona_id = inp.persona or ("support" if caller.anonymous else "marcus")
        try:
            persona = get_persona(persona_id)
        except NotFound as exc:
            raise TurnRejected("unknown_persona", str(exc)) from None
        if caller.anonymous and not persona.anonymous:
            raise TurnRejected("forbidden", f"{persona.name} needs a signed-in user; widget visitors talk to support")
        if not persona.anonymous and not widget_may_offer(caller):
            raise TurnRejected("forbidden", f"{persona.name} is not offered in this site's widget: it answers "
                               "support questions")
        named = PROJECT_REF.search(inp.text)  # "project 42" in the text moves the conversation to it
        project = inp.project_id or (int(named.group(1)) if named else None)

        def ack(start: convs.TurnStart) -> dict[str, Any]:
            # the ack carries the user's own words, so a replay of the events alone rebuilds the conversation
            return AckFrame(client_id=inp.client_id, message_id=start.assistant_message_id,
                            user_message_id=start.user_message_id, duplicate=False, persona=persona_id, text=inp.text,
                            project_id=start.project_id, mode=start.mode).model_dump(exclude={"seq", "conversation_id"})

        def admit(duplicate: convs.TurnStart | None, used: int) -> str | None:
            """In the opening transaction: refuse (raise) or continue, in which conversation."""
            wait = self.rate_limited(caller)
            if wait is not None:
                raise TurnRejected("rate_limited", f"too many messages; retry in {wait} s", retryable=True,
                                   retry_after=wait)
            if inp.history is not None:
                used += sum(count_tokens(h.content) for h in inp.history) + count_tokens(inp.text)
            if used >= s.settings.conversation_token_budget:
                raise TurnRejected("token_budget_exceeded", f"this conversation used {used} tokens (limit "
                                   f"{s.settings.conversation_token_budget}); start a new conversation")
            if duplicate is not None:  # a retry of a failed answer: same message, new attempt
                return duplicate.conversation_id
            return inp.conversation_id

        release: Callable[[], None] | None = await self.setup_slot()
        try:
            # one pool job, one transaction: dedupe, limits, the stored message, its ack and the history
            opened = await run_blocking(lambda: convs.open_turn(
                s.db, caller, persona=persona_id, text=inp.text, client_id=inp.client_id,
                conversation_id=inp.conversation_id, project_id=project, mode=inp.mode, worker_id=s.hub.worker_id,
                ack=ack, admit=admit))
            start = opened.start
            if start.duplicate:  # a concurrent re-send won the race to insert
                return Duplicate(start)
            if opened.human is not None:
                return HumanOwned(start, {**ack(start), "seq": opened.ack_seq,
                                          "conversation_id": start.conversation_id})
            history = inp.history if inp.history is not None else [HistoryMessage(**h) for h in opened.history]
            req = TurnRequest(persona=persona_id, text=inp.text, user_id=caller.user_id, history=history,
                              project_id=start.project_id, mode=start.mode, conversation_id=start.conversation_id,
                              sampling=inp.sampling, instructions=inp.instructions,
                              visitor_ticket_limits=(self.settings.visitor_tickets_per_address,
                                                     self.settings.visitor_tickets_per_site))
            turn = RunningTurn(start, {**ack(start), "seq": opened.ack_seq, "conversation_id": start.conversation_id},
                               owner_of(caller))
            self.running[start.conversation_id] = turn
            turn.task = asyncio.create_task(self._run(caller, turn, req, release),
                                            name=f"turn-{start.assistant_message_id}")
            release = None  # the turn gives its slot back once its evidence is gathered
            return turn
        finally:
            if release is not None:
                release()

    async def setup_slot(self) -> Callable[[], None]:
        """Wait for one of the worker's setup slots (MENTOR_TURN_SETUP_SLOTS) and return its release (safe
        to call twice). A turn holds one from its opening transaction until its evidence is gathered.

        Why: under a burst, turns that all advance at once through their few steps (store the message,
        tools, embedding, search) share the machine and reach their first token late together; with
        a bounded number in setup, first come first served, most start streaming earlier and the last
        no later. burst_bench.py, 300 turns, four paired runs: first token p50 1.62-2.17 -> 1.29-1.49 s,
        p95 2.00-2.58 -> 1.76-1.99 s; fewer slots (16, 32) starve the batching (embedder, event writer)
        and lose throughput. The price: the ack waits for the slot too (p50 0.27-0.50 -> 0.60-0.76 s).
        Waiting turns cost nothing; the model's own time to first token holds no slot.
        """
        waited = time.perf_counter()
        await self.setup_slots.acquire()
        metrics.SETUP_WAIT_SECONDS.observe(time.perf_counter() - waited)
        metrics.SETUP_BUSY.inc()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.setup_slots.release()
                metrics.SETUP_BUSY.dec()

        return release

    def rate_limited(self, caller: Caller) -> float | None:
        """Seconds to wait, or None. A visitor is limited per visitor, per network address and per site,
        because an Origin header can be copied: one client cannot use up a whole site's allowance."""
        s = self
        if not caller.anonymous:
            return s.limiter.hit(f"user:{caller.user_id}", s.settings.user_messages_per_minute)
        # the address and the site first: a flood of fresh visitor ids from one address is refused before
        # each of them gets a bucket of its own
        buckets = [(f"address:{caller.address}", s.settings.address_messages_per_minute),
                   (f"site:{caller.site_id}", s.settings.site_messages_per_minute),
                   (f"visitor:{caller.visitor_id}", s.settings.visitor_messages_per_minute)]
        for key, per_minute in buckets:
            if (wait := s.limiter.hit(key, per_minute)) is not None:
                return wait
        return None

    # -- running ----------------------------------------------------------------------------------
    async def _run(self, caller: Caller, turn: RunningTurn, req: TurnRequest, release: Callable[[], None]) -> None:
        s = self
        out = TurnLog(s, caller, turn)
        started = time.perf_counter()
        first = True
        metrics.TURNS.labels(req.persona).inc()
        try:
            async for event in arun_turn(req, db=s.db, provider=s.provider, cancel=turn.cancel_flag,
                                         grounding=s.settings.grounding, on_prepared=release):
                if out.failed:
                    break
                # tokens are most of a turn's events: build their payload directly, not through pydantic
                payload = {"type": "token", "delta": event.delta} if event.type == "token" else event.model_dump()
                kind = payload["type"]
                if kind == "token":
                    out.answer.append(payload["delta"])
                    if first:
                        metrics.FIRST_EVENT_SECONDS.observe(time.perf_counter() - started)
                        first = False
                elif kind == "answer_replaced":  # strict grounding: what was streamed so far is withdrawn
                    out.answer.clear()
                elif kind == "tool_result":
                    metrics.TOOL_CALLS.labels(payload["name"], "error" if payload["error"] else "ok").inc()
                elif kind == "error":
                    metrics.ERRORS.labels(payload["code"]).inc()
                elif kind == "done":
                    usage = payload["usage"]
                    metrics.TOKENS.labels("prompt").inc(usage["prompt_tokens"])
                    metrics.TOKENS.labels("completion").inc(usage["completion_tokens"])
                    status = {"cancelled": "cancelled", "error": "error"}.get(payload["finish_reason"], "complete")
                    out.store(payload, finish=("".join(out.answer), status, usage))
                    continue
                out.store(payload)
        except DatabaseUnavailable as exc:  # a tool or retrieval could not reach the database
            await out.drain()
            out.lost(exc)
        except Exception as exc:  # never leave a message "streaming" forever
            log.exception("turn failed", extra={"conversation_id": out.conv})
            metrics.ERRORS.labels("internal").inc()
            out.store(event_payload(ServerError(code="internal", message=f"the turn failed: {type(exc).__name__}")))
            done = DoneFrame(finish_reason="error", provider=s.provider.name,
                             usage=Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0))
            out.store(event_payload(done), finish=("".join(out.answer), "error", None))
        finally:
            release()
            await out.drain()
            turn.queue.put_nowait(_END)
            if self.running.get(out.conv) is turn:
                del self.running[out.conv]
            elapsed = time.perf_counter() - started
            metrics.TURN_SECONDS.observe(elapsed)
            log.info("turn finished", extra={"conversation_id": out.conv, "persona": req.persona,
                                             "duration_ms": round(elapsed * 1000, 1)})

    # -- cancelling and following -----------------------------------------------------------------
    async def cancel(self, caller: Caller, conversation_ids: list[str]) -> bool:
        """Stop the caller's turns in these conversations, on whichever worker runs them; False if none ran."""
        owner, found = owner_of(caller), False
        for cid in conversation_ids:
            turn = self.running.get(cid)
            if turn is not None:
                if turn.owner == owner:  # a conversation id seen elsewhere (a log line) cancels nothing
                    turn.cancel()
                    found = True
                continue
            try:
                await run_blocking(convs.get_conversation, self.db, cid, caller)
            except NotFound:
                continue
            if await run_blocking(convs.latest_streaming_message, self.db, cid) is not None:
                await self.hub.cancel_elsewhere(cid)
                found = True
        return found

    def cancel_here(self, conversation_id: str) -> None:
        """A cancel notification from another worker (ownership already checked there)."""
        turn = self.running.get(conversation_id)
        if turn is not None:
            turn.cancel()

    async def follow(self, conversation_id: str, after_seq: int, only_message: int | None = None,
                     forever: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Stored events after `after_seq`, then new ones as they are stored, while an answer streams
        (only `only_message`'s, if given) — or, with `forever`, until the caller stops (a conversation a
        person may write into at any time). Waits on notifications, not a polling loop."""
        hub, last = self.hub, after_seq
        while True:
            wake = hub.watch(conversation_id)
            try:
                events, streaming = await run_blocking(convs.read_on, self.db, conversation_id, last)
                for event in events:
                    last = event["seq"]
                    if only_message is None or event["message_id"] == only_message:
                        yield event
                if not forever and (streaming is None or (only_message is not None and streaming != only_message)):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), FALLBACK_S)
            finally:
                hub.unwatch(conversation_id, wake)


class TurnLog:
    """A turn's events on their way out: to the event writer, and once stored (with a seq) to the turn's queue.

    If storing fails (the database went away), the model is stopped, the client gets one typed error
    without a seq, and the message is closed with its partial answer once the database is back.
    """

    def __init__(self, s: TurnService, caller: Caller, turn: RunningTurn) -> None:
        self.s, self.user_id, self.turn = s, caller.user_id, turn
        self.conv, self.msg = turn.start.conversation_id, turn.start.assistant_message_id
        self.answer: list[str] = []
        self.broken = threading.Event()  # set by the writer the moment an event of this turn is not stored
        self.reported = False
        self.outstanding = 0  # events handed to the writer and not settled yet
        self.settled = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    @property
    def failed(self) -> bool:
        return self.broken.is_set()

    def store(self, payload: dict[str, Any], finish: tuple[str, str, dict | None] | None = None) -> None:
        if self.failed:
            return
        extra = {"conversation_id": self.conv, "message_id": self.msg}  # the envelope (server/protocol.py)
        queue = self.turn.queue

        def stored(seq: int) -> None:
            payload.update(seq=seq, **extra)
            if payload["type"] == "done":  # over for the client the moment it can read `done`: the next
                self.turn.answered = True  # message is not `too_many_turns` while the task winds down
            queue.put_nowait(payload)
            self._settled()

        def failed(exc: Exception) -> None:
            self.lost(exc)
            self._settled()

        self.outstanding += 1
        self.settled.clear()
        self.s.writer.submit(Pending(events.NewEvent(self.conv, self.user_id, self.msg, payload, finish), self.loop,
                                     on_stored=stored, on_error=failed, broken=self.broken))

    def _settled(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.settled.set()

    def lost(self, exc: Exception) -> None:
        """On the loop, for each event that could not be stored; acts on the first."""
        if self.reported:
            return
        self.reported = True
        self.broken.set()
        self.turn.cancel()
        code = exc.code if isinstance(exc, MentorError) else "internal"
        log.warning("turn events could not be stored: %s", exc, extra={"conversation_id": self.conv, "code": code})
        metrics.ERRORS.labels(code).inc()
        self.turn.queue.put_nowait({
            "type": "error", "code": code, "retryable": isinstance(exc, DatabaseUnavailable), "retry_after": 1.0,
            "message": str(exc) if isinstance(exc, MentorError) else "the turn could not be stored", "seq": None,
            "conversation_id": self.conv, "message_id": self.msg})
        threading.Thread(target=_close_when_back, args=(self.s.db, self.msg, "".join(self.answer)), daemon=True,
                         name=f"close-{self.msg}").start()

    async def drain(self) -> None:
        """Wait until the writer has handled everything this turn handed it (so `done` is the last item)."""
        if self.outstanding:
            await self.settled.wait()


def _close_when_back(db: Any, message_id: int, partial: str, give_up_s: float = 3600.0) -> None:
    """Mark a turn cut off by a database outage as failed, keeping its partial answer, once writes work again."""
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        try:
            convs.fail_message(db, message_id, partial)
            return
        except DatabaseUnavailable:
            time.sleep(1.0)
    log.error("could not close message after the outage", extra={"message_id": message_id})
