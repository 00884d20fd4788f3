"""Golden tests: published RSA vectors from the official SDKs, and a pinned full request.

The two keys under tests/vectors/ are public test keys copied from wechatpay-go and
wechatpay-java; their PEM label is stored as "TESTING KEY" (as wechatpay-go does) so that no
committed file looks like a real private key, and swapped back here in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from reconciler.wechatpay import signing
from reconciler.wechatpay.auth import WeChatPayAuth, json_body
from reconciler.wechatpay.credentials import (
    MerchantCredentials,
    check_certificate,
    parse_private_key,
)

VECTORS = Path(__file__).parent / "vectors"
REAL_LABEL = "PRIVATE" + " KEY"


def vector_key(name: str) -> bytes:
    return (VECTORS / name).read_bytes().replace(b"TESTING KEY", REAL_LABEL.encode())


def vectors() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads((VECTORS / "rsa_vectors.json").read_text())
    return data


@pytest.mark.parametrize("name", ["wechatpay-go", "wechatpay-java"])
def test_published_signature_is_reproduced_and_verifies(name: str) -> None:
    vector = vectors()[name]
    key = parse_private_key(vector_key(vector["key_file"]), vector["key_file"])
    message = vector["message"].encode()
    assert signing.sign(key, message) == vector["signature"]
    assert signing.verify(key.public_key(), message, vector["signature"])
    assert not signing.verify(key.public_key(), message + b"!", vector["signature"])


def test_java_vector_key_matches_its_certificate_and_serial() -> None:
    vector = vectors()["wechatpay-java"]
    key = parse_private_key(vector_key(vector["key_file"]), "java key")
    cert = x509.load_pem_x509_certificate((VECTORS / vector["certificate_file"]).read_bytes())
    check_certificate(key, cert, vector["serial_no"])
    assert format(cert.serial_number, "X") == vector["serial_no"]


def test_vector_files_hold_no_real_private_key_label() -> None:
    for path in VECTORS.iterdir():
        assert b"BEGIN " + REAL_LABEL.encode() not in path.read_bytes(), path.name


# A full request signed with the wechatpay-java test key, a fixed timestamp and nonce.
PINNED_MESSAGE = (
    b"POST\n/v3/marketing/favor/stocks/9856000/start\n1554208460\n"
    b"593BEC0C930BF1AFEB40B4A08C8FB242\n"
    b'{"stock_creator_mchid":"1900000001","note":"\xe6\xb5\x8b\xe8\xaf\x95"}\n'
)
PINNED_AUTHORIZATION = (
    'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
    'signature="CMpDSyymsTLz3kJK4WhtVHB/TAxMUKEj1RBYMHuTcMXLsHe5TZXJzWQ8Ah6Kyyqrz2XgjGhc59QA+R/L1W8'
    "vmbp79L0/VM1M3+AfLi5ilxhIv4Snw2lgxUioRaAV9WJ/Vs7KgUHkFfwrLj85kpbrdTJUBhZANar1alZoB6QYEuyNkj6e"
    "GklLtEaBNScXDkAAS0Qcr0avzHVynWoiXN6U8SvSFOBvqhLq/BTUl12jZyIEiNpK1/IKnqH7iuYKPlEJeUPDbPuZGHAE/"
    'DIy7tskNOMANmsh4IdavzMPdGVwnlI0LZiFdxLF8zNXdN7JuVeeiaX/qAT620jsxvzHLunOaQ==",'
    'timestamp="1554208460",serial_no="5F1C72E2A8931B72A2E13AF8DEE92471EB397115"'
)


def test_full_request_gives_the_pinned_authorization_header() -> None:
    vector = vectors()["wechatpay-java"]
    key = parse_private_key(vector_key(vector["key_file"]), "java key")
    creds = MerchantCredentials(
        mchid="1900000001", serial_no=vector["serial_no"], private_key=key, apiv3_key=b"k" * 32
    )
    auth = WeChatPayAuth(
        creds, clock=lambda: 1554208460.9, nonce_source=lambda: "593BEC0C930BF1AFEB40B4A08C8FB242"
    )
    request = httpx.Request(
        "POST",
        "https://api.mch.weixin.qq.com/v3/marketing/favor/stocks/9856000/start",
        content=json_body({"stock_creator_mchid": "1900000001", "note": "测试"}),
    )
    auth.sign(request)
    assert request.headers["Authorization"] == PINNED_AUTHORIZATION
    # The header is the published-scheme signature of exactly this message.
    params = signing.parse_authorization(PINNED_AUTHORIZATION)
    assert params is not None
    assert signing.verify(key.public_key(), PINNED_MESSAGE, params["signature"])
