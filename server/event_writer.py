"""One writer thread per worker logs every turn event, many per transaction (group commit).

Profiled with 200 conversations streaming at once: 71% of turn-thread time was spent waiting for a
pooled connection, because every token was its own transaction. Now turn threads hand events to
this queue; the writer drains what has accumulated, stores it in one transaction, and only then
hands each event (with its seq) on to the client — so "stored before sent" still holds. With one
turn running, a batch is one event and nothing waits; under load, batches grow instead of queues.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from store.conversations import NewEvent, append_events
from store.db import Database
from store.errors import DatabaseUnavailable

log = logging.getLogger("mentor.writer")
MAX_BATCH = 2000


@dataclass
class Pending:
    item: NewEvent
    on_stored: Callable[[int], None]
    on_error: Callable[[Exception], None]
    processed: threading.Event = field(default_factory=threading.Event)


class EventWriter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True, name="event-writer").start()

    def submit(self, pending: Pending) -> Pending:
        self.queue.put(pending)
        return pending

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[Pending]) -> None:
        try:
            seqs = append_events(self.db, [p.item for p in batch])
        except Exception as exc:  # noqa: BLE001 - reported to each turn; the writer must live on
            if not isinstance(exc, DatabaseUnavailable) and len({p.item.conversation_id for p in batch}) > 1:
                for pending in batch:  # one bad conversation (e.g. deleted) must not fail everyone else's events
                    self._write([pending])
                return
            for pending in batch:
                try:
                    pending.on_error(exc)
                finally:
                    pending.processed.set()
            return
        for pending, seq in zip(batch, seqs, strict=True):
            try:
                pending.on_stored(seq)
            except Exception:  # noqa: BLE001 - a consumer's problem must not stop the writer
                log.exception("event consumer failed")
            finally:
                pending.processed.set()
