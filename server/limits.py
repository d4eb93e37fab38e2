"""Rate limits: token buckets per key (a user, a visitor, an address, a site), per worker process."""

from __future__ import annotations

import threading
import time


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
