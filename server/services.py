"""What the app needs, built once per worker at start-up: settings, database, model provider, rate limiter,
the link to the other workers (hub), the event writer and the turn service."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from agents.llm import ChatProvider, model_health
from agents.personas import personas_without_tools
from server.event_writer import EventWriter
from server.hub import Hub
from server.turns import TurnService
from store.db import Database
from store.settings import Settings

log = logging.getLogger("mentor.services")


class RateLimiter:
    """Token buckets per key (user or site), refilled continuously. Per worker process."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, per_minute: int) -> float | None:
        """Take one token; return None if allowed, else the seconds until one is available."""
        rate = per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - stamp) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return round((1 - tokens) / rate, 2)


@dataclass
class Services:
    settings: Settings
    db: Database
    provider: ChatProvider
    limiter: RateLimiter = field(default_factory=RateLimiter)
    hub: Hub = field(init=False)
    writer: EventWriter = field(init=False)
    turns: TurnService = field(init=False)

    def __post_init__(self) -> None:
        self.hub = Hub(self.db, lease_s=self.settings.worker_lease_s)
        self.writer = EventWriter(self.db, on_batch=self.hub.signal,
                                  commit_interval_s=self.settings.event_commit_ms / 1000,
                                  lease=self.hub.lease, on_fenced=self.hub.fenced)
        self.turns = TurnService(self)

    async def start(self) -> None:
        """On the serving loop: listen for the other workers (and hold this worker's liveness lock)."""
        await self.hub.start()
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

        await self.hub.stop()
        await self.hub.release()
        await close_loop_resources()  # e.g. the model client's HTTP sessions
