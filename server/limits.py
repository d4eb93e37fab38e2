"""Rate limits: token buckets per key (a user, a visitor, an address, a site), per worker process."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Token buckets per key (user or site), refilled continuously. Per worker process.

    Memory is bounded by activity, not by history: a bucket that has refilled is the same as none, so
    such buckets are dropped every `SWEEP_EVERY` hits (a stream of fresh visitor ids leaves nothing behind).
    """

    SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float, int]] = {}  # key -> (tokens, when, per minute)
        self._lock = threading.Lock()
        self._hits = 0

    def hit(self, key: str, per_minute: int) -> float | None:
        """Take one token; return None if allowed, else the seconds until one is available."""
        rate = per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            self._hits += 1
            if self._hits % self.SWEEP_EVERY == 0:
                self._sweep(now)
            tokens, stamp, _ = self._buckets.get(key, (float(per_minute), now, per_minute))
            tokens = min(float(per_minute), tokens + (now - stamp) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now, per_minute)
                return None
            self._buckets[key] = (tokens, now, per_minute)
            return round((1 - tokens) / rate, 2)

    def _sweep(self, now: float) -> None:
        full = [key for key, (tokens, stamp, per_minute) in self._buckets.items()
                if tokens + (now - stamp) * per_minute / 60.0 >= per_minute]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
