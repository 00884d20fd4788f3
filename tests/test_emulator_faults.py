"""Fault injection and rate limits, through `Emulator.handle` (MockTransport mode)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from reconciler.emulator import (
    DemoMerchant,
    Emulator,
    EmulatorSettings,
    Faults,
    RateLimit,
    WechatPayKeys,
)
from reconciler.emulator.samples import busifavor_create_body, favor_create_body
from reconciler.wechatpay import signing
from tests.emulator_support import MCHID, NOW, Clock

FAVOR = "/v3/marketing/favor/coupon-stocks"
BUSI = "/v3/marketing/busifavor/stocks"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def emu(clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant, sleeps: list[float]) -> Emulator:
    emulator = Emulator(clock=clock, keys=keys, sleep=sleeps.append)
    merchant.register(emulator)
    return emulator


Send = Callable[..., httpx.Response]


@pytest.fixture
def send(emu: Emulator, clock: Clock, merchant: DemoMerchant) -> Send:
    def go(
        method: str, target: str, body: object = None, who: DemoMerchant | None = None
    ) -> httpx.Response:
        return emu.handle(
            (who or merchant).request(method, target, timestamp=int(clock.now), json_body=body)
        )

    return go


def create_favor(send: Send, number: str) -> httpx.Response:
    return send("POST", FAVOR, favor_create_body(MCHID, NOW, number))


def detail(send: Send, stock_id: str = "10000001") -> httpx.Response:
    return send("GET", f"/v3/marketing/favor/stocks/{stock_id}?stock_creator_mchid={MCHID}")


def verifies(emu: Emulator, response: httpx.Response) -> bool:
    h = response.headers
    message = signing.response_message(
        h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], response.content
    )
    return signing.verify(emu.wechatpay_public_key, message, h["Wechatpay-Signature"])


def test_error_500_before_processing(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(error_500_share=1.0))
    response = create_favor(send, "f1")
    assert response.status_code == 500
    assert response.json() == {"code": "SYSTEM_ERROR", "message": "系统繁忙,请稍后重试"}
    assert verifies(emu, response)
    assert emu.stocks == {}


def test_injected_429_uses_each_kind_of_code(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(rate_limit_share=1.0))
    favor = create_favor(send, "f1")
    busi = send("POST", BUSI, busifavor_create_body(MCHID, NOW, "b1"))
    assert (favor.status_code, favor.json()["code"]) == (429, "FREQUENCY_LIMIT_EXCEED")
    assert (busi.status_code, busi.json()["code"]) == (429, "FREQUENCY_LIMITED")
    assert emu.stocks == {}


def test_drop_before_processing_commits_nothing(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(drop_share=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        create_favor(send, "f1")
    assert emu.stocks == {}
    (entry,) = emu.request_log
    assert (entry.status, entry.fault) == (None, "drop")


def test_commit_then_drop_keeps_the_stock_and_a_retry_finds_it(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(commit_then_drop_share=1.0, next_requests=1))
    with pytest.raises(httpx.RemoteProtocolError):
        create_favor(send, "f1")
    assert list(emu.stocks) == ["10000001"]
    retried = create_favor(send, "f1")
    assert retried.json()["stock_id"] == "10000001"
    assert len(emu.stocks) == 1
    assert [e.fault for e in emu.request_log] == ["commit_then_drop", None]


def test_commit_then_500(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(commit_then_500_share=1.0))
    response = create_favor(send, "f1")
    assert (response.status_code, response.json()["code"]) == (500, "SYSTEM_ERROR")
    assert list(emu.stocks) == ["10000001"]


def test_bad_signature_is_well_formed_but_wrong(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(bad_signature_share=1.0))
    response = create_favor(send, "f1")
    assert response.status_code == 200
    assert not signing.is_probe(response.headers["Wechatpay-Signature"])
    assert not verifies(emu, response)


def test_probe_signature(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(probe_signature_share=1.0))
    response = detail(send)
    assert response.headers["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert not verifies(emu, response)


def test_unsigned_response(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(unsigned_share=1.0))
    response = detail(send)
    assert "Wechatpay-Signature" not in response.headers
    assert "Wechatpay-Timestamp" not in response.headers
    assert response.headers["Request-ID"]


def test_skewed_response_clock(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(response_clock_skew_seconds=-600))
    response = detail(send)
    assert response.headers["Wechatpay-Timestamp"] == str(NOW - 600)
    assert verifies(emu, response)  # correctly signed, only stale


def test_latency_uses_the_injected_sleep(send: Send, emu: Emulator, sleeps: list[float]) -> None:
    emu.set_faults(Faults(latency_ms=250))
    create_favor(send, "f1")
    assert sleeps == [0.25]
    assert len(emu.stocks) == 1  # the work is done before the delay


def test_faults_target_endpoints(send: Send, emu: Emulator) -> None:
    emu.set_faults(Faults(error_500_share=1.0, endpoints=frozenset({"favor.detail"})))
    assert create_favor(send, "f1").status_code == 200
    assert detail(send).status_code == 500


def test_faults_for_the_next_n_requests(send: Send, emu: Emulator) -> None:
    emu.set_faults(
        Faults(error_500_share=1.0, endpoints=frozenset({"favor.create"}), next_requests=2)
    )
    assert emu.faults_remaining == 2
    assert detail(send).status_code == 404  # other endpoints do not count
    assert [create_favor(send, f"f{i}").status_code for i in range(3)] == [500, 500, 200]
    assert emu.faults_remaining == 0


def test_seeded_shares_repeat(clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant) -> None:
    def run() -> list[int]:
        emulator = Emulator(clock=clock, keys=keys)
        merchant.register(emulator)
        emulator.set_faults(Faults(error_500_share=0.5, seed=7))
        target = f"/v3/marketing/favor/stocks/1?stock_creator_mchid={MCHID}"
        return [
            emulator.handle(merchant.request("GET", target, timestamp=NOW)).status_code
            for _ in range(40)
        ]

    first = run()
    assert first == run()
    assert set(first) == {404, 500}


def test_assigning_settings_faults_also_resets(send: Send, emu: Emulator) -> None:
    emu.settings.faults = Faults(error_500_share=1.0, next_requests=1)
    assert detail(send).status_code == 500
    assert detail(send).status_code == 404
    emu.settings.faults = Faults(error_500_share=1.0, next_requests=1)
    assert detail(send).status_code == 500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_500_share": 1.5},
        {"drop_share": -0.1},
        {"latency_ms": -1},
        {"next_requests": -1},
        {"endpoints": frozenset({"favor.delete"})},
    ],
)
def test_faults_refuse_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_a_bare_endpoint_string_is_one_endpoint() -> None:
    faults = Faults(endpoints="favor.create")  # type: ignore[arg-type]
    assert faults.endpoints == frozenset({"favor.create"})


def test_unauthenticated_requests_do_not_use_up_faults(
    send: Send, emu: Emulator, merchant: DemoMerchant
) -> None:
    emu.set_faults(Faults(error_500_share=1.0, next_requests=1))
    stale = merchant.request(
        "GET", f"/v3/marketing/favor/stocks/1?stock_creator_mchid={MCHID}", timestamp=NOW - 3600
    )
    assert emu.handle(stale).status_code == 401
    assert emu.faults_remaining == 1


# --- rate limits -----------------------------------------------------------------------------


def test_favor_create_is_limited_to_60_per_minute_per_merchant(
    send: Send, emu: Emulator, clock: Clock
) -> None:
    statuses = [create_favor(send, f"f{i}").status_code for i in range(61)]
    assert statuses == [200] * 60 + [429]
    limited = create_favor(send, "late")
    assert limited.json() == {"code": "FREQUENCY_LIMIT_EXCEED", "message": "接口限频"}
    other = DemoMerchant.generate("1900000002")
    other.register(emu)
    assert (
        send("POST", FAVOR, favor_create_body(other.mchid, NOW, "x"), who=other).status_code == 200
    )
    clock.now += 59.9
    assert create_favor(send, "still").status_code == 429
    clock.now += 0.2
    assert create_favor(send, "again").status_code == 200
    assert len(emu.stocks) == 62


def test_custom_limits_and_switching_off(send: Send, emu: Emulator, clock: Clock) -> None:
    emu.settings.rate_limits["busifavor.create"] = RateLimit(2, 1.0)
    made = [send("POST", BUSI, busifavor_create_body(MCHID, NOW, f"b{i}")) for i in range(3)]
    assert [r.status_code for r in made] == [200, 200, 429]
    assert made[2].json() == {"code": "FREQUENCY_LIMITED", "message": "频率限制"}
    emu.settings.rate_limiting = False
    assert send("POST", BUSI, busifavor_create_body(MCHID, NOW, "b9")).status_code == 200


def test_default_limits_follow_the_reference() -> None:
    limits = EmulatorSettings().rate_limits
    assert limits["favor.create"] == RateLimit(60, 60.0)
    assert limits["favor.detail"] == limits["favor.list"] == RateLimit(500, 1.0)
    assert limits["busifavor.create"] == RateLimit(1000, 60.0)
    assert "busifavor.detail" not in limits
