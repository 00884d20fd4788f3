"""The client against the emulator over real loopback HTTP, in every key mode.

The emulator verifies the client's request signatures and the client verifies the emulator's
response signatures, so every passing call here exercises both directions. Client and
emulator share one fixed clock; retries sleep through an injected no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from reconciler.emulator import (
    Emulator,
    EmulatorServer,
    EmulatorSettings,
    Faults,
    RateLimit,
    WechatPayKeys,
    generate_keys,
)
from reconciler.limits import Limit
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.errors import (
    ApiResponseError,
    ResponseVerificationError,
    SignatureProbeError,
    TransportError,
)
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.retry import RetryPolicy
from tests.test_wechatpay_support import MCHID, MERCHANT_SERIAL, Sleeps, rsa_key

NOW = 1_767_225_600.0  # 2026-01-01T08:00:00+08:00
APIV3 = "Emulat0rApiV3Key0123456789abcdef"
TZ = dt.timezone(dt.timedelta(hours=8))
MODES = ("public_key", "certificates", "migration")


def at(offset_days: float) -> str:
    return dt.datetime.fromtimestamp(NOW + offset_days * 86400, TZ).isoformat(timespec="seconds")


def favor_body(number: str) -> dict[str, object]:
    return {
        "stock_name": "满100减10",
        "belong_merchant": MCHID,
        "available_begin_time": at(1),
        "available_end_time": at(30),
        "stock_use_rule": {
            "max_coupons": 100,
            "max_amount": 100_000,
            "max_coupons_per_user": 1,
            "natural_person_limit": False,
            "prevent_api_abuse": False,
        },
        "pattern_info": {"description": "满100元减10元"},
        "coupon_use_rule": {
            "fixed_normal_coupon": {"coupon_amount": 1000, "transaction_minimum": 10000},
            "available_merchants": [MCHID],
        },
        "no_cash": False,
        "stock_type": "NORMAL",
        "out_request_no": number,
    }


def busifavor_body(number: str) -> dict[str, object]:
    return {
        "stock_name": "会员日拿铁立减8元",
        "belong_merchant": MCHID,
        "goods_name": "拿铁",
        "stock_type": "NORMAL",
        "coupon_use_rule": {
            "coupon_available_time": {
                "available_begin_time": at(0.5),
                "available_end_time": at(30),
            },
            "fixed_normal_coupon": {"discount_amount": 800, "transaction_minimum": 3000},
            "use_method": "OFF_LINE",
        },
        "stock_send_rule": {"max_coupons": 100, "max_coupons_per_user": 1},
        "out_request_no": number,
        "coupon_code_mode": "WECHATPAY_MODE",
    }


@pytest.fixture(scope="module")
def keys() -> WechatPayKeys:
    return generate_keys()


@dataclass
class Rig:
    emulator: Emulator
    server: EmulatorServer
    client: WeChatPayClient
    sleeps: Sleeps

    def faults(self, **kwargs: object) -> None:
        self.emulator.set_faults(Faults(**kwargs))  # type: ignore[arg-type]


def settings_for(mode: str) -> EmulatorSettings:
    if mode == "public_key":
        return EmulatorSettings(signing_key="public_key")
    if mode == "certificates":
        return EmulatorSettings(signing_key="platform_certificate", platform_certificates=True)
    return EmulatorSettings(signing_key="by_request_serial", platform_certificates=True)


def credentials_for(
    mode: str, emulator: Emulator, private_key: str = "merchant"
) -> MerchantCredentials:
    public = mode != "certificates"
    return MerchantCredentials(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        private_key=rsa_key(private_key),
        wechatpay_public_key=emulator.wechatpay_public_key if public else None,
        wechatpay_public_key_id=emulator.wechatpay_public_key_id if public else None,
        apiv3_key=APIV3.encode() if mode != "public_key" else None,
    )


def unpaced() -> RateLimiter:
    return RateLimiter(
        {name: Limit(10**6, 1.0, burst=10**6) for name in RateLimiter().limits},
        clock=lambda: 0.0,
    )


@pytest.fixture(params=MODES)
def rig(request: pytest.FixtureRequest, keys: WechatPayKeys) -> Iterator[Rig]:
    mode: str = request.param
    emulator = Emulator(settings_for(mode), clock=lambda: NOW, keys=keys)
    emulator.register_merchant(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        public_key=rsa_key("merchant").public_key(),
        apiv3_key=APIV3,
    )
    sleeps = Sleeps()
    with emulator.serve() as server:
        client = WeChatPayClient(
            credentials_for(mode, emulator),
            base_url=server.base_url,
            clock=lambda: NOW,
            rate_limiter=unpaced(),
            retry=RetryPolicy(max_attempts=4),
            sleep=sleeps,
            random=lambda: 0.0,
            read_timeout=2.0,
        )
        with client:
            yield Rig(emulator, server, client, sleeps)
        assert server.errors == []


def test_every_endpoint_round_trips(rig: Rig) -> None:
    c = rig.client
    favor = c.favor_create(favor_body("1900000001-20260101-f1"))
    detail = c.favor_detail(favor.stock_id, MCHID)
    assert detail["stock_id"] == favor.stock_id and detail["status"] == "unactivated"
    listing = c.favor_list(MCHID, 0, 10, create_start_time=at(-1), create_end_time=at(1))
    assert [s["stock_id"] for s in listing["data"]] == [favor.stock_id]
    assert c.favor_start(favor.stock_id, MCHID)["stock_id"] == favor.stock_id
    assert "pause_time" in c.favor_pause(favor.stock_id, MCHID)
    assert "restart_time" in c.favor_restart(favor.stock_id, MCHID)
    assert c.favor_detail(favor.stock_id, MCHID)["status"] == "running"

    busi = c.busifavor_create(busifavor_body("1900000001-20260101-b1"))
    assert c.busifavor_detail(busi.stock_id)["stock_name"] == "会员日拿铁立减8元"
    modify = {"out_request_no": "1900000001-20260101-m1", "comment": "会员日"}
    c.busifavor_modify(busi.stock_id, modify)  # returns None (typed)
    assert c.busifavor_detail(busi.stock_id)["comment"] == "会员日"
    budget = c.busifavor_budget(
        busi.stock_id,
        {
            "target_max_coupons": 200,
            "current_max_coupons": 100,
            "modify_budget_request_no": "1900000001-20260101-g1",
        },
    )
    assert budget["max_coupons"] == 200
    assert rig.sleeps.calls == []


@pytest.mark.parametrize(
    "fault",
    [
        {"error_500_share": 1.0},
        {"rate_limit_share": 1.0},
        {"drop_share": 1.0},
        {"commit_then_drop_share": 1.0},
        {"commit_then_500_share": 1.0},
    ],
    ids=["500", "429", "drop", "commit-then-drop", "commit-then-500"],
)
def test_retries_recover_without_duplicating_a_create(rig: Rig, fault: dict[str, float]) -> None:
    rig.faults(next_requests=2, endpoints=frozenset({"favor.create"}), **fault)
    result = rig.client.favor_create(favor_body("1900000001-20260101-r1"))
    assert len(rig.sleeps.calls) == 2
    stocks = rig.emulator.stocks
    assert list(stocks) == [result.stock_id], "one stock, however often it was sent"
    entries = [e for e in rig.emulator.request_log if e.endpoint == "favor.create"]
    assert len(entries) == 3


def test_latency_beyond_the_read_timeout_is_retried(rig: Rig) -> None:
    client = WeChatPayClient(
        credentials_for_rig(rig),
        base_url=rig.server.base_url,
        clock=lambda: NOW,
        rate_limiter=unpaced(),
        sleep=Sleeps(),
        read_timeout=0.2,
    )
    rig.faults(latency_ms=600, next_requests=1, endpoints=frozenset({"busifavor.create"}))
    with client:
        result = client.busifavor_create(busifavor_body("1900000001-20260101-t1"))
    assert list(rig.emulator.stocks) == [result.stock_id]


def credentials_for_rig(rig: Rig) -> MerchantCredentials:
    mode = {"public_key": "public_key"}.get(rig.emulator.settings.signing_key)
    if mode is None:
        mode = (
            "migration"
            if rig.emulator.settings.signing_key == "by_request_serial"
            else "certificates"
        )
    return credentials_for(mode, rig.emulator)


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        ({"bad_signature_share": 1.0}, ResponseVerificationError, "signature does not match"),
        ({"probe_signature_share": 1.0}, SignatureProbeError, "signature probe"),
        ({"unsigned_share": 1.0}, ResponseVerificationError, "are missing"),
        ({"response_clock_skew_seconds": 301}, ResponseVerificationError, "301 s away"),
    ],
    ids=["bad-signature", "probe", "unsigned", "clock-skew"],
)
def test_untrustworthy_answers_are_rejected(
    rig: Rig, fault: dict[str, object], error: type[Exception], text: str
) -> None:
    rig.faults(endpoints=frozenset({"busifavor.detail"}), **fault)
    stock = rig.client.busifavor_create(busifavor_body("1900000001-20260101-v1"))
    with pytest.raises(error, match=text) as info:
        rig.client.busifavor_detail(stock.stock_id)
    assert isinstance(info.value, ResponseVerificationError)
    assert info.value.request_id is not None
    assert rig.sleeps.calls == []


def test_missing_stock_is_a_signed_404(rig: Rig) -> None:
    with pytest.raises(ApiResponseError) as info:
        rig.client.favor_detail("99999999", MCHID)
    error = info.value
    assert (error.status, error.code) == (404, "RESOURCE_NOT_EXISTS")
    assert error.signature_verified is True and error.request_id
    assert rig.sleeps.calls == []


def test_invalid_body_is_a_400_without_retry(rig: Rig) -> None:
    body = favor_body("1900000001-20260101-x1")
    del body["stock_name"]
    with pytest.raises(ApiResponseError) as info:
        rig.client.favor_create(body)
    assert info.value.status == 400 and info.value.code == "PARAM_ERROR"
    assert [e.endpoint for e in rig.emulator.request_log if e.endpoint != "certificates"] == [
        "favor.create"
    ]


def test_reused_request_number_with_another_body_is_refused(rig: Rig) -> None:
    rig.client.favor_create(favor_body("1900000001-20260101-d1"))
    changed = favor_body("1900000001-20260101-d1")
    changed["stock_name"] = "满200减20"
    with pytest.raises(ApiResponseError) as info:
        rig.client.favor_create(changed)
    assert info.value.status == 400 and len(rig.emulator.stocks) == 1


def test_wrong_private_key_gets_sign_error_with_comparison(rig: Rig) -> None:
    creds = credentials_for_rig(rig)
    wrong = MerchantCredentials(
        mchid=creds.mchid,
        serial_no=creds.serial_no,
        private_key=rsa_key("not-registered"),
        wechatpay_public_key=creds.wechatpay_public_key,
        wechatpay_public_key_id=creds.wechatpay_public_key_id,
        apiv3_key=creds.apiv3_key,
    )
    with (
        WeChatPayClient(wrong, base_url=rig.server.base_url, clock=lambda: NOW) as client,
        pytest.raises(ApiResponseError) as info,
    ):
        client.favor_list(MCHID, 0, 10, create_start_time=at(-1))
    error = info.value
    assert (error.status, error.code) == (401, "SIGN_ERROR")
    assert error.sign_information is not None
    assert error.sign_information.url is not None and "%2B08%3A00" in error.sign_information.url
    assert "the messages match, so the private key does not belong to serial_no" in str(error)


def test_client_clock_off_by_more_than_five_minutes_is_refused(rig: Rig) -> None:
    with (
        WeChatPayClient(
            credentials_for_rig(rig), base_url=rig.server.base_url, clock=lambda: NOW - 301
        ) as client,
        pytest.raises(ApiResponseError) as info,
    ):
        client.busifavor_detail("1")
    assert info.value.code == "SIGN_ERROR" and "5分钟" in str(info.value)


def test_emulator_rate_limit_exhausts_retries(rig: Rig) -> None:
    rig.emulator.settings.rate_limits["busifavor.detail"] = RateLimit(1, 60.0)
    stock = rig.client.busifavor_create(busifavor_body("1900000001-20260101-l1"))
    rig.client.busifavor_detail(stock.stock_id)
    with pytest.raises(ApiResponseError) as info:
        rig.client.busifavor_detail(stock.stock_id)
    assert info.value.status == 429 and info.value.attempts == 4
    assert len(rig.sleeps.calls) == 3


def test_merchant_without_platform_certificates(keys: WechatPayKeys) -> None:
    emulator = Emulator(
        EmulatorSettings(signing_key="platform_certificate", platform_certificates=False),
        clock=lambda: NOW,
        keys=keys,
    )
    emulator.register_merchant(
        mchid=MCHID, serial_no=MERCHANT_SERIAL, public_key=rsa_key("merchant").public_key()
    )
    creds = credentials_for("certificates", emulator)
    with (
        emulator.serve() as server,
        WeChatPayClient(creds, base_url=server.base_url, clock=lambda: NOW) as client,
    ):
        with pytest.raises(ApiResponseError, match="RESOURCE_NOT_EXISTS") as info:
            client.refresh_certificates()
        assert "无可用的平台证书" in str(info.value)
        # Such a merchant's answers come signed with the WeChat Pay public key instead.
        emulator.settings.signing_key = "public_key"
        with pytest.raises(ResponseVerificationError, match=r"configure pub_key\.pem") as error:
            client.busifavor_create(busifavor_body("1900000001-20260101-n1"))
        assert error.value.outcome_unknown and len(emulator.stocks) == 1


def test_a_closed_server_is_a_transport_error(keys: WechatPayKeys) -> None:
    emulator = Emulator(EmulatorSettings(), clock=lambda: NOW, keys=keys)
    with emulator.serve() as server:
        base_url = server.base_url
    sleeps = Sleeps()
    with (
        WeChatPayClient(
            credentials_for("public_key", emulator),
            base_url=base_url,
            clock=lambda: NOW,
            rate_limiter=unpaced(),
            sleep=sleeps,
            retry=RetryPolicy(max_attempts=3),
        ) as client,
        pytest.raises(TransportError) as info,
    ):
        client.favor_create(favor_body("1900000001-20260101-c1"))
    assert info.value.attempts == 3 and len(sleeps.calls) == 2
    assert not info.value.outcome_unknown, "a refused connection never reached the server"
