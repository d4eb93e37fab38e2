"""This worker's link to the other workers: PostgreSQL LISTEN/NOTIFY, no other infrastructure.

- `mentor_events` (payload: conversation ids): new events were stored. A client following a
  conversation (resume, a second tab, a re-sent message) waits here instead of polling, whichever
  worker streams the turn.
- `mentor_signal` (payload: JSON with a conversation id): what is not stored — someone is typing.
- `mentor_inbox` (payload: a conversation id, from a trigger on `handoffs`): the support queue changed;
  agents' inbox sockets reload it.
- `mentor_cancel` (payload: a conversation id): stop the turn streaming in it, if it runs here. The
  sender has already checked that the caller owns the conversation.
- Liveness: while the worker lives, its listening session holds an advisory lock on the worker's id
  (stored on each answer it streams). A killed worker's session ends, the lock is free, and every
  worker's janitor closes that worker's unfinished answers as `interrupted` (store.conversations.close_orphans).
- A worker that stops running but keeps its sessions (frozen, its event loop hung) keeps that lock, so
  it also renews a lease from its event loop. A lease not renewed for MENTOR_WORKER_LEASE_S is fenced
  off by another worker's janitor (store/workers.py): its answers are closed like a dead worker's, and
  if it runs again its writes are refused and it ends itself (SIGKILL: the end the others already
  handle); its process manager starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
from collections.abc import Callable

import psycopg

from agents.aio import run_blocking
from core.errors import MentorError
from store import conversations as convs
from store import workers
from store.db import Database

log = logging.getLogger("mentor.hub")
JANITOR_S = 2.0  # how often orphaned answers are looked for
FALLBACK_S = 2.0  # a follower re-reads at least this often, in case a notification was missed
RENEW_S = 2.0  # how often the lease is renewed


def end_this_process() -> None:
    """A fenced worker's end: SIGKILL, exactly what the other workers and the process manager handle."""
    os.kill(os.getpid(), signal.SIGKILL)


