"""Knowledge syncs in a serving worker: the jobs an admin starts, run one at a time on a thread of their own
(never on the turns' threads), and the schedule — every worker looks each `MENTOR_SYNC_POLL_S`, and exactly
one of a cluster claims what is due (store.knowledge.claim_due_sources, under an advisory lock).

A sync embeds in small batches (16 chunks), so the questions waiting for the same model wait for one small
batch at most. When the worker stops, its running sync stops after the page it is on and is marked failed
("interrupted"); a worker that dies without stopping leaves its job's heartbeat to go stale, and whichever
worker looks next marks it failed. Either can be re-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from core.errors import Conflict
from core.settings import Settings
from retrieval.sync import run_sync, start_sync
from store import knowledge
from store.db import Database

log = logging.getLogger("mentor.knowledge")
SERVER_EMBED_BATCH = 16


class KnowledgeJobs:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.stopping = threading.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None

    def run(self, source_id: int, job_id: int) -> Future:
        """Run a started job in the background (after those this worker already has)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="knowledge-sync")
        return self._executor.submit(run_sync, self.db, source_id, job_id, connect=self.db.service,
                                     settings=self.settings, batch_size=SERVER_EMBED_BATCH, stop=self.stopping)

    def start_and_run(self, source_id: int, trigger: str = "manual") -> int:
        job_id = start_sync(self.db.service, source_id, trigger)
        self.run(source_id, job_id)
        return job_id

    def tick(self) -> list[int]:
        """Fail the jobs whose process died; start the scheduled syncs that are due (if this worker claims them)."""
        with self.db.service() as conn:
            knowledge.fail_stale_jobs(conn)
            due = knowledge.claim_due_sources(conn)
        started = []
        for source_id in due:
            with contextlib.suppress(Conflict):  # a manual sync of it is running: that one will do
                started.append(self.start_and_run(source_id, "scheduled"))
        return started

    async def start(self) -> None:
        self._task = asyncio.create_task(self._schedule(), name="knowledge-schedule")

    async def _schedule(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_poll_s)
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # noqa: BLE001 - the database may be away; try again next time
                log.warning("knowledge schedule: could not look for due syncs", exc_info=True)

    async def stop(self) -> None:
        self.stopping.set()
        if self._task is not None:
            self._task.cancel()
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
