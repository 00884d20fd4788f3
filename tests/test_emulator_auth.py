"""Request verification, response signing, key modes and the certificate download."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings, WechatPayKeys
from reconciler.emulator.keys import public_key_pem
from reconciler.emulator.samples import busifavor_create_body, favor_create_body
from reconciler.emulator.timefmt import parse_time
from reconciler.wechatpay import signing
from tests.emulator_support import NOW, Clock


@pytest.fixture
def emu(clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant) -> Emulator:
    emulator = Emulator(clock=clock, keys=keys)
    merchant.register(emulator)
    return emulator


def verifies(key: rsa.RSAPublicKey, response: httpx.Response) -> bool:
    h = response.headers
    message = signing.response_message(
        h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], response.content
    )
    return signing.verify(key, message, h["Wechatpay-Signature"])


def detail_target(stock_id: str = "10000001", mchid: str = "1900000001") -> str:
    return f"/v3/marketing/favor/stocks/{stock_id}?stock_creator_mchid={mchid}"


def test_signed_request_gets_a_response_signed_with_the_public_key(
    emu: Emulator, merchant: DemoMerchant
) -> None:
    body = favor_create_body(merchant.mchid, NOW, "auth-1")
    response = emu.handle(
        merchant.request("POST", "/v3/marketing/favor/coupon-stocks", timestamp=NOW, json_body=body)
    )
    assert response.status_code == 200
    h = response.headers
    assert h["Wechatpay-Serial"] == emu.wechatpay_public_key_id
    assert re.fullmatch(r"PUB_KEY_ID_0114\d+", emu.wechatpay_public_key_id)
    assert h["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert h["Wechatpay-Timestamp"] == str(NOW)
    assert h["Request-ID"]
    assert verifies(emu.wechatpay_public_key, response)
    assert emu.wechatpay_public_key_pem().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_the_five_line_message_is_what_the_server_checks(
    emu: Emulator, merchant: DemoMerchant
) -> None:
    # Built by hand (not with request_message) to pin the format: each line ends in "\n".
    target = "/v3/marketing/busifavor/stocks/123"
    message = f"GET\n{target}\n{NOW}\nNONCE123\n\n".encode()
    header = signing.authorization(
        merchant.mchid,
        merchant.serial_no,
        NOW,
        "NONCE123",
        signing.sign(merchant.private_key, message),
    )
    request = httpx.Request(
        "GET",
        "https://api.mch.weixin.qq.com" + target,
        headers={"Authorization": header, "Accept": "*/*", "User-Agent": "t"},
    )
    response = emu.handle(request)
    # Authenticated: the answer is about the stock, not the signature.
    assert (response.status_code, response.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")
    assert response.json()["message"] == "批次不存在"


def test_a_body_changed_after_signing_gets_sign_error_with_sign_information(
    emu: Emulator, merchant: DemoMerchant
) -> None:
    body = favor_create_body(merchant.mchid, NOW, "auth-2")
    request = merchant.request(
        "POST", "/v3/marketing/favor/coupon-stocks", timestamp=NOW, json_body=body, nonce="N0NCE"
    )
    sent = json.dumps(body, ensure_ascii=False, indent=1).encode()  # other bytes, same JSON
    tampered = httpx.Request("POST", request.url, headers=request.headers, content=sent)
    response = emu.handle(tampered)
    assert response.status_code == 401
    error = response.json()
    assert error["code"] == "SIGN_ERROR"
    assert error["message"] == "错误的签名,验签失败"
    detail = error["detail"]
    assert (detail["field"], detail["location"]) == ("signature", "authorization")
    info = detail["sign_information"]
    expected = signing.request_message(
        "POST", "/v3/marketing/favor/coupon-stocks", NOW, "N0NCE", sent
    )
    assert info["method"] == "POST"
    assert info["url"] == "/v3/marketing/favor/coupon-stocks"
    assert info["sign_message_length"] == len(expected)
    assert expected.decode().startswith(info["truncated_sign_message"])
    assert info["truncated_sign_message"].startswith(
        f"POST\n/v3/marketing/favor/coupon-stocks\n{NOW}\n"
    )
    assert verifies(emu.wechatpay_public_key, response)  # error answers are signed too
    assert emu.stocks == {}


def test_the_query_must_be_signed_as_sent(emu: Emulator, merchant: DemoMerchant) -> None:
    encoded = "/v3/marketing/favor/stocks?offset=0&limit=10&stock_creator_mchid=1900000001&create_start_time=2026-05-01T00%3A00%3A00%2B08%3A00"
    request = merchant.request("GET", encoded, timestamp=NOW, nonce="N1")
    assert emu.handle(request).status_code == 200
    # A client that signs the decoded query but sends it encoded is refused.
    decoded = encoded.replace("%3A", ":").replace("%2B", "+")
    message = signing.request_message("GET", decoded, NOW, "N1", b"")
    request.headers["Authorization"] = signing.authorization(
        merchant.mchid, merchant.serial_no, NOW, "N1", signing.sign(merchant.private_key, message)
    )
    response = emu.handle(request)
    assert response.status_code == 401
    assert response.json()["detail"]["sign_information"]["url"] == encoded


def test_unknown_certificate_serial(emu: Emulator, merchant: DemoMerchant) -> None:
    other = DemoMerchant(merchant.mchid, "0" * 40, merchant.private_key, merchant.apiv3_key)
    response = emu.handle(other.request("GET", detail_target(), timestamp=NOW))
    assert response.status_code == 401
    assert response.json() == {"code": "SIGN_ERROR", "message": "商户证书序列号有误。"}


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_a_timestamp_more_than_five_minutes_off_is_refused(
    emu: Emulator, merchant: DemoMerchant, offset: int
) -> None:
    response = emu.handle(merchant.request("GET", detail_target(), timestamp=NOW + offset))
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"
    assert (
        response.json()["message"]
        == "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"
    )


@pytest.mark.parametrize("offset", [-300, 300])
def test_five_minutes_of_skew_is_accepted(
    emu: Emulator, merchant: DemoMerchant, offset: int
) -> None:
    response = emu.handle(merchant.request("GET", detail_target(), timestamp=NOW + offset))
    assert response.status_code == 404  # authenticated; the stock does not exist


@pytest.mark.parametrize("header", ["Accept", "User-Agent"])
def test_missing_accept_or_user_agent(emu: Emulator, merchant: DemoMerchant, header: str) -> None:
    request = merchant.request("GET", detail_target(), timestamp=NOW)
    del request.headers[header]
    response = emu.handle(request)
    assert response.status_code == 400
    assert response.json() == {"code": "INVALID_REQUEST", "message": "Http头缺少Accept或User-Agent"}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer abc",
        'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n"',
    ],
)
def test_malformed_authorization(
    emu: Emulator, merchant: DemoMerchant, authorization: str | None
) -> None:
    request = merchant.request("GET", detail_target(), timestamp=NOW)
    del request.headers["Authorization"]
    if authorization is not None:
        request.headers["Authorization"] = authorization
    response = emu.handle(request)
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"


def test_unknown_merchant(emu: Emulator, merchant: DemoMerchant) -> None:
    stranger = DemoMerchant(
        "1900000999", merchant.serial_no, merchant.private_key, merchant.apiv3_key
    )
    response = emu.handle(stranger.request("GET", detail_target(), timestamp=NOW))
    assert (response.status_code, response.json()["code"]) == (400, "MCH_NOT_EXISTS")


def test_four_byte_characters_are_refused(emu: Emulator, merchant: DemoMerchant) -> None:
    body = favor_create_body(merchant.mchid, NOW, "emoji-1")
    body["stock_name"] = "春季🎉"
    raw = emu.handle(
        merchant.request("POST", "/v3/marketing/favor/coupon-stocks", timestamp=NOW, json_body=body)
    )
    assert raw.status_code == 400
    assert raw.json()["code"] == "PARAM_ERROR"
    assert raw.json()["detail"]["field"] == "/stock_name"
    # The same character as a JSON escape pair is refused as well.
    escaped = json.dumps(body, ensure_ascii=True).encode()
    request = httpx.Request(
        "POST",
        "https://api.mch.weixin.qq.com/v3/marketing/favor/coupon-stocks",
        headers={
            "Accept": "application/json",
            "User-Agent": "t",
            "Content-Type": "application/json",
        },
        content=escaped,
    )
    merchant.sign(request, timestamp=NOW, nonce="E")
    response = emu.handle(request)
    assert (response.status_code, response.json()["detail"]["field"]) == (400, "/stock_name")
    assert emu.stocks == {}


def test_a_body_needs_the_json_content_type(emu: Emulator, merchant: DemoMerchant) -> None:
    body = favor_create_body(merchant.mchid, NOW, "ct-1")
    request = merchant.request(
        "POST",
        "/v3/marketing/favor/coupon-stocks",
        timestamp=NOW,
        json_body=body,
        headers={"Content-Type": "text/plain"},
    )
    response = emu.handle(request)
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")


def test_unknown_endpoint(emu: Emulator, merchant: DemoMerchant) -> None:
    response = emu.handle(merchant.request("GET", "/v3/marketing/nothing", timestamp=NOW))
    assert response.status_code == 404
    assert verifies(emu.wechatpay_public_key, response)


def test_an_empty_204_body_is_signed(emu: Emulator, merchant: DemoMerchant) -> None:
    created = emu.handle(
        merchant.request(
            "POST",
            "/v3/marketing/busifavor/stocks",
            timestamp=NOW,
            json_body=busifavor_create_body(merchant.mchid, NOW, "b-1"),
        )
    )
    stock_id = created.json()["stock_id"]
    response = emu.handle(
        merchant.request(
            "PATCH",
            f"/v3/marketing/busifavor/stocks/{stock_id}",
            timestamp=NOW,
            json_body={"out_request_no": "m-1", "comment": "changed"},
        )
    )
    assert response.status_code == 204
    assert response.content == b""
    h = response.headers
    message = f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n\n".encode()
    assert signing.verify(emu.wechatpay_public_key, message, h["Wechatpay-Signature"])


def test_the_request_log_never_holds_the_authorization(
    emu: Emulator, merchant: DemoMerchant
) -> None:
    request = merchant.request("GET", detail_target(), timestamp=NOW)
    emu.handle(request)
    signature = signing.parse_authorization(request.headers["Authorization"])
    assert signature is not None
    (entry,) = emu.request_log
    assert (entry.method, entry.path, entry.status) == ("GET", detail_target(), 404)
    assert signature["signature"] not in repr(emu.request_log)


# --- key modes and platform certificates -------------------------------------------------------


def platform_emulator(
    clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant, mode: str
) -> Emulator:
    settings = EmulatorSettings(signing_key=mode, platform_certificates=True)  # type: ignore[arg-type]
    emulator = Emulator(settings, clock=clock, keys=keys)
    merchant.register(emulator)
    return emulator


def test_platform_certificate_mode_signs_with_the_certificate(
    clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant
) -> None:
    emulator = platform_emulator(clock, keys, merchant, "platform_certificate")
    cert = emulator.platform_certificate
    assert cert is not None
    assert re.fullmatch(r"[0-9A-F]{40}", cert.serial_no)
    assert cert.serial_no == f"{cert.certificate.serial_number:X}"
    response = emulator.handle(merchant.request("GET", detail_target(), timestamp=NOW))
    assert response.headers["Wechatpay-Serial"] == cert.serial_no
    cert_key = cert.certificate.public_key()
    assert isinstance(cert_key, rsa.RSAPublicKey)
    assert verifies(cert_key, response)
    assert not verifies(emulator.wechatpay_public_key, response)


@pytest.mark.parametrize("sent_serial", [None, "certificate", "PUB_KEY_ID"])
def test_by_request_serial_follows_wechatpay_serial(
    clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant, sent_serial: str | None
) -> None:
    emulator = platform_emulator(clock, keys, merchant, "by_request_serial")
    cert = emulator.platform_certificate
    assert cert is not None
    headers = {}
    if sent_serial == "certificate":
        headers["Wechatpay-Serial"] = cert.serial_no
    elif sent_serial == "PUB_KEY_ID":
        headers["Wechatpay-Serial"] = emulator.wechatpay_public_key_id
    response = emulator.handle(
        merchant.request("GET", detail_target(), timestamp=NOW, headers=headers)
    )
    if sent_serial == "PUB_KEY_ID":
        assert response.headers["Wechatpay-Serial"] == emulator.wechatpay_public_key_id
        assert verifies(emulator.wechatpay_public_key, response)
    else:
        assert response.headers["Wechatpay-Serial"] == cert.serial_no
        cert_key = cert.certificate.public_key()
        assert isinstance(cert_key, rsa.RSAPublicKey)
        assert verifies(cert_key, response)


def test_certificate_download_decrypts_with_the_apiv3_key(
    clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant
) -> None:
    emulator = platform_emulator(clock, keys, merchant, "platform_certificate")
    response = emulator.handle(merchant.request("GET", "/v3/certificates", timestamp=NOW))
    assert response.status_code == 200
    (item,) = response.json()["data"]
    sealed = item["encrypt_certificate"]
    assert sealed["algorithm"] == "AEAD_AES_256_GCM"
    assert sealed["associated_data"] == "certificate"
    assert len(sealed["nonce"]) == 12
    pem = AESGCM(merchant.apiv3_key.encode()).decrypt(
        sealed["nonce"].encode(),
        base64.b64decode(sealed["ciphertext"]),
        sealed["associated_data"].encode(),
    )
    cert = x509.load_pem_x509_certificate(pem)
    assert item["serial_no"] == f"{cert.serial_number:X}"
    effective, expire = parse_time(item["effective_time"]), parse_time(item["expire_time"])
    assert effective is not None and expire is not None
    assert item["effective_time"].endswith("+08:00")
    assert effective.timestamp() == NOW
    assert (expire - effective).days == 5 * 365
    cert_key = cert.public_key()
    assert isinstance(cert_key, rsa.RSAPublicKey)
    assert verifies(cert_key, response)


def test_without_platform_certificates_the_download_is_404(
    emu: Emulator, merchant: DemoMerchant
) -> None:
    emu.settings.platform_certificates = False
    response = emu.handle(merchant.request("GET", "/v3/certificates", timestamp=NOW))
    assert response.status_code == 404
    assert response.json()["code"] == "RESOURCE_NOT_EXISTS"
    assert emu.platform_certificate is None


def test_a_merchant_without_an_apiv3_key_cannot_download(
    clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant
) -> None:
    emulator = platform_emulator(clock, keys, merchant, "public_key")
    emulator.register_merchant(merchant.mchid, merchant.serial_no, merchant.public_key)
    response = emulator.handle(merchant.request("GET", "/v3/certificates", timestamp=NOW))
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")


def test_switching_to_certificate_signing_at_run_time_makes_a_certificate(
    emu: Emulator, merchant: DemoMerchant
) -> None:
    emu.settings.signing_key = "platform_certificate"
    response = emu.handle(merchant.request("GET", detail_target(), timestamp=NOW))
    cert = emu.platform_certificate
    assert cert is not None
    assert response.headers["Wechatpay-Serial"] == cert.serial_no


def test_register_merchant_checks_its_input(emu: Emulator, merchant: DemoMerchant) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        emu.register_merchant("1900000002", "AB", merchant.public_key, "short")
    with pytest.raises(ValueError, match="empty"):
        emu.register_merchant("", "AB", merchant.public_key)
    pem = public_key_pem(merchant.public_key)
    emu.register_merchant("1900000002", "CD", pem)
    other = DemoMerchant("1900000002", "CD", merchant.private_key, merchant.apiv3_key)
    response = emu.handle(other.request("GET", detail_target(mchid="1900000002"), timestamp=NOW))
    assert response.status_code == 404
