"""What the app needs, built once at start-up: settings, database, model provider, rate limiter."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.llm import ChatProvider
from server.event_writer import EventWriter
from store.db import Database
from store.settings import Settings


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
    running: dict[str, tuple[str, threading.Event]] = field(default_factory=dict)  # conversation -> (owner, cancel)
    writer: EventWriter = field(init=False)

    def __post_init__(self) -> None:
        self.writer = EventWriter(self.db)


async def stream_from_thread(produce: Callable[[Callable[[Any], None]], None], *, name: str = "turn"):  # type: ignore[no-untyped-def]
    """Run blocking `produce(emit)` in a worker thread and yield what it emits, in order.

    Turns are synchronous (database, model); this is the one bridge from their thread to the event
    loop. The worker keeps going if the consumer stops, and an emit after the loop closed (server
    shutting down) is dropped rather than crashing the worker.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    def emit(item: Any) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            produce(emit)
        finally:
            emit(done)

    threading.Thread(target=work, daemon=True, name=name).start()
    while (item := await queue.get()) is not done:
        yield item
