"""Client-side pacing: one schedule per (merchant, endpoint), shared across threads.

WeChat Pay states its limits per merchant and per interface, and a few across all merchants
(favor create: 60/min per merchant, 1000/min for all of them), so the schedules are keyed the
same way; one `RateLimiter` can be handed to the clients of several merchants. A caller
reserves a slot under a lock and then sleeps outside it, so waiting threads never block each
other's bookkeeping and are served in the order they asked. A waiter given a cancel event
stops waiting the moment it is set and gives its slot back, so the accounting stays right for
a process that carries on.

Each schedule is a virtual-time token bucket (GCRA: one request every `per_seconds / count`,
with a burst of `Limit.capacity`), plus the times of the last `count` requests: request
i + count never goes out less than `per_seconds × (1 + margin)` after request i. A server
counting a sliding window therefore never sees more than `count` requests in one, even when
the requests reach it a little earlier or later than they were sent (thread scheduling,
latency). Without that margin, a run at the ceiling draws a 429 at each window boundary.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType

from reconciler.limits import DEFAULT_LIMITS, FALLBACK_LIMIT, GLOBAL_LIMITS, Limit
from reconciler.wechatpay.cancel import Cancelled, check, pause

ALL_MERCHANTS = "*"
"""The merchant key of the limits that hold across all merchants together."""

MIN_MARGIN_SECONDS = 0.02
"""The least margin added to a window when `margin` is above 0 (one-second windows)."""


class _Schedule:
    __slots__ = ("count", "interval", "log", "spacing", "tat", "tolerance")

    def __init__(self, limit: Limit, now: float, margin: float) -> None:
        self.interval = limit.per_seconds / limit.count
        self.tolerance = (limit.capacity - 1.0) * self.interval
        self.tat = now  # theoretical arrival time of the next request
        window = limit.per_seconds
        extra = 0.0 if margin <= 0 else max(window * margin, MIN_MARGIN_SECONDS)
        self.spacing = window + extra
        self.count = limit.count
        # Each slot's time and how far it moved `tat` (given back when the slot is). A little
        # longer than `count`, so that slots given back leave `count` behind them.
        self.log: deque[tuple[float, float]] = deque(maxlen=limit.count + 16)

    def earliest(self, now: float) -> float:
        at = max(now, self.tat - self.tolerance)
        log = self.log
        if len(log) >= self.count:
            at = max(at, log[-self.count][0] + self.spacing)
        return at

    def commit(self, at: float) -> None:
        before = self.tat
        self.tat = max(before, at) + self.interval
        self.log.append((at, self.tat - before))

    def give_back(self, at: float | None, now: float) -> None:
        """Free the slot reserved for `at` (None: the latest slot already due at `now`)."""
        log = self.log
        entries = [e for e in log if (e[0] == at if at is not None else e[0] <= now)]
        if not entries and at is None and log:
            entries = [log[-1]]
        if entries:
            entry = entries[-1]
            log.remove(entry)
            self.tat -= entry[1]
        else:
            self.tat -= self.interval


class RateLimiter:
    """Thread-safe schedules keyed by (mchid, endpoint), and (`ALL_MERCHANTS`, endpoint) for
    the limits across all merchants.

    `limits` overrides entries of `DEFAULT_LIMITS` by endpoint name; `set_merchant_limits`
    overrides them for one merchant. `margin` (a fraction, e.g. 0.01) lengthens every window
    by that much (at least `MIN_MARGIN_SECONDS`), see the module's docstring. `clock`
    (monotonic seconds) and `sleep` are injectable so tests and benchmarks can measure pacing
    without waiting.
    """

    def __init__(
        self,
        limits: Mapping[str, Limit] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = 0.0,
        global_limits: Mapping[str, Limit] = GLOBAL_LIMITS,
    ) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"invalid rate limit margin {margin!r}: use 0 or more, below 1")
        self.limits: Mapping[str, Limit] = MappingProxyType({**DEFAULT_LIMITS, **(limits or {})})
        self.global_limits: Mapping[str, Limit] = MappingProxyType(dict(global_limits))
        self.margin = margin
        self._merchant_limits: dict[str, Mapping[str, Limit]] = {}
        self._clock = clock
        self._sleep = sleep
        self._schedules: dict[tuple[str, str], _Schedule] = {}
        self._waiting: dict[tuple[str, str], int] = {}
        self._throttled: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def set_merchant_limits(self, mchid: str, limits: Mapping[str, Limit]) -> None:
        """Override limits for one merchant (reconciler.yaml `rate_limits:`); the limits across
        all merchants still hold for it."""
        with self._lock:
            if dict(self._merchant_limits.get(mchid, {})) == dict(limits):
                return  # the same limits again (a second client): keep the pacing so far
            self._merchant_limits[mchid] = MappingProxyType(dict(limits))
            for key in [k for k in self._schedules if k[0] == mchid]:
                del self._schedules[key]

    def limit_for(self, endpoint: str, mchid: str | None = None) -> Limit:
        own = self._merchant_limits.get(mchid) if mchid is not None else None
        if own is not None and endpoint in own:
            return own[endpoint]
        return self.limits.get(endpoint, FALLBACK_LIMIT)

    def _schedule(self, key: tuple[str, str], now: float) -> _Schedule | None:
        mchid, endpoint = key
        schedule = self._schedules.get(key)
        if schedule is None:
            limit = (
                self.global_limits.get(endpoint)
                if mchid == ALL_MERCHANTS
                else self.limit_for(endpoint, mchid)
            )
            if limit is None:
                return None
            schedule = self._schedules[key] = _Schedule(limit, now, self.margin)
        return schedule

    def _take(self, key: tuple[str, str], at_least: float | None = None) -> tuple[float, float]:
        """Reserve `key`'s next slot (not before `at_least`): (its time, seconds from now)."""
        with self._lock:
            now = self._clock()
            schedule = self._schedule(key, now)
            if schedule is None:
                return now, 0.0
            at = schedule.earliest(max(now, at_least or now))
            schedule.commit(at)
            return at, at - now

    def reserve(self, mchid: str, endpoint: str) -> float:
        """Claim the next slot and return the seconds to wait for it, without sleeping: this
        merchant's slot, then a slot across all merchants at that time."""
        at, wait = self._take((mchid, endpoint))
        if endpoint in self.global_limits:
            at, wait = self._take((ALL_MERCHANTS, endpoint), at_least=at)
        return wait

    def ready_in(self, mchid: str, endpoint: str) -> float:
        """Seconds until a call would get a slot without waiting (0: now); reserves nothing."""
        with self._lock:
            now = self._clock()
            at = now
            for key in ((mchid, endpoint), (ALL_MERCHANTS, endpoint)):
                schedule = self._schedule(key, now)
                if schedule is not None:
                    at = max(at, schedule.earliest(now))
            return at - now

    def give_back(self, mchid: str, endpoint: str, at: float | None = None) -> None:
        """Return one reserved slot that was not used (its request was never sent): the one
        due at `at`, or the latest one already due; the slot across all merchants too."""
        with self._lock:
            now = self._clock()
            for key in ((mchid, endpoint), (ALL_MERCHANTS, endpoint)):
                schedule = self._schedules.get(key)
                if schedule is not None:
                    schedule.give_back(at if key[0] != ALL_MERCHANTS else None, now)

    def acquire(self, mchid: str, endpoint: str, *, cancel: threading.Event | None = None) -> float:
        """Block until this merchant may call `endpoint` again; return the seconds waited.

        First this merchant's slot is reserved and waited for, then (for an endpoint limited
        across all merchants) a slot of that limit, reserved when the merchant's is due: the
        schedule across merchants then sees the requests in the order they go out, and one
        merchant's calls booked ahead never hold another's. If `cancel` is set before a slot
        is due, the slots are given back and `Cancelled` is raised; a set event takes none.
        """
        check(cancel)
        waited = self._wait((mchid, endpoint), cancel, mchid)
        if endpoint in self.global_limits:
            waited += self._wait((ALL_MERCHANTS, endpoint), cancel, mchid)
        return waited

    def _wait(self, key: tuple[str, str], cancel: threading.Event | None, mchid: str) -> float:
        at, wait = self._take(key)
        if wait > 0:
            shown = (mchid, key[1])
            with self._lock:
                self._waiting[shown] = self._waiting.get(shown, 0) + 1
            try:
                pause(wait, self._sleep, cancel)
            except Cancelled:
                with self._lock:
                    now = self._clock()
                    mine = self._schedules.get((mchid, key[1]))
                    if mine is not None:
                        mine.give_back(at if key[0] == mchid else None, now)
                    if key[0] == ALL_MERCHANTS:
                        shared = self._schedules.get(key)
                        if shared is not None:
                            shared.give_back(at, now)
                raise
            finally:
                with self._lock:
                    self._waiting[shown] -= 1
        return wait

    def waiting(self) -> dict[tuple[str, str], int]:
        """How many calls are waiting for a slot right now, by (mchid, endpoint): what a
        progress display shows as "waiting for the rate limit"."""
        with self._lock:
            return {k: n for k, n in self._waiting.items() if n > 0}

    def note_throttled(self, mchid: str, endpoint: str) -> None:
        """Count one 429 (frequency limit) answer WeChat Pay gave this merchant's call."""
        with self._lock:
            key = (mchid, endpoint)
            self._throttled[key] = self._throttled.get(key, 0) + 1

    def throttled(self) -> dict[tuple[str, str], int]:
        """Every 429 answer so far, by (mchid, endpoint)."""
        with self._lock:
            return dict(self._throttled)
