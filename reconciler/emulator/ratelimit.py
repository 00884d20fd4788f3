"""Per-merchant sliding-window rate limits on the injected clock."""

from __future__ import annotations

from collections import deque

from reconciler.emulator.settings import RateLimit


class RateLimiter:
    """Remembers when each (merchant, endpoint) was admitted; refused requests do not count."""

    def __init__(self) -> None:
        self._admitted: dict[tuple[str, str], deque[float]] = {}

    def admit(self, mchid: str, endpoint: str, limit: RateLimit | None, now: float) -> bool:
        if limit is None:
            return True
        window = self._admitted.setdefault((mchid, endpoint), deque())
        while window and window[0] <= now - limit.per_seconds:
            window.popleft()
        if len(window) >= limit.count:
            return False
        window.append(now)
        return True
