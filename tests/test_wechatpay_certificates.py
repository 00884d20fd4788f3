"""Platform-certificate mode: decryption, bootstrap, refresh on new serials and by age."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.wechatpay.certificates import decrypt_certificate, parse_certificate_list
from reconciler.wechatpay.errors import (
    ApiResponseError,
    CertificateUnavailableError,
    CredentialError,
    ResponseVerificationError,
)
from tests.test_wechatpay_support import (
    APIV3_KEY,
    NEW_PLATFORM_SERIAL,
    NOW,
    PLATFORM_SERIAL,
    FakeWeChatPay,
    Reply,
    certificate,
    client_for,
    encrypt_certificate,
    rsa_key,
)

STOCK = {"stock_id": "77"}


def test_decrypts_an_encrypted_certificate() -> None:
    cert = certificate(rsa_key("platform-x"), "0A")
    sealed = encrypt_certificate(cert, APIV3_KEY, "abcdefghijkl")
    assert decrypt_certificate(APIV3_KEY, sealed) == cert


def test_wrong_apiv3_key_is_a_credential_error_naming_the_serial() -> None:
    sealed = encrypt_certificate(certificate(rsa_key("platform-x"), "0A"), APIV3_KEY, "n" * 12)
    body = b'{"data":[{"serial_no":"0A","encrypt_certificate":' + _json(sealed) + b"}]}"
    with pytest.raises(CredentialError, match="0A does not decrypt with the APIv3 key"):
        parse_certificate_list(b"w" * 32, body)


def test_unknown_encryption_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported certificate encryption"):
        decrypt_certificate(APIV3_KEY, {"algorithm": "AEAD_SM4_GCM"})


def test_first_download_is_verified_with_the_certificates_it_carries() -> None:
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL)
    fake.script(Reply(json=STOCK))
    with client_for(fake, "certificates") as client:
        assert client.busifavor_detail("77") == STOCK
    paths = [r.url.path for r in fake.requests]
    assert paths == ["/v3/marketing/busifavor/stocks/77", "/v3/certificates"]
    assert "Authorization" in fake.requests[1].headers


def test_certificate_list_with_a_bad_signature_is_rejected() -> None:
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL)
    fake.tamper_certificates = (b"2028-01-01", b"2029-01-01")
    fake.script(Reply(json=STOCK))
    with client_for(fake, "certificates") as client, pytest.raises(ResponseVerificationError) as e:
        client.busifavor_detail("77")
    assert "GET /v3/certificates" in str(e.value)
    assert "signature does not match the body" in str(e.value)


def test_certificate_list_with_altered_ciphertext_is_rejected() -> None:
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL)
    fake.tamper_certificates = (b'"ciphertext": "', b'"ciphertext": "AAAA')
    fake.script(Reply(json=STOCK))
    with (
        client_for(fake, "certificates") as client,
        pytest.raises(CertificateUnavailableError) as e,
    ):
        client.busifavor_detail("77")
    assert "does not decrypt with the APIv3 key" in str(e.value)
    assert "tampered with" in str(e.value)


def test_new_serial_triggers_one_refresh_then_is_trusted() -> None:
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL)
    fake.script(Reply(json=STOCK))
    with client_for(fake, "certificates") as client:
        client.busifavor_detail("77")
        # WeChat Pay rotates: the new certificate appears and starts signing.
        fake.platform_serials = (PLATFORM_SERIAL, NEW_PLATFORM_SERIAL)
        fake.script(Reply(json=STOCK, serial=NEW_PLATFORM_SERIAL), Reply(json=STOCK))
        assert client.busifavor_detail("77") == STOCK
        assert client.busifavor_detail("77") == STOCK
    assert fake.certificate_downloads == 2


def test_serial_still_unknown_after_a_refresh_is_rejected_after_one_download() -> None:
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL)
    fake.script(Reply(json=STOCK, serial="ABCDEF", key="platform-ABCDEF"))
    with client_for(fake, "certificates") as client, pytest.raises(ResponseVerificationError) as e:
        client.busifavor_detail("77")
    assert fake.certificate_downloads == 1
    assert f"Wechatpay-Serial ABCDEF is not a key we trust (trusted: {PLATFORM_SERIAL})" in str(
        e.value
    )


def test_certificates_are_refreshed_after_their_max_age() -> None:
    now = [NOW]
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL, clock=lambda: now[0])
    with client_for(fake, "certificates", certificate_max_age=3600) as client:
        client.busifavor_detail("1")
        now[0] += 3599
        client.busifavor_detail("2")
        assert fake.certificate_downloads == 1
        now[0] += 2
        client.busifavor_detail("3")
    assert fake.certificate_downloads == 2


def test_failed_age_refresh_keeps_using_a_known_certificate() -> None:
    now = [NOW]
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL, clock=lambda: now[0])
    with client_for(fake, "certificates", certificate_max_age=10, max_attempts=1) as client:
        client.busifavor_detail("1")
        now[0] += 11
        fake.certificate_reply = Reply(status=500, json={"code": "SYSTEM_ERROR"})
        assert client.busifavor_detail("2") == {"ok": True}
    assert fake.certificate_downloads == 2


def test_certificate_download_failure_is_explained() -> None:
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL)
    fake.certificate_reply = Reply(
        status=404, json={"code": "RESOURCE_NOT_EXISTS", "message": "无可用的平台证书"}
    )
    fake.script(Reply(json=STOCK))
    with (
        client_for(fake, "certificates") as client,
        pytest.raises(CertificateUnavailableError) as e,
    ):
        client.busifavor_detail("77")
    message = str(e.value)
    assert "downloading the platform certificates failed" in message
    assert "404 RESOURCE_NOT_EXISTS: 无可用的平台证书" in message


def test_error_answers_during_a_download_never_start_another_download() -> None:
    fake = FakeWeChatPay(signer="0BADBEEF")
    fake.certificate_reply = Reply(status=401, json={"code": "SIGN_ERROR"}, serial="0BADBEEF")
    fake.script(Reply(status=404, json={"code": "RESOURCE_NOT_EXISTS"}, key="platform-0BADBEEF"))
    with client_for(fake, "certificates") as client:
        with pytest.raises(ApiResponseError) as info:
            client.busifavor_detail("77")
        assert info.value.signature_verified is None
        assert fake.certificate_downloads == 1
        with pytest.raises(ApiResponseError, match="SIGN_ERROR"):
            client.refresh_certificates()
    assert fake.certificate_downloads == 2


def test_threads_meeting_a_new_serial_download_once() -> None:
    fake = FakeWeChatPay(signer=PLATFORM_SERIAL)
    gate = threading.Barrier(8)
    with client_for(fake, "certificates") as client:

        def call(i: int) -> object:
            gate.wait()
            return client.busifavor_detail(str(i))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(8)))
    assert results == [{"ok": True}] * 8
    assert fake.certificate_downloads == 1


def _json(value: object) -> bytes:
    return json.dumps(value).encode()
