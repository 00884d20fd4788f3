"""Error values: loose parsing, SIGN_ERROR diagnostics, one-line messages, no secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from reconciler.errors import ApiError
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.errors import (
    ApiResponseError,
    ResponseVerificationError,
    SignInformation,
    TransportError,
    request_id_of,
)
from reconciler.wechatpay.retry import RetryPolicy
from tests.test_wechatpay_support import (
    APIV3_KEY,
    MCHID,
    MERCHANT_SERIAL,
    FakeWeChatPay,
    Reply,
    client_for,
    credentials,
    rsa_key,
)


def parse(status: int, body: bytes, headers: dict[str, str] | None = None) -> ApiResponseError:
    return ApiResponseError.parse(
        status=status, method="GET", path="/v3/p", headers=headers or {}, body=body
    )


@pytest.mark.parametrize("body", [b"", b"<html>busy</html>", b"[1,2]", b'"text"', b"\xff\xfe"])
def test_any_body_shape_parses_without_crashing(body: bytes) -> None:
    error = parse(500, body)
    assert error.status == 500 and error.code is None
    assert "\n" not in str(error)


def test_code_message_and_detail_are_read() -> None:
    body = (
        '{"code":"PARAM_ERROR","message":"参数错误\\n第二行",'
        '"detail":{"field":"/stock_name","issue":"too long","location":"body"}}'
    ).encode()
    error = parse(400, body, {"request-id": "RID-1"})
    assert (error.code, error.request_id) == ("PARAM_ERROR", "RID-1")
    assert error.detail == {"field": "/stock_name", "issue": "too long", "location": "body"}
    assert str(error) == (
        "WeChat Pay answered GET /v3/p with 400 PARAM_ERROR: 参数错误 第二行"
        " (field /stock_name: too long, Request-ID RID-1)"
    )
    assert not error.retryable


@pytest.mark.parametrize("name", ["Request-ID", "Request-Id", "request-id", "REQUEST-ID"])
def test_request_id_is_found_in_any_letter_case(name: str) -> None:
    assert request_id_of({name: "abc"}) == "abc"
    assert request_id_of(httpx.Headers({name: "abc"})) == "abc"


def test_sign_error_carries_sign_information_and_compares_it() -> None:
    fake = FakeWeChatPay()
    wrong_key = MerchantCredentials(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        private_key=rsa_key("not-the-registered-key"),
        apiv3_key=APIV3_KEY,
    )
    with (
        WeChatPayClient(wrong_key, transport=fake.transport(), clock=fake.clock) as client,
        pytest.raises(ApiResponseError) as info,
    ):
        client.favor_start("9856000", MCHID)
    error = info.value
    assert (error.status, error.code) == (401, "SIGN_ERROR")
    assert error.sign_information is not None
    assert error.sign_information.method == "POST"
    assert error.sign_information.url == "/v3/marketing/favor/stocks/9856000/start"
    assert error.sign_information.sign_message_length == len(error.client_sign_message or b"")
    assert error.sign_information.truncated_sign_message is not None
    assert "the messages match, so the private key does not belong to serial_no" in str(error)
    assert len(fake.requests) == 1, "401 is never retried"


def test_sign_information_points_at_the_differing_line() -> None:
    info = SignInformation(
        method="GET",
        url="/v3/a?t=2024-01-01T00:00:00+08:00",
        sign_message_length=70,
        truncated_sign_message="GET\n/v3/a?t=2024-01-01T00:00:00+08:00\n1700000000\nabc",
    )
    ours = b"GET\n/v3/a?t=2024-01-01T00%3A00%3A00%2B08%3A00\n1700000000\nabcdef\n\n"
    hint = info.compare(ours)
    assert hint.startswith(f"server signed 70 bytes, we signed {len(ours)}")
    assert "first difference in the url line" in hint
    assert "%2B08%3A00" in hint


def test_transport_error_says_when_the_outcome_is_unknown() -> None:
    unknown = TransportError(
        method="POST", path="/v3/x", reason="read timeout", attempts=5, sent=True
    )
    assert unknown.outcome_unknown
    assert "outcome is unknown" in str(unknown) and "same parameters" in str(unknown)
    safe = TransportError(
        method="GET", path="/v3/x", reason="cannot connect", attempts=5, sent=True
    )
    assert not safe.outcome_unknown and "check the network" in str(safe)


def test_every_error_is_an_api_error() -> None:
    for cls in (ApiResponseError, TransportError, ResponseVerificationError):
        assert issubclass(cls, ApiError)


def test_secrets_never_reach_errors_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeWeChatPay()
    fake.script(
        Reply(status=500, json={"code": "SYSTEM_ERROR"}),
        Reply(json={"stock_id": "1"}, tamper=True),
        Reply(status=400, json={"code": "PARAM_ERROR"}),
    )
    errors: list[BaseException] = []
    with client_for(fake, "both") as client:
        calls: list[Callable[[], object]] = [
            lambda: client.favor_start("1", MCHID),
            lambda: client.busifavor_detail("1"),
        ]
        for call in calls:
            with pytest.raises(ApiError) as info:
                call()
            errors.append(info.value)
        assert "WeChatPayClient(mchid=" in repr(client)
        shown = repr(client)
    authorizations = [r.headers["Authorization"] for r in fake.requests]
    signatures = [a.split('signature="')[1].split('"')[0] for a in authorizations]
    creds = credentials("both")
    secrets = [
        *authorizations,
        *signatures,
        APIV3_KEY.decode(),
        str(creds.private_key.private_numbers().d),
    ]
    texts = [shown, caplog.text, repr(creds), *(str(e) for e in errors), *(repr(e) for e in errors)]
    texts += [repr(r.headers) for r in fake.requests]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_client_rejects_an_invalid_concurrency() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        WeChatPayClient(credentials(), transport=FakeWeChatPay().transport(), max_concurrency=0)
    with pytest.raises(ValueError, match="invalid retry policy"):
        RetryPolicy(max_attempts=0)
