"""Response verification: every forged, stale, unknown or probing answer is refused clearly."""

from __future__ import annotations

import httpx
import pytest

from reconciler.wechatpay import signing
from reconciler.wechatpay.errors import (
    ApiResponseError,
    ResponseVerificationError,
    SignatureProbeError,
)
from reconciler.wechatpay.verify import ResponseOrigin, ResponseVerifier, check_signature
from tests.test_wechatpay_support import (
    NOW,
    PUB_KEY_ID,
    FakeWeChatPay,
    Reply,
    client_for,
    credentials,
)

STOCK = {"stock_id": "1212", "stock_name": "满100减10"}


def rejected(reply: Reply, mode: str = "public_key") -> ResponseVerificationError:
    fake = FakeWeChatPay()
    fake.script(reply)
    with client_for(fake, mode) as client, pytest.raises(ResponseVerificationError) as info:
        client.busifavor_detail("1212")
    assert len(fake.requests) == 1, "a rejected answer is not retried"
    return info.value


def test_tampered_body_is_rejected_as_possibly_forged() -> None:
    error = rejected(Reply(json=STOCK, tamper=True))
    message = str(error)
    assert "may be forged or tampered with" in message
    assert "signature does not match the body" in message
    assert "GET /v3/marketing/busifavor/stocks/1212" in message
    assert error.request_id == "08F4A3B2C1-REQ"
    assert "\n" not in message


def test_unknown_serial_is_rejected_and_trusted_keys_are_listed() -> None:
    error = rejected(Reply(json=STOCK, serial="PUB_KEY_ID_0000000000OTHER", key="wechatpay"))
    assert "Wechatpay-Serial PUB_KEY_ID_0000000000OTHER is not a key we trust" in str(error)
    assert f"trusted: {PUB_KEY_ID}" in str(error)
    assert error.serial == "PUB_KEY_ID_0000000000OTHER"


def test_right_serial_wrong_key_is_rejected() -> None:
    error = rejected(Reply(json=STOCK, key="impostor"))
    assert "signature does not match the body" in str(error)


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_timestamp_is_rejected(offset: int) -> None:
    error = rejected(Reply(json=STOCK, timestamp=int(NOW) + offset))
    assert "is 301 s away from this machine's clock (limit 300 s)" in str(error)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_limit_is_accepted(offset: int) -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(json=STOCK, timestamp=int(NOW) + offset))
    with client_for(fake) as client:
        assert client.busifavor_detail("1212") == STOCK


def test_probe_signature_is_a_distinct_clear_error() -> None:
    error = rejected(Reply(json=STOCK, signature="WECHATPAY/SIGNTEST/dGhpcyBpcyBub3Q=%%"))
    assert isinstance(error, SignatureProbeError)
    assert "signature probe (WECHATPAY/SIGNTEST/...)" in str(error)
    assert "rejected as it should be" in str(error)
    assert "run the command again" in str(error)


def test_probe_on_a_change_warns_the_outcome_is_unknown() -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(json={"stock_id": "1"}, signature="WECHATPAY/SIGNTEST/x"))
    with client_for(fake) as client, pytest.raises(SignatureProbeError) as info:
        client.favor_start("1", "1900000001")
    assert info.value.outcome_unknown
    assert "outcome is unknown" in str(info.value)


def test_unsigned_success_is_rejected() -> None:
    error = rejected(Reply(json=STOCK, sign=False))
    assert "Wechatpay-Timestamp, Wechatpay-Nonce, Wechatpay-Signature, Wechatpay-Serial" in str(
        error
    )
    assert "must be treated as forged" in str(error)


def test_non_numeric_timestamp_is_rejected() -> None:
    headers = httpx.Headers(
        {
            "Wechatpay-Timestamp": "17e8",
            "Wechatpay-Nonce": "n",
            "Wechatpay-Signature": "c2ln",
            "Wechatpay-Serial": PUB_KEY_ID,
        }
    )
    with pytest.raises(ResponseVerificationError, match="'17e8' is not Unix seconds"):
        check_signature(headers, b"", now=NOW, lookup=lambda s: None, context=ResponseOrigin())
    headers["Wechatpay-Timestamp"] = "9" * 5000
    with pytest.raises(ResponseVerificationError, match="is not Unix seconds"):
        check_signature(headers, b"", now=NOW, lookup=lambda s: None, context=ResponseOrigin())


def test_empty_204_body_is_verified_over_an_empty_line() -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(status=204))
    with client_for(fake) as client:
        client.busifavor_modify("1212", {"out_request_no": "m1"})  # returns None (typed)
    response_message = signing.response_message("1", "n", b"")
    assert response_message == b"1\nn\n\n"


def test_204_with_a_forged_signature_is_rejected() -> None:
    fake = FakeWeChatPay()
    fake.script(Reply(status=204, key="impostor"))
    with client_for(fake) as client, pytest.raises(ResponseVerificationError):
        client.busifavor_modify("1212", {"out_request_no": "m1"})


@pytest.mark.parametrize(
    ("reply", "verified"),
    [
        (Reply(status=404, json={"code": "RESOURCE_NOT_EXISTS"}), True),
        (Reply(status=404, json={"code": "RESOURCE_NOT_EXISTS"}, sign=False), None),
        (Reply(status=404, json={"code": "RESOURCE_NOT_EXISTS"}, key="impostor"), False),
        (Reply(status=404, json={"code": "RESOURCE_NOT_EXISTS"}, serial="PUB_KEY_ID_X"), None),
    ],
    ids=["signed", "unsigned", "forged", "unknown-serial"],
)
def test_error_answers_are_verified_when_signed_but_not_required(
    reply: Reply, verified: bool | None
) -> None:
    fake = FakeWeChatPay()
    fake.script(reply)
    with client_for(fake) as client, pytest.raises(ApiResponseError) as info:
        client.busifavor_detail("1212")
    assert info.value.signature_verified is verified
    assert ("may be forged" in str(info.value)) is (verified is False)


def test_public_key_id_in_certificate_mode_gets_a_hint() -> None:
    fake = FakeWeChatPay(signer=PUB_KEY_ID)
    fake.script(Reply(json=STOCK))
    with client_for(fake, "certificates") as client, pytest.raises(ResponseVerificationError) as e:
        client.busifavor_detail("1212")
    assert "configure pub_key.pem with this PUB_KEY_ID" in str(e.value)
    assert fake.certificate_downloads == 0, "a PUB_KEY_ID cannot be learned by downloading"


def test_verifier_in_migration_mode_accepts_both_kinds_of_serial() -> None:
    fake = FakeWeChatPay()
    fake.script(
        Reply(json=STOCK), Reply(json=STOCK, serial="5A1B2C3D4E5F60718293A4B5C6D7E8F901234567")
    )
    with client_for(fake, "both") as client:
        assert client.busifavor_detail("1") == STOCK
        assert client.busifavor_detail("2") == STOCK
    assert fake.certificate_downloads == 1


def test_verifier_requires_a_certificate_source_in_certificate_mode() -> None:
    with pytest.raises(ValueError, match="certificate source"):
        ResponseVerifier(credentials("certificates"), clock=lambda: NOW)
