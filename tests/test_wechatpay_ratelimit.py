"""Token-bucket pacing, measured with an injected clock (no real waiting)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.limits import DEFAULT_LIMITS, FALLBACK_LIMIT, Limit
from reconciler.wechatpay.ratelimit import RateLimiter


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


def test_documented_defaults() -> None:
    assert DEFAULT_LIMITS["favor_create"] == Limit(60, 60.0)
    assert DEFAULT_LIMITS["busifavor_create"] == Limit(1000, 60.0)
    assert DEFAULT_LIMITS["favor_detail"] == DEFAULT_LIMITS["favor_list"] == Limit(500, 1.0)
    for name in ("favor_start", "favor_pause", "favor_restart"):
        assert DEFAULT_LIMITS[name] == Limit(1000, 60.0)
    for name in ("busifavor_detail", "busifavor_modify", "busifavor_budget"):
        assert DEFAULT_LIMITS[name] == Limit(100, 1.0)


def test_favor_create_is_paced_to_one_per_second() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    for _ in range(61):
        limiter.acquire("m1", "favor_create")
    assert t.now == pytest.approx(60.0)
    assert t.slept == pytest.approx([1.0] * 60)


def test_burst_of_one_second_then_steady_rate() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    waits = [limiter.acquire("m1", "favor_detail") for _ in range(502)]
    assert waits[:500] == [0.0] * 500
    assert waits[500:] == pytest.approx([1 / 500, 1 / 500])


def test_idle_time_refills_the_bucket_up_to_capacity_only() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    limiter.acquire("m1", "busifavor_create")  # capacity 16 (one second of 1000/min)
    t.now += 3600
    waits = [limiter.reserve("m1", "busifavor_create") for _ in range(17)]
    assert waits[:16] == [0.0] * 16
    assert waits[16] == pytest.approx(60 / 1000)


def test_buckets_are_per_merchant_and_per_endpoint() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    assert limiter.reserve("m1", "favor_create") == 0.0
    assert limiter.reserve("m2", "favor_create") == 0.0
    assert limiter.reserve("m1", "favor_start") == 0.0
    assert limiter.reserve("m1", "favor_create") == pytest.approx(1.0)


def test_overrides_and_fallback() -> None:
    limiter = RateLimiter({"favor_create": Limit(6, 60.0, burst=2)}, clock=lambda: 0.0)
    assert [limiter.reserve("m", "favor_create") for _ in range(4)] == pytest.approx(
        [0.0, 0.0, 10.0, 20.0]
    )
    assert limiter.limit_for("something_new") == FALLBACK_LIMIT
    assert limiter.limits["favor_detail"] == DEFAULT_LIMITS["favor_detail"]


def test_reservations_are_serialised_across_threads() -> None:
    """At a frozen instant, 100 threads must get 100 distinct, evenly spaced slots."""
    limiter = RateLimiter(clock=lambda: 0.0, sleep=lambda s: None)
    barrier = threading.Barrier(20)

    def take(_: int) -> list[float]:
        barrier.wait()
        return [limiter.reserve("m1", "favor_create") for _ in range(5)]

    with ThreadPoolExecutor(20) as pool:
        waits = sorted(w for chunk in pool.map(take, range(20)) for w in chunk)
    assert waits == pytest.approx([float(i) for i in range(100)])


@pytest.mark.parametrize(
    "args", [(0, 1.0), (1, 0.0), (1, 1.0, 0)], ids=["count", "period", "burst"]
)
def test_invalid_limits_are_refused(args: tuple[int, float] | tuple[int, float, int]) -> None:
    with pytest.raises(ValueError, match="invalid rate limit"):
        Limit(*args)
