"""What the app needs, built once per worker at start-up: settings, database, model provider, rate limiter,
the link to the other workers (hub), the event writer and the turn service."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agents.llm import ChatProvider, model_health
from agents.personas import personas_without_tools
from core.settings import Settings
from server.event_writer import EventWriter
from server.hub import Hub
from server.knowledge_jobs import KnowledgeJobs
from server.limits import RateLimiter
from server.turns import TurnService
from store.db import Database

log = logging.getLogger("mentor.services")


@dataclass
class Services:
    settings: Settings
    db: Database
    provider: ChatProvider
    limiter: RateLimiter = field(default_factory=RateLimiter)
    hub: Hub = field(init=False)
    writer: EventWriter = field(init=False)
    turns: TurnService = field(init=False)
    knowledge: KnowledgeJobs = field(init=False)

    def __post_init__(self) -> None:
        self.hub = Hub(self.db, lease_s=self.settings.worker_lease_s)
        self.writer = EventWriter(self.db, on_batch=self.hub.signal,
                                  commit_interval_s=self.settings.event_commit_ms / 1000,
                                  lease=self.hub.lease, on_fenced=self.hub.fenced)
        self.knowledge = KnowledgeJobs(self.db, self.settings)
        self.turns = TurnService(db=self.db, provider=self.provider, settings=self.settings, hub=self.hub,
                                 writer=self.writer, limiter=self.limiter)

    async def start(self) -> None:
        """On the serving loop: listen for the other workers (and hold this worker's liveness lock)."""
        await self.hub.start()
        await self.knowledge.start()
        warm_up = getattr(self.provider, "warm_up", None)
        if warm_up is not None:
            await warm_up()
        await self.report_model()

    async def report_model(self) -> None:
        """Tell the operator at start-up when the model cannot answer, or cannot call tools."""
        health = await model_health(self.provider)
        if not health.ok:
            log.warning("the model endpoint is not ready", extra={"backend": self.provider.name,
                                                                  "detail": health.error})
        if lost := personas_without_tools(health.tools):
            log.warning("the model endpoint's chat template cannot call tools: these personas answer without "
                        "their tools (up-front tools still run): " + "; ".join(
                            f"{p}: {', '.join(t)}" for p, t in lost.items()), extra={"backend": self.provider.name})

    async def stop(self) -> None:
        from agents.aio import close_loop_resources

        await self.knowledge.stop()
        await self.hub.stop()
        await self.hub.release()
        await close_loop_resources()  # e.g. the model client's HTTP sessions
