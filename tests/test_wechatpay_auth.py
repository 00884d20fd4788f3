"""The httpx.Auth: what it signs is exactly what httpx sends."""

from __future__ import annotations

import re

import httpx
import pytest

from reconciler import __version__
from reconciler.wechatpay import signing
from reconciler.wechatpay.auth import WeChatPayAuth, json_body, random_nonce, signed_message
from tests.test_wechatpay_support import MCHID, MERCHANT_SERIAL, PUB_KEY_ID, credentials, rsa_key

NONCE = "0123456789abcdefghijABCDEFGHIJ01"


def send(auth: WeChatPayAuth, request: httpx.Request) -> httpx.Request:
    """Send through a real httpx.Client so the auth sees the final request object."""
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.send(request)
    return seen[0]


def verify_request(request: httpx.Request) -> dict[str, str]:
    params = signing.parse_authorization(request.headers["Authorization"])
    assert params is not None
    message = signed_message(request)
    assert message is not None
    assert signing.verify(rsa_key("merchant").public_key(), message, params["signature"])
    return params


def test_signs_raw_path_and_body_bytes_as_sent() -> None:
    auth = WeChatPayAuth(credentials(), clock=lambda: 1700000000.7, nonce_source=lambda: NONCE)
    body = json_body({"stock_name": "满100减10", "n": 1})
    url = "https://api.mch.weixin.qq.com/v3/x?t=2024-01-01T00%3A00%3A00%2B08%3A00"
    sent = send(auth, httpx.Request("POST", url, content=body))
    params = verify_request(sent)
    assert params == {
        "mchid": MCHID,
        "nonce_str": NONCE,
        "signature": params["signature"],
        "timestamp": "1700000000",
        "serial_no": MERCHANT_SERIAL,
    }
    expected = (
        b"POST\n/v3/x?t=2024-01-01T00%3A00%3A00%2B08%3A00\n1700000000\n" + NONCE.encode() + b"\n"
    )
    assert signed_message(sent) == expected + body + b"\n"
    assert sent.content == body


def test_json_body_is_compact_utf8_and_keeps_order() -> None:
    assert json_body({"b": "测试", "a": [1, 2]}) == '{"b":"测试","a":[1,2]}'.encode()
    with pytest.raises(ValueError):
        json_body({"x": float("nan")})


def test_protocol_headers_in_public_key_mode() -> None:
    auth = WeChatPayAuth(credentials("public_key"), clock=lambda: 1.0, nonce_source=lambda: NONCE)
    sent = send(auth, httpx.Request("PATCH", "https://h/v3/y", content=b"{}"))
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"] == f"reconciler/{__version__} (+python httpx)"
    assert sent.headers["Wechatpay-Serial"] == PUB_KEY_ID


def test_no_content_type_or_serial_without_body_in_certificate_mode() -> None:
    auth = WeChatPayAuth(credentials("certificates"), clock=lambda: 1.0, nonce_source=lambda: NONCE)
    sent = send(auth, httpx.Request("GET", "https://h/v3/y"))
    assert "Content-Type" not in sent.headers
    assert "Wechatpay-Serial" not in sent.headers
    assert signed_message(sent) == b"GET\n/v3/y\n1\n" + NONCE.encode() + b"\n\n"
    verify_request(sent)


def test_each_signing_gets_a_fresh_timestamp_and_nonce() -> None:
    ticks = iter([100.0, 101.0])
    auth = WeChatPayAuth(credentials(), clock=lambda: next(ticks))
    first = send(auth, httpx.Request("POST", "https://h/v3/z", content=b'{"a":1}'))
    second = send(auth, httpx.Request("POST", "https://h/v3/z", content=b'{"a":1}'))
    p1, p2 = verify_request(first), verify_request(second)
    assert (p1["timestamp"], p2["timestamp"]) == ("100", "101")
    assert p1["nonce_str"] != p2["nonce_str"]


def test_default_nonce_is_32_alphanumerics() -> None:
    nonces = {random_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(re.fullmatch(r"[0-9A-Za-z]{32}", n) for n in nonces)


def test_a_nonce_that_would_break_the_header_is_refused() -> None:
    auth = WeChatPayAuth(credentials(), clock=lambda: 1.0, nonce_source=lambda: 'a",b')
    with pytest.raises(ValueError, match="nonce"):
        auth.sign(httpx.Request("GET", "https://h/v3/y"))


def test_auth_repr_hides_the_key() -> None:
    auth = WeChatPayAuth(credentials())
    assert repr(auth) == f"WeChatPayAuth(mchid='{MCHID}')"
