"""Client-side pacing: one token bucket per (merchant, endpoint), shared across threads.

WeChat Pay states its limits per merchant and per interface, so the buckets are keyed the same
way; one `RateLimiter` can be handed to the clients of several merchants. A caller reserves a
token under a lock and then sleeps outside it, so waiting threads never block each other's
bookkeeping and are served in the order they asked. A waiter given a cancel event stops
waiting the moment it is set and gives its token back, so the accounting stays right for a
process that carries on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

from reconciler.limits import DEFAULT_LIMITS, FALLBACK_LIMIT, Limit
from reconciler.wechatpay.cancel import Cancelled, check, pause


class _Bucket:
    __slots__ = ("limit", "tokens", "updated")

    def __init__(self, limit: Limit, now: float) -> None:
        self.limit = limit
        self.tokens = limit.capacity
        self.updated = now

    def reserve(self, now: float) -> float:
        """Take one token (possibly going into debt); return how long to wait for it."""
        limit = self.limit
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(limit.capacity, self.tokens + elapsed * limit.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / limit.rate

    def give_back(self) -> None:
        self.tokens = min(self.limit.capacity, self.tokens + 1.0)


class RateLimiter:
    """Thread-safe token buckets keyed by (mchid, endpoint).

    `limits` overrides entries of `DEFAULT_LIMITS` by endpoint name. `clock` (monotonic
    seconds) and `sleep` are injectable so tests and benchmarks can measure pacing without
    waiting.
    """

    def __init__(
        self,
        limits: Mapping[str, Limit] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits: Mapping[str, Limit] = MappingProxyType({**DEFAULT_LIMITS, **(limits or {})})
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._waiting: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def limit_for(self, endpoint: str) -> Limit:
        return self.limits.get(endpoint, FALLBACK_LIMIT)

    def reserve(self, mchid: str, endpoint: str) -> float:
        """Claim the next slot and return the seconds to wait for it, without sleeping."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get((mchid, endpoint))
            if bucket is None:
                bucket = self._buckets[(mchid, endpoint)] = _Bucket(self.limit_for(endpoint), now)
            return bucket.reserve(now)

    def give_back(self, mchid: str, endpoint: str) -> None:
        """Return one reserved token that was not used (its request was never sent)."""
        with self._lock:
            bucket = self._buckets.get((mchid, endpoint))
            if bucket is not None:
                bucket.give_back()

    def acquire(self, mchid: str, endpoint: str, *, cancel: threading.Event | None = None) -> float:
        """Block until this merchant may call `endpoint` again; return the seconds waited.

        If `cancel` is set before the token is due, the token is given back and `Cancelled`
        is raised; a set event takes no token at all.
        """
        check(cancel)
        wait = self.reserve(mchid, endpoint)
        if wait > 0:
            key = (mchid, endpoint)
            with self._lock:
                self._waiting[key] = self._waiting.get(key, 0) + 1
            try:
                pause(wait, self._sleep, cancel)
            except Cancelled:
                self.give_back(mchid, endpoint)
                raise
            finally:
                with self._lock:
                    self._waiting[key] -= 1
        return wait

    def waiting(self) -> dict[tuple[str, str], int]:
        """How many calls are waiting for a token right now, by (mchid, endpoint): what a
        progress display shows as "waiting for the rate limit"."""
        with self._lock:
            return {k: n for k, n in self._waiting.items() if n > 0}
