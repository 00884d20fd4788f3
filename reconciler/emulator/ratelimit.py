"""Per-merchant sliding-window rate limits on the injected clock, and limits across all
merchants together (favor create: 1000/min for all merchants, reference §0)."""

from __future__ import annotations

from collections import deque

from reconciler.emulator.settings import RateLimit

ALL_MERCHANTS = "*"


class RateLimiter:
    """Remembers when each (merchant, endpoint) was admitted; refused requests do not count."""

    def __init__(self) -> None:
        self._admitted: dict[tuple[str, str], deque[float]] = {}

    def admit(
        self,
        mchid: str,
        endpoint: str,
        limit: RateLimit | None,
        now: float,
        *,
        across: RateLimit | None = None,
    ) -> bool:
        """Whether the request fits its merchant's window and (`across`) the window of all
        merchants; it counts in both only when it fits both."""
        windows = []
        for who, rule in ((mchid, limit), (ALL_MERCHANTS, across)):
            if rule is None:
                continue
            window = self._admitted.setdefault((who, endpoint), deque())
            while window and window[0] <= now - rule.per_seconds:
                window.popleft()
            if len(window) >= rule.count:
                return False
            windows.append(window)
        for window in windows:
            window.append(now)
        return True
