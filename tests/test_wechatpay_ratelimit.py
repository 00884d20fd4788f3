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


def test_burst_of_one_second_then_the_next_window() -> None:
    """500/s: a burst of 500, then no more than 500 in any one second (a sliding window)."""
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    waits = [limiter.acquire("m1", "favor_detail") for _ in range(502)]
    assert waits[:500] == pytest.approx([0.0] * 500)
    assert waits[500:] == pytest.approx([1.0, 0.0])  # the first 500 left the window at 1 s


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


def test_a_margin_keeps_every_window_under_the_limit_with_room_to_spare() -> None:
    """60/min with a 1 % margin: request i + 60 goes out 60.6 s after request i, so a server
    counting a sliding minute never sees 61, even if request i arrives up to 0.6 s late."""
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep, margin=0.01)
    sent = []
    for _ in range(150):
        limiter.acquire("m1", "favor_create")
        sent.append(t.now)
    assert all(b - a >= 60.6 - 1e-9 for a, b in zip(sent, sent[60:], strict=False))
    # Still at least 97 % of the documented rate over the run.
    assert 149 / sent[-1] * 60 >= 0.97 * 60


def test_the_limit_across_all_merchants_holds_for_many_merchants() -> None:
    """favor create: 60/min per merchant and 1000/min for all merchants together."""
    limiter = RateLimiter(clock=lambda: 0.0, sleep=lambda s: None)
    waits = sorted(limiter.reserve(f"m{i}", "favor_create") for i in range(40) for _ in range(30))
    # 1200 creates of 40 merchants: no more than 1000 in any one minute.
    assert sum(1 for w in waits if w < 60.0) <= 1000
    assert limiter.reserve("fresh", "favor_start") == 0.0  # other endpoints are not held up


def test_merchant_overrides_keep_the_global_limit() -> None:
    limiter = RateLimiter(clock=lambda: 0.0, sleep=lambda s: None)
    limiter.set_merchant_limits("big", {"favor_create": Limit(100_000, 60.0, burst=100_000)})
    assert limiter.limit_for("favor_create", "big").count == 100_000
    assert limiter.limit_for("favor_create", "small") == DEFAULT_LIMITS["favor_create"]
    waits = [limiter.reserve("big", "favor_create") for _ in range(1001)]
    assert waits[-1] >= 60.0  # the 1001st waits for the minute across all merchants


def test_429s_are_counted_per_merchant_and_call() -> None:
    limiter = RateLimiter()
    limiter.note_throttled("m1", "favor_create")
    limiter.note_throttled("m1", "favor_create")
    limiter.note_throttled("m2", "busifavor_create")
    assert limiter.throttled() == {("m1", "favor_create"): 2, ("m2", "busifavor_create"): 1}


def test_ready_in_reserves_nothing() -> None:
    limiter = RateLimiter(clock=lambda: 0.0, sleep=lambda s: None)
    assert limiter.ready_in("m", "favor_create") == 0.0
    limiter.reserve("m", "favor_create")
    assert limiter.ready_in("m", "favor_create") == pytest.approx(1.0)
    assert limiter.reserve("m", "favor_create") == pytest.approx(1.0)
