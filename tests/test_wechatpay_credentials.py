"""Credential loading: both private-key formats, every documented mistake, hidden secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from reconciler.errors import ApiError, ConfigError
from reconciler.wechatpay.credentials import (
    MerchantCredentials,
    load_apiv3_key,
    load_merchant_credentials,
    load_private_key,
    load_wechatpay_public_key,
)
from reconciler.wechatpay.errors import CredentialError
from tests.test_wechatpay_support import (
    APIV3_KEY,
    MCHID,
    MERCHANT_SERIAL,
    PUB_KEY_ID,
    certificate,
    pem_private,
    pem_public,
    rsa_key,
)


def same_key(a: object, b: object) -> bool:
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert isinstance(a, rsa.RSAPrivateKey) and isinstance(b, rsa.RSAPrivateKey)
    return a.private_numbers() == b.private_numbers()


@pytest.mark.parametrize("pkcs8", [True, False], ids=["pkcs8", "pkcs1"])
def test_private_key_loads_from_file_in_both_formats(tmp_path: Path, pkcs8: bool) -> None:
    path = tmp_path / "apiclient_key.pem"
    path.write_bytes(pem_private(rsa_key("merchant"), pkcs8=pkcs8))
    assert same_key(load_private_key(path=path), rsa_key("merchant"))


def test_private_key_loads_from_env_with_escaped_newlines() -> None:
    text = pem_private(rsa_key("merchant")).decode()
    environ = {"MCH_KEY": text.replace("\n", "\\n")}
    assert same_key(load_private_key(env="MCH_KEY", environ=environ), rsa_key("merchant"))


def test_private_key_with_stripped_pem_markers_still_loads(tmp_path: Path) -> None:
    lines = pem_private(rsa_key("merchant"), pkcs8=False).decode().splitlines()
    path = tmp_path / "k.pem"
    path.write_text("\n".join(lines[1:-1]))
    assert same_key(load_private_key(path=path), rsa_key("merchant"))


def test_missing_env_variable_is_named() -> None:
    with pytest.raises(CredentialError) as info:
        load_private_key(env="WECHATPAY_KEY_PEM", environ={})
    assert "environment variable WECHATPAY_KEY_PEM is not set" in str(info.value)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(CredentialError) as info:
        load_private_key(path=missing)
    assert str(missing) in str(info.value) and "cannot read" in str(info.value)


def test_certificate_given_as_private_key_says_so(tmp_path: Path) -> None:
    path = tmp_path / "apiclient_cert.pem"
    cert = certificate(rsa_key("merchant"), MERCHANT_SERIAL)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CredentialError, match="a certificate was given where a key was expected"):
        load_private_key(path=path)


def test_public_key_given_as_private_key_says_so() -> None:
    environ = {"K": pem_public(rsa_key("merchant").public_key()).decode()}
    with pytest.raises(CredentialError, match="does not hold a private key: found PUBLIC KEY"):
        load_private_key(env="K", environ=environ)


def test_encrypted_private_key_is_refused_with_a_hint() -> None:
    pem = rsa_key("merchant").private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-pass"),
    )
    with pytest.raises(CredentialError, match=r"encrypted private key.*openssl pkey"):
        load_private_key(env="K", environ={"K": pem.decode()})


def test_non_rsa_key_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(CredentialError, match="WeChat Pay needs RSA"):
        load_private_key(env="K", environ={"K": pem.decode()})


def test_p12_bundle_is_explained(tmp_path: Path) -> None:
    key = rsa_key("merchant")
    blob = pkcs12.serialize_key_and_certificates(
        b"x", key, certificate(key, MERCHANT_SERIAL), None, serialization.NoEncryption()
    )
    path = tmp_path / "apiclient_cert.p12"
    path.write_bytes(blob)
    with pytest.raises(CredentialError, match=r"not PEM text.*\.p12"):
        load_private_key(path=path)


def test_wechatpay_public_key_loads_and_rejects_a_private_key() -> None:
    pub = pem_public(rsa_key("wechatpay").public_key()).decode()
    key = load_wechatpay_public_key(env="P", environ={"P": pub})
    assert key.public_numbers() == rsa_key("wechatpay").public_key().public_numbers()
    with pytest.raises(CredentialError, match=r"pub_key\.pem"):
        load_wechatpay_public_key(env="P", environ={"P": pem_private(rsa_key("x")).decode()})


def test_apiv3_key_from_env_and_file(tmp_path: Path) -> None:
    assert load_apiv3_key(env="V3", environ={"V3": APIV3_KEY.decode()}) == APIV3_KEY
    path = tmp_path / "v3"
    path.write_bytes(APIV3_KEY + b"\n")
    assert load_apiv3_key(path=path) == APIV3_KEY


def test_apiv3_key_of_wrong_length_names_the_length_not_the_value() -> None:
    secret = "short-secret-value"
    with pytest.raises(CredentialError) as info:
        load_apiv3_key(env="V3", environ={"V3": secret})
    message = str(info.value)
    assert "18 bytes" in message and "exactly 32" in message and "V3" in message
    assert secret not in message


def test_key_that_does_not_match_the_certificate(tmp_path: Path) -> None:
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(pem_private(rsa_key("merchant")))
    cert = certificate(rsa_key("someone-else"), MERCHANT_SERIAL)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CredentialError, match="does not match the merchant certificate"):
        load_merchant_credentials(
            mchid=MCHID,
            serial_no=MERCHANT_SERIAL,
            private_key_path=key_path,
            certificate_path=cert_path,
            apiv3_key_env="V3",
            environ={"V3": APIV3_KEY.decode()},
        )


def test_certificate_serial_must_equal_serial_no(tmp_path: Path) -> None:
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(pem_private(rsa_key("merchant")))
    cert = certificate(rsa_key("merchant"), "0ABC")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CredentialError, match=f"serial_no {MERCHANT_SERIAL} is not .* ABC"):
        load_merchant_credentials(
            mchid=MCHID,
            serial_no=MERCHANT_SERIAL,
            private_key_path=key_path,
            certificate_path=cert_path,
            apiv3_key_env="V3",
            environ={"V3": APIV3_KEY.decode()},
        )


def test_full_load_in_migration_mode_reads_only_named_sources(tmp_path: Path) -> None:
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(pem_private(rsa_key("merchant")))
    cert = certificate(rsa_key("merchant"), MERCHANT_SERIAL)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    environ = {"PUB": pem_public(rsa_key("wechatpay").public_key()).decode(), "V3": "x" * 32}
    creds = load_merchant_credentials(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL.lower(),
        private_key_path=key_path,
        certificate_path=cert_path,
        wechatpay_public_key_env="PUB",
        wechatpay_public_key_id=PUB_KEY_ID,
        apiv3_key_env="V3",
        environ=environ,
    )
    assert creds.serial_no == MERCHANT_SERIAL
    assert creds.uses_public_key and creds.uses_platform_certificates


def test_credentials_need_a_way_to_verify_answers() -> None:
    with pytest.raises(CredentialError, match="cannot verify WeChat Pay responses"):
        MerchantCredentials(mchid=MCHID, serial_no=MERCHANT_SERIAL, private_key=rsa_key("merchant"))


def test_public_key_and_its_id_go_together() -> None:
    with pytest.raises(CredentialError, match="give both or neither"):
        MerchantCredentials(
            mchid=MCHID,
            serial_no=MERCHANT_SERIAL,
            private_key=rsa_key("merchant"),
            wechatpay_public_key=rsa_key("wechatpay").public_key(),
        )


def test_credential_error_is_both_a_config_and_an_api_error() -> None:
    assert issubclass(CredentialError, ConfigError) and issubclass(CredentialError, ApiError)


def test_repr_and_str_hide_every_secret() -> None:
    key = rsa_key("merchant")
    apiv3 = b"TOPSECRETapiv3key-0123456789abcd"
    creds = MerchantCredentials(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        private_key=key,
        wechatpay_public_key=rsa_key("wechatpay").public_key(),
        wechatpay_public_key_id=PUB_KEY_ID,
        apiv3_key=apiv3,
    )
    shown = repr(creds) + str(creds) + repr([creds]) + f"{creds}"
    assert "<hidden>" in shown and MCHID in shown
    assert "TOPSECRET" not in shown and str(apiv3) not in shown
    assert str(key.private_numbers().d) not in shown
    pem_body = pem_private(key).decode().splitlines()[1]
    assert pem_body not in shown