class Hub:
    def __init__(self, db: Database, lease_s: float = 15.0) -> None:
        self.db = db
        self.worker_id = secrets.randbits(62) + 1  # positive bigint, unique per process start
        self.lease_s = lease_s
        self.lease_registered = False  # from then on this worker's events are written under its lease
        self.on_fenced: Callable[[], None] = end_this_process
        self._renewing_since: float | None = None  # loop time since when every renewal has succeeded
        self.on_cancel: Callable[[str], None] = lambda conversation_id: None
        self.listening: asyncio.Event | None = None  # created on the serving loop in start()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._signals: dict[str, set[Callable[[dict], None]]] = {}  # conversation -> typing listeners
        self._inbox: set[Callable[[], None]] = set()  # agents' sockets, told when the queue changes
        self._tasks: list[asyncio.Task] = []

    # -- followers ------------------------------------------------------------------------------
    def watch(self, conversation_id: str) -> asyncio.Event:
        """Register before reading, so a notification arriving in between is not missed."""
        event = asyncio.Event()
        self._watchers.setdefault(conversation_id, set()).add(event)
        return event

    def unwatch(self, conversation_id: str, event: asyncio.Event) -> None:
        watchers = self._watchers.get(conversation_id)
        if watchers is not None:
            watchers.discard(event)
            if not watchers:
                del self._watchers[conversation_id]

    def signal(self, conversation_ids: set[str] | list[str]) -> None:
        """New events in these conversations (from this worker's writer, or a notification)."""
        if not self._watchers:
            return
        for cid in conversation_ids:
            for event in self._watchers.get(cid, ()):
                event.set()

    # -- signals: typing, which is not stored --------------------------------------------------------
    def listen_signals(self, conversation_id: str, callback: Callable[[dict], None]) -> None:
        self._signals.setdefault(conversation_id, set()).add(callback)

    def stop_signals(self, conversation_id: str, callback: Callable[[dict], None]) -> None:
        listeners = self._signals.get(conversation_id)
        if listeners is not None:
            listeners.discard(callback)
            if not listeners:
                del self._signals[conversation_id]

    async def send_signal(self, conversation_id: str, signal: dict) -> None:
        """Tell every worker's sockets following the conversation (e.g. `{"type": "typing", "who": "agent"}`)."""
        payload = json.dumps({"conversation_id": conversation_id, **signal})

        def notify() -> None:
            with self.db.service() as conn:
                conn.execute("SELECT pg_notify('mentor_signal', %s)", (payload,))

        await run_blocking(notify)

    def _deliver_signal(self, payload: str) -> None:
        try:
            signal = json.loads(payload)
        except ValueError:
            return
        for callback in list(self._signals.get(str(signal.get("conversation_id")), ())):
            callback(signal)

    # -- the support queue ----------------------------------------------------------------------------
    def listen_inbox(self, callback: Callable[[], None]) -> None:
        self._inbox.add(callback)

    def stop_inbox(self, callback: Callable[[], None]) -> None:
        self._inbox.discard(callback)

    async def cancel_elsewhere(self, conversation_id: str) -> None:
        def notify() -> None:
            with self.db.service() as conn:
                conn.execute("SELECT pg_notify('mentor_cancel', %s)", (conversation_id,))

        await run_blocking(notify)

    # -- running --------------------------------------------------------------------------------
    async def start(self, timeout: float = 10.0) -> None:
        """Start listening (and holding the liveness lock) and the janitor; wait until listening."""
        self.listening = asyncio.Event()
        self._tasks = [asyncio.create_task(self._listen(), name="hub-listen"),
                       asyncio.create_task(self._lease(), name="hub-lease"),
                       asyncio.create_task(self._janitor(), name="hub-janitor")]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), timeout)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _listen(self) -> None:
        assert self.listening is not None
        while True:
            try:
                conn = await self._connect()
                async with conn:
                    await conn.execute("SELECT pg_advisory_lock(%s)", (self.worker_id,))
                    await conn.execute("LISTEN mentor_events")
                    await conn.execute("LISTEN mentor_cancel")
                    await conn.execute("LISTEN mentor_signal")
                    await conn.execute("LISTEN mentor_inbox")
                    self.listening.set()
                    self.signal(list(self._watchers))  # anything missed while disconnected: read again
                    async for note in conn.notifies():
                        if note.channel == "mentor_events":
                            self.signal(note.payload.split())
                        elif note.channel == "mentor_cancel":
                            self.on_cancel(note.payload)
                        elif note.channel == "mentor_signal":
                            self._deliver_signal(note.payload)
                        elif note.channel == "mentor_inbox":
                            for callback in list(self._inbox):
                                callback()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, MentorError, OSError) as exc:
                if self.listening.is_set():
                    log.warning("lost the notification connection; reconnecting: %s", str(exc).splitlines()[0]
                                if str(exc) else type(exc).__name__)
                self.listening.clear()
                await asyncio.sleep(1.0)

    async def _connect(self) -> psycopg.AsyncConnection:
        """A session of this worker's own (not pooled), named so that a fence ends it with the pool's."""
        url = await run_blocking(self.db.service_url)
        return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5,
                                                     application_name=workers.session_names(self.db.application_name)[1])

    async def _lease(self) -> None:
        """Renew the lease from the event loop: if the loop stops, so do the renewals."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn = await self._connect()
                async with conn:
                    await workers.register(conn, self.worker_id, self.db.application_name, self.lease_s)
                    self.lease_registered = True
                    last = None
                    while await workers.renew(conn, self.worker_id):
                        now = loop.time()
                        if self._renewing_since is None or (last is not None and now - last > self.lease_s):
                            self._renewing_since = now  # (re)started, or this loop itself stalled
                        last = now
                        await asyncio.sleep(RENEW_S)
                    self.fenced()
                    return
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, MentorError, OSError):
                self._renewing_since = None
                await asyncio.sleep(1.0)

    def lease(self) -> int | None:
        """The lease this worker's events are written under (its id), once taken and until given back."""
        return self.worker_id if self.lease_registered else None

    def fenced(self) -> None:
        """Another worker fenced this one off and closed its answers: nothing of it may be stored now."""
        log.critical("this worker's lease expired and another worker fenced it off; ending it",
                     extra={"worker_id": self.worker_id})
        self.on_fenced()

    def may_fence(self) -> bool:
        """Only a worker that has renewed its own lease for a whole lease period judges others' leases:
        after a database outage every lease is old, and none of them should be fenced for it."""
        since = self._renewing_since
        return since is not None and asyncio.get_running_loop().time() - since >= self.lease_s + RENEW_S

    async def release(self) -> None:
        """A clean stop gives the lease back (the survivors' usual rule closes anything left streaming);
        from here on this worker's events are written without it, and nothing ends the process."""
        self.lease_registered = False
        self.on_fenced = lambda: None
        with contextlib.suppress(psycopg.Error, MentorError, OSError):
            conn = await self._connect()
            async with conn:
                await workers.release(conn, self.worker_id)

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(JANITOR_S)
            if self.may_fence():
                fenced = await self._janitor_step("fencing off stale workers", workers.fence_stale, self.db,
                                                  self.worker_id, self.db.application_name)
                if fenced:
                    log.warning("fenced off workers whose lease expired", extra={"workers": fenced})
            closed = await self._janitor_step("closing orphaned answers", convs.close_orphans, self.db,
                                              self.worker_id)
            if closed:
                log.warning("closed answers of a stopped worker", extra={"conversations": len(closed)})
                self.signal(closed)

    @staticmethod
    async def _janitor_step(what: str, step: Callable[..., list], *args: object) -> list:
        """One step of a janitor round, on the pool. If it fails, nothing is done this round: the database
        away is the next round's to retry, and a bug is logged; either way the janitor lives on."""
        try:
            return await run_blocking(step, *args)
        except MentorError:
            return []
        except Exception:  # noqa: BLE001 - the janitor must live on
            log.exception("%s failed", what)
            return []
