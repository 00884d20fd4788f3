"""The typed calls, retries with identical bytes, pacing and bounded concurrency."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from reconciler.operation import CreateResult
from reconciler.wechatpay import signing
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.errors import (
    ApiResponseError,
    TransportError,
    UnexpectedResponseError,
)
from reconciler.wechatpay.ratelimit import RateLimiter
from tests.test_wechatpay_support import (
    MCHID,
    FakeWeChatPay,
    Reply,
    Sleeps,
    client_for,
    credentials,
)

CREATED = {"stock_id": "9856000", "create_time": "2024-05-20T13:29:35+08:00"}
FAVOR_BODY = {"stock_name": "满100减10", "out_request_no": "1900000001-20240520-1"}

Case = tuple[Callable[[WeChatPayClient], Any], str, str, bytes, Reply, Any]
CASES: dict[str, Case] = {
    "favor_create": (
        lambda c: c.favor_create(FAVOR_BODY),
        "POST",
        "/v3/marketing/favor/coupon-stocks",
        json.dumps(FAVOR_BODY, ensure_ascii=False, separators=(",", ":")).encode(),
        Reply(json=CREATED),
        CreateResult("9856000", "2024-05-20T13:29:35+08:00"),
    ),
    "favor_detail": (
        lambda c: c.favor_detail("9856000", MCHID),
        "GET",
        f"/v3/marketing/favor/stocks/9856000?stock_creator_mchid={MCHID}",
        b"",
        Reply(json={"stock_id": "9856000", "status": "running"}),
        {"stock_id": "9856000", "status": "running"},
    ),
    "favor_list": (
        lambda c: c.favor_list(MCHID, 0, 10, create_start_time="2024-05-01T00:00:00+08:00"),
        "GET",
        f"/v3/marketing/favor/stocks?offset=0&limit=10&stock_creator_mchid={MCHID}"
        "&create_start_time=2024-05-01T00%3A00%3A00%2B08%3A00",
        b"",
        Reply(json={"total_count": 0, "data": []}),
        {"total_count": 0, "data": []},
    ),
    "favor_start": (
        lambda c: c.favor_start("9856000", MCHID),
        "POST",
        "/v3/marketing/favor/stocks/9856000/start",
        f'{{"stock_creator_mchid":"{MCHID}"}}'.encode(),
        Reply(json={"stock_id": "9856000", "start_time": "t"}),
        {"stock_id": "9856000", "start_time": "t"},
    ),
    "favor_pause": (
        lambda c: c.favor_pause("9856000", MCHID),
        "POST",
        "/v3/marketing/favor/stocks/9856000/pause",
        f'{{"stock_creator_mchid":"{MCHID}"}}'.encode(),
        Reply(json={"stock_id": "9856000", "pause_time": "t"}),
        {"stock_id": "9856000", "pause_time": "t"},
    ),
    "favor_restart": (
        lambda c: c.favor_restart("9856000", MCHID),
        "POST",
        "/v3/marketing/favor/stocks/9856000/restart",
        f'{{"stock_creator_mchid":"{MCHID}"}}'.encode(),
        Reply(json={"stock_id": "9856000", "restart_time": "t"}),
        {"stock_id": "9856000", "restart_time": "t"},
    ),
    "busifavor_create": (
        lambda c: c.busifavor_create({"stock_name": "券", "out_request_no": "r1"}),
        "POST",
        "/v3/marketing/busifavor/stocks",
        '{"stock_name":"券","out_request_no":"r1"}'.encode(),
        Reply(json={"stock_id": "1001", "create_time": "t"}),
        CreateResult("1001", "t"),
    ),
    "busifavor_detail": (
        lambda c: c.busifavor_detail("1001"),
        "GET",
        "/v3/marketing/busifavor/stocks/1001",
        b"",
        Reply(json={"stock_id": "1001", "stock_state": "RUNNING"}),
        {"stock_id": "1001", "stock_state": "RUNNING"},
    ),
    "busifavor_modify": (
        lambda c: c.busifavor_modify("1001", {"out_request_no": "m1", "comment": "新"}),
        "PATCH",
        "/v3/marketing/busifavor/stocks/1001",
        '{"out_request_no":"m1","comment":"新"}'.encode(),
        Reply(status=204),
        None,
    ),
    "busifavor_budget": (
        lambda c: c.busifavor_budget("1001", {"target_max_coupons": 20}),
        "PATCH",
        "/v3/marketing/busifavor/stocks/1001/budget",
        b'{"target_max_coupons":20}',
        Reply(json={"max_coupons": 20, "max_coupons_by_day": 5}),
        {"max_coupons": 20, "max_coupons_by_day": 5},
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_each_endpoint_sends_the_documented_request(name: str) -> None:
    call, method, target, body, reply, expected = CASES[name]
    fake = FakeWeChatPay()
    fake.script(reply)
    with client_for(fake) as client:
        assert call(client) == expected
    (request,) = fake.requests
    assert (request.method, request.url.raw_path.decode(), request.content) == (
        method,
        target,
        body,
    )
    assert request.url.host == "api.mch.weixin.qq.com"


def test_list_accepts_aware_datetimes_and_refuses_naive_ones() -> None:
    fake = FakeWeChatPay()
    start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with client_for(fake) as client:
        client.favor_list(MCHID, 1, 10, create_start_time=start, status="running")
        with pytest.raises(ValueError, match="time zone"):
            client.favor_list(MCHID, 0, 10, create_end_time=dt.datetime(2024, 5, 1))
    query = fake.requests[0].url.raw_path.decode().partition("?")[2]
    assert "create_start_time=2024-05-01T00%3A00%3A00%2B08%3A00" in query
    assert query.endswith("&status=running")


def test_stock_ids_cannot_escape_their_path_segment() -> None:
    fake = FakeWeChatPay()
    with client_for(fake) as client:
        client.busifavor_detail("../../v3/certificates")
        with pytest.raises(ValueError, match="non-empty"):
            client.busifavor_detail("")
    assert (
        fake.requests[0].url.raw_path
        == b"/v3/marketing/busifavor/stocks/..%2F..%2Fv3%2Fcertificates"
    )


def test_retries_resend_identical_bytes_with_fresh_signatures() -> None:
    fake = FakeWeChatPay()
    fake.script(
        Reply(status=500, json={"code": "SYSTEM_ERROR"}),
        Reply(raise_=httpx.RemoteProtocolError("Server disconnected without sending a response.")),
        Reply(status=429, json={"code": "FREQUENCY_LIMITED"}),
        Reply(raise_=httpx.ReadTimeout("timed out")),
        Reply(json=CREATED),
    )
    sleeps = Sleeps()
    nonces = iter(f"nonce{i}" for i in range(10))
    with client_for(fake, sleeps=sleeps, nonce_source=lambda: next(nonces)) as client:
        assert client.favor_create(FAVOR_BODY).stock_id == "9856000"
    assert len(fake.requests) == 5
    bodies = {r.content for r in fake.requests}
    assert len(bodies) == 1
    assert json.loads(bodies.pop())["out_request_no"] == FAVOR_BODY["out_request_no"]
    params = [signing.parse_authorization(r.headers["Authorization"]) for r in fake.requests]
    assert [p["nonce_str"] for p in params if p] == [f"nonce{i}" for i in range(5)]
    # random=0.5 -> three quarters of each exponential step (0.5, 1, 2, 4 s)
    assert sleeps.calls == [0.375, 0.75, 1.5, 3.0]


def test_202_is_repeated_with_the_same_parameters() -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(status=202), Reply(json={"stock_id": "1"}))
    with client_for(fake) as client:
        assert client.favor_start("1", MCHID) == {"stock_id": "1"}
    assert fake.requests[0].content == fake.requests[1].content


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_client_errors_are_never_retried(status: int) -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(status=status, json={"code": "SOMETHING", "message": "no"}))
    sleeps = Sleeps()
    with client_for(fake, sleeps=sleeps) as client, pytest.raises(ApiResponseError) as info:
        client.favor_create(FAVOR_BODY)
    assert len(fake.requests) == 1 and sleeps.calls == []
    assert info.value.status == status and info.value.attempts == 1


def test_exhausted_retries_report_the_last_answer() -> None:
    fake = FakeWeChatPay()
    fake.script(*[Reply(status=503, json={"code": "SERVICE_UNAVAILABLE"})] * 3)
    with client_for(fake, max_attempts=3) as client, pytest.raises(ApiResponseError) as info:
        client.busifavor_create({"out_request_no": "r1"})
    assert info.value.attempts == 3 and info.value.outcome_unknown
    assert "after 3 attempts" in str(info.value) and "outcome is unknown" in str(info.value)


def test_network_failure_after_sending_leaves_a_change_unknown() -> None:
    fake = FakeWeChatPay()
    fake.script(
        Reply(raise_=httpx.ReadTimeout("timed out")),
        Reply(raise_=httpx.ConnectError("refused")),
    )
    with client_for(fake, max_attempts=2) as client, pytest.raises(TransportError) as info:
        client.favor_create(FAVOR_BODY)
    assert info.value.attempts == 2 and info.value.outcome_unknown
    assert "POST /v3/marketing/favor/coupon-stocks failed after 2 attempt(s)" in str(info.value)


def test_connect_failures_alone_leave_the_outcome_known() -> None:
    fake = FakeWeChatPay()
    fake.script(*[Reply(raise_=httpx.ConnectError("refused"))] * 2)
    with client_for(fake, max_attempts=2) as client, pytest.raises(TransportError) as info:
        client.favor_create(FAVOR_BODY)
    assert not info.value.outcome_unknown


def test_retry_after_is_honoured() -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(status=429, headers={"Retry-After": "7"}), Reply(json={"a": 1}))
    sleeps = Sleeps()
    with client_for(fake, sleeps=sleeps) as client:
        client.busifavor_detail("1")
    assert sleeps.calls == [7.0]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (Reply(body=b"not json"), "not a JSON object"),
        (Reply(json=[1, 2]), "not a JSON object"),
        (Reply(json={"create_time": "t"}), "no stock_id"),
    ],
)
def test_unexpected_success_bodies_are_errors(reply: Reply, problem: str) -> None:
    fake = FakeWeChatPay()
    fake.script(reply)
    with client_for(fake) as client, pytest.raises(UnexpectedResponseError, match=problem) as e:
        client.favor_create(FAVOR_BODY)
    assert e.value.request_id == "08F4A3B2C1-REQ"


def test_pacing_is_applied_per_attempt_with_the_injected_clock() -> None:
    now = [0.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(clock=lambda: now[0], sleep=advance)
    fake = FakeWeChatPay()
    fake.script(Reply(status=500), *[Reply(json=CREATED)] * 4)
    with client_for(fake, rate_limiter=limiter) as client:
        for _ in range(4):
            client.favor_create(FAVOR_BODY)
    # Five attempts at 60/min with no burst: the last one may start 4 s after the first.
    assert len(fake.requests) == 5 and now[0] == pytest.approx(4.0)


def test_one_limiter_shared_by_two_merchants_keeps_separate_buckets() -> None:
    limiter = RateLimiter(clock=lambda: 0.0, sleep=lambda s: None)
    fake = FakeWeChatPay()
    fake.default = Reply(json=CREATED)
    with client_for(fake, rate_limiter=limiter) as client:
        client.favor_create(FAVOR_BODY)
    assert limiter.reserve("someone-else", "favor_create") == 0.0
    assert limiter.reserve(MCHID, "favor_create") == pytest.approx(1.0)


def test_concurrency_is_bounded_across_threads() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    fake = FakeWeChatPay()
    inner = fake.handle

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.01)  # hold the slot long enough for the other threads to pile up
        with lock:
            state["now"] -= 1
        return inner(request)

    client = WeChatPayClient(
        credentials(),
        transport=httpx.MockTransport(slow),
        clock=fake.clock,
        max_concurrency=3,
        sleep=Sleeps(),
    )
    with client, ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda i: client.busifavor_detail(str(i)), range(24)))
    assert results == [{"ok": True}] * 24
    assert state["peak"] == 3
