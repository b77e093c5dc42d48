"""Per-key rate limits (token buckets) and the per-minute tallies the audit log gets.

Each key has a bucket of ``burst`` tokens refilled at ``rate`` per second; a request takes one
token, and a request finding the bucket empty is refused (429) with the seconds until a token
is back (``Retry-After``, rounded up). Buckets live in the console process's memory: a
restart refills them.

Uses and refusals are audited per key (or per refusal reason, for requests without a valid
key) per minute: the first one in a minute is written at once, with how many the previous
minute of that key had; the last minute's count is written when the service stops. A flood
of requests therefore costs the log one entry a minute, and every minute with a use or a
refusal has its entry.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TokenBucket", "RateLimiter", "MinuteTally"]


@dataclass
class TokenBucket:
    rate: float
    burst: int
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key id, made full on the key's first request."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def retry_after(self, key_id: str, rate: float, burst: int) -> int:
        """0 when the request may go; else the whole seconds to wait (at least 1)."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None or bucket.rate != rate or bucket.burst != burst:
                bucket = self._buckets[key_id] = TokenBucket(rate, burst, float(burst), now)
            wait = bucket.take(now)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))


class MinuteTally:
    """Counts per name per minute; says when a name's minute starts (module docstring)."""

    def __init__(self) -> None:
        self._minute: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def count(self, name: str, now: float) -> int | None:
        """Count one; ``None`` inside a minute already counted, else the previous minute's
        count (0 for the name's first minute) — the caller audits then."""
        minute = int(now // 60)
        with self._lock:
            current = self._minute.get(name)
            if current is not None and current[0] == minute:
                self._minute[name] = (minute, current[1] + 1)
                return None
            self._minute[name] = (minute, 1)
            return 0 if current is None else current[1]

    def drain(self) -> dict[str, tuple[int, int]]:
        """Every name's last minute and count, emptied (written when the service stops)."""
        with self._lock:
            out, self._minute = self._minute, {}
        return out
