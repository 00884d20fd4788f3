"""A cancel event (Ctrl-C, SIGTERM) stops every call that is not on the wire yet, at once.

Calls queue behind the rate limiter, the concurrency bound and the retry back-off; all three
waits must end the moment the event is set, while a request already on the wire finishes and
its answer is kept. The waits here are real (the event must wake them), so each test holds its
calls with events rather than long sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx
import pytest

from reconciler.errors import ApiError
from reconciler.limits import Limit
from reconciler.operation import CreateResult
from reconciler.wechatpay.cancel import Cancelled
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.errors import RequestCancelled
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.retry import RetryPolicy
from tests.test_wechatpay_support import (
    MCHID,
    PLATFORM_SERIAL,
    PUB_KEY_ID,
    FakeWeChatPay,
    Reply,
    Sleeps,
    credentials,
)

CREATED = Reply(json={"stock_id": "9856000", "create_time": "2024-05-20T13:29:35+08:00"})
#: Long enough that a test passing in time proves the event woke the wait, not the clock.
LONG = 30.0
#: How quickly every queued call must give up once the event is set.
PROMPT = 0.1


def favor_body(n: int) -> dict[str, Any]:
    return {"stock_name": f"满100减10 #{n}", "out_request_no": f"{MCHID}-20240520-{n}"}


def unthrottled() -> RateLimiter:
    limits = {name: Limit(1_000_000, 1.0, burst=1_000_000) for name in RateLimiter().limits}
    return RateLimiter(limits)


def client(
    fake: FakeWeChatPay,
    cancel: threading.Event,
    *,
    transport: httpx.BaseTransport | None = None,
    mode: str = "public_key",
    rate_limiter: RateLimiter | None = None,
    **kwargs: Any,
) -> WeChatPayClient:
    """A client on the fake that waits in real time (so only the event can cut a wait short)."""
    return WeChatPayClient(
        credentials(mode),
        transport=transport or fake.transport(),
        clock=fake.clock,
        rate_limiter=rate_limiter or unthrottled(),
        random=lambda: 0.5,
        cancel=cancel,
        **kwargs,
    )


class Tokened(RateLimiter):
    """An unthrottled limiter that says when a call has its token (and goes for a slot)."""

    def __init__(self) -> None:
        limits = {name: Limit(1_000_000, 1.0, burst=1_000_000) for name in RateLimiter().limits}
        super().__init__(limits)
        self.given = threading.Semaphore(0)

    def acquire(self, mchid: str, endpoint: str, *, cancel: threading.Event | None = None) -> float:
        waited = super().acquire(mchid, endpoint, cancel=cancel)
        self.given.release()
        return waited


class Held:
    """A transport that keeps each stock request on the wire until `release` is set."""

    def __init__(self, fake: FakeWeChatPay) -> None:
        self.fake = fake
        self.on_wire = threading.Event()
        self.release = threading.Event()
        self.entered = 0
        self._lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v3/certificates":
            with self._lock:
                self.entered += 1
            self.on_wire.set()
            assert self.release.wait(5), "the test never released the request"
        return self.fake.handle(request)


def outcome(future: Future[Any]) -> Any:
    """The call's result, or the exception it raised."""
    error = future.exception()
    return error if error is not None else future.result()


def stock_requests(fake: FakeWeChatPay) -> list[httpx.Request]:
    return [r for r in fake.requests if r.url.path != "/v3/certificates"]


def test_queued_creates_stop_at_once_and_give_their_tokens_back() -> None:
    """Issue 10, defect 4: 20 creates queued behind 1/s pacing; only the first was sent."""
    fake = FakeWeChatPay()
    fake.default = CREATED
    cancel = threading.Event()
    limiter = RateLimiter({"favor_create": Limit(1, 1.0)})
    with (
        client(fake, cancel, rate_limiter=limiter) as c,
        ThreadPoolExecutor(8) as pool,
    ):
        futures = [pool.submit(c.favor_create, favor_body(n)) for n in range(20)]
        done, _ = wait(futures, timeout=5, return_when=FIRST_COMPLETED)
        assert done, "the first create did not return"
        cancel.set()
        set_at = time.monotonic()
        _, pending = wait(futures, timeout=5)
        elapsed = time.monotonic() - set_at
    assert not pending
    assert elapsed < PROMPT
    outcomes = [outcome(f) for f in futures]
    created = [o for o in outcomes if isinstance(o, CreateResult)]
    cancelled = [o for o in outcomes if isinstance(o, RequestCancelled)]
    assert len(created) == 1 and len(cancelled) == 19
    assert len(stock_requests(fake)) == 1
    assert all(not e.sent and not e.outcome_unknown and e.attempts == 0 for e in cancelled)
    assert all(isinstance(e, ApiError) for e in cancelled)
    assert "cancelled before sending" in str(cancelled[0])
    # Only the create that was sent spent a token: the next one is due a second after it.
    assert limiter.reserve(MCHID, "favor_create") <= 1.0


