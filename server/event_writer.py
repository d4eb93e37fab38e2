"""One writer thread per worker logs every turn event, many per transaction (group commit).

Profiled with 200 conversations streaming at once: 71% of turn time was spent waiting for a pooled
connection, because every token was its own transaction. Now turns hand events to this queue; the
writer drains what has accumulated, stores it in one transaction (one call of the database's
`append_events`), and only then hands each event (with its seq) back to the event loop — one wake-up
per batch, not per event — so "stored before sent" still holds. The same transaction NOTIFYs
`mentor_events` with the batch's conversations, so clients following them from other workers read on
(server/hub.py).

With one turn running a batch is one event and nothing waits; under load, batches grow instead of
queues. A batch begins at most every `commit_interval_s` (MENTOR_EVENT_COMMIT_MS): while the writer
is busy a token may wait that long for company, and the transactions, each with its fixed cost in
the worker and in PostgreSQL, become fewer (numbers: README, Concurrency).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import DatabaseUnavailable, WorkerFenced
from store.db import Database
from store.events import NewEvent, append_events

log = logging.getLogger("mentor.writer")
MAX_BATCH = 2000


@dataclass
class Pending:
    """An event to store; `on_stored(seq)` or `on_error(exc)` then runs on `loop`.

    `broken` (shared by a turn's events) is set by the writer the moment one of them fails, so the turn
    stops at once and its later events fail fast instead of each waiting for the database.
    """

    item: NewEvent
    loop: asyncio.AbstractEventLoop
    on_stored: Callable[[int], None]
    on_error: Callable[[Exception], None]
    broken: threading.Event = field(default_factory=threading.Event)

    def settle(self, seq: int | None, exc: Exception | None) -> None:
        """On the loop: hand the outcome to the turn (a consumer's bug must not lose the others)."""
        try:
            if exc is None:
                self.on_stored(seq)
            else:
                self.on_error(exc)
        except Exception:  # noqa: BLE001
            log.exception("event consumer failed")


def _settle_all(outcomes: list[tuple[Pending, int | None, Exception | None]]) -> None:
    for pending, seq, exc in outcomes:
        pending.settle(seq, exc)


class EventWriter:
    def __init__(self, db: Database, on_batch: Callable[[set[str]], None] | None = None,
                 commit_interval_s: float = 0.0, lease: Callable[[], int | None] = lambda: None,
                 on_fenced: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.commit_interval_s = commit_interval_s
        self.on_batch = on_batch  # on the loop, after a batch is delivered: the conversations it touched
        self.lease = lease  # the worker id whose lease the batches are written under (None: no lease yet)
        self.on_fenced = on_fenced  # the lease was fenced off: the worker must end (server/hub.py)
        self.queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True, name="event-writer").start()

    def submit(self, pending: Pending) -> Pending:
        self.queue.put(pending)
        return pending

    def _run(self) -> None:
        began = 0.0
        while True:
            batch = [self.queue.get()]
            wait = began + self.commit_interval_s - time.monotonic()
            if wait > 0:  # the last batch began moments ago: let this one gather company
                time.sleep(wait)
            began = time.monotonic()
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            outcomes = self._write(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}
            for outcome in outcomes:
                by_loop.setdefault(outcome[0].loop, []).append(outcome)
            for loop, items in by_loop.items():
                with contextlib.suppress(RuntimeError):  # the loop closed (shutting down): nobody to tell
                    loop.call_soon_threadsafe(_settle_all, items)
                    if self.on_batch is not None:
                        loop.call_soon_threadsafe(self.on_batch, {p.item.conversation_id for p, _, _ in items})

    def _write(self, batch: list[Pending]) -> list[tuple[Pending, int | None, Exception | None]]:
        doomed = [(p, None, StoreAborted("an earlier event of this turn was not stored")) for p in batch
                  if p.broken.is_set()]
        batch = [p for p in batch if not p.broken.is_set()]
        if not batch:
            return doomed
        try:
            seqs = append_events(self.db, [p.item for p in batch], notify=True, writer=self.lease())
        except Exception as exc:  # noqa: BLE001 - reported to each turn; the writer must live on
            if isinstance(exc, WorkerFenced):
                self.on_fenced()
            elif not isinstance(exc, DatabaseUnavailable) and len({p.item.conversation_id for p in batch}) > 1:
                # one bad conversation (e.g. deleted) must not fail everyone else's events
                return doomed + [outcome for pending in batch for outcome in self._write([pending])]
            for pending in batch:
                pending.broken.set()
            return doomed + [(pending, None, exc) for pending in batch]
        return doomed + [(pending, seq, None) for pending, seq in zip(batch, seqs, strict=True)]


class StoreAborted(Exception):
    """Not stored because an earlier event of the same turn could not be."""