def test_a_call_waiting_for_a_concurrency_slot_is_cancelled() -> None:
    fake = FakeWeChatPay()
    held = Held(fake)
    limiter = Tokened()
    cancel = threading.Event()
    with (
        client(
            fake, cancel, transport=held.transport(), rate_limiter=limiter, max_concurrency=1
        ) as c,
        ThreadPoolExecutor(2) as pool,
    ):
        first = pool.submit(c.busifavor_detail, "1001")
        assert held.on_wire.wait(5)
        assert limiter.given.acquire(timeout=5)
        second = pool.submit(c.busifavor_detail, "1002")
        # The second call has its token: from here on it waits for the only slot.
        assert limiter.given.acquire(timeout=5)
        time.sleep(0.01)  # not needed for correctness; lets it settle into the wait
        assert not second.done()
        cancel.set()
        set_at = time.monotonic()
        error = second.exception(timeout=5)
        elapsed = time.monotonic() - set_at
        assert not first.done()
        held.release.set()
        assert first.result(timeout=5) == {"ok": True}
    assert isinstance(error, RequestCancelled) and not error.sent
    assert "concurrency slot" in str(error)
    assert elapsed < PROMPT
    assert held.entered == 1


def test_a_call_in_retry_back_off_after_a_500_is_cancelled_with_its_outcome_unknown() -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(status=500, json={"code": "SYSTEM_ERROR", "message": "系统错误"}))
    fake.default = CREATED
    cancel = threading.Event()
    retry = RetryPolicy(max_attempts=3, base_delay=LONG, max_delay=LONG)
    with client(fake, cancel, retry=retry) as c, ThreadPoolExecutor(1) as pool:
        future = pool.submit(c.favor_create, favor_body(1))
        deadline = time.monotonic() + 5
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(fake.requests) == 1
        cancel.set()
        set_at = time.monotonic()
        error = future.exception(timeout=5)
        elapsed = time.monotonic() - set_at
    assert isinstance(error, RequestCancelled)
    assert error.sent and error.outcome_unknown and error.attempts == 1
    assert "cancelled after an attempt whose outcome is unknown" in str(error)
    assert "out_request_no" in str(error)
    assert elapsed < PROMPT
    assert len(fake.requests) == 1


def test_an_event_set_during_an_injected_sleep_stops_the_retry() -> None:
    """With a fake clock the back-off returns at once; the event set meanwhile still counts."""
    fake = FakeWeChatPay()
    fake.script(Reply(raise_=httpx.ConnectError("refused")))
    fake.default = CREATED
    cancel = threading.Event()
    sleeps = Sleeps()

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        cancel.set()

    with client(fake, cancel, sleep=sleep) as c, pytest.raises(RequestCancelled) as info:
        c.favor_create(favor_body(1))
    # A refused connection never reached WeChat Pay, so nothing can have happened there.
    assert not info.value.sent and info.value.attempts == 1
    assert len(sleeps.calls) == 1 and len(fake.requests) == 1


@pytest.mark.parametrize("mode", ["public_key", "certificates"])
def test_a_call_on_the_wire_when_the_event_is_set_returns_its_answer(mode: str) -> None:
    # In certificate mode, checking the answer needs a certificate download after the event.
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL if mode == "certificates" else PUB_KEY_ID)
    fake.default = CREATED
    held = Held(fake)
    cancel = threading.Event()
    with client(fake, cancel, transport=held.transport(), mode=mode) as c:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(c.favor_create, favor_body(1))
            assert held.on_wire.wait(5)
            cancel.set()
            held.release.set()
            result = future.result(timeout=5)
        assert result == CreateResult("9856000", "2024-05-20T13:29:35+08:00")
        with pytest.raises(RequestCancelled, match="cancelled before sending"):
            c.favor_create(favor_body(2))
    assert held.entered == 1
    assert fake.certificate_downloads == (1 if mode == "certificates" else 0)


def test_an_event_set_beforehand_sends_nothing() -> None:
    fake = FakeWeChatPay()
    cancel = threading.Event()
    cancel.set()
    calls: list[Callable[[WeChatPayClient], Any]] = [
        lambda c: c.favor_create(favor_body(1)),
        lambda c: c.busifavor_modify("1001", {"out_request_no": "m1"}),
        lambda c: c.favor_list(MCHID, 0, 10),
    ]
    with client(fake, cancel) as c:
        for call in calls:
            with pytest.raises(RequestCancelled) as info:
                call(c)
            assert not info.value.sent
    assert fake.requests == []


def test_a_cancelled_limiter_wait_returns_its_token() -> None:
    limiter = RateLimiter({"favor_create": Limit(1, 1.0)})
    cancel = threading.Event()
    assert limiter.acquire(MCHID, "favor_create", cancel=cancel) == 0.0
    threading.Timer(0.02, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        limiter.acquire(MCHID, "favor_create", cancel=cancel)
    assert time.monotonic() - started < PROMPT
    # Had the cancelled waiter kept its token, the next one would be due in 2 s, not 1.
    assert limiter.reserve(MCHID, "favor_create") <= 1.0
    with pytest.raises(Cancelled):
        limiter.acquire(MCHID, "favor_create", cancel=cancel)
