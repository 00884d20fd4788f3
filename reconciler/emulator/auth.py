"""Both directions of APIv3 signing as the server does them: verify requests, sign responses."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from typing import Any

import httpx

from reconciler.emulator.failures import ApiFailure
from reconciler.emulator.faults import SignatureFault
from reconciler.emulator.keys import SigningIdentity
from reconciler.emulator.store import EmulatedMerchant
from reconciler.wechatpay.signing import (
    SCHEME,
    SIGNTEST_PREFIX,
    parse_authorization,
    request_message,
    response_message,
    sign,
    verify,
)

HEADERS_MISSING = "Http头缺少Accept或User-Agent"
AUTHORIZATION_MALFORMED = "Http头Authorization值格式错误,请参考《微信支付商户REST API签名规则》"
MERCHANT_UNKNOWN = "商户号不合法"
SERIAL_WRONG = "商户证书序列号有误。"
TIMESTAMP_STALE = "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"
SIGNATURE_WRONG = "错误的签名,验签失败"
TRUNCATED_MESSAGE_CHARS = 128

TARGET_EXTENSION = "reconciler_emulator_target"
"""Request extension carrying the request target exactly as read off the wire (server mode)."""


def request_target(request: httpx.Request) -> str:
    """Path and query as the client sent them; this is what the client had to sign."""
    raw = request.extensions.get(TARGET_EXTENSION, request.url.raw_path)
    return bytes(raw).decode("latin-1")


def _sign_error(message: str, detail: dict[str, Any] | None = None) -> ApiFailure:
    return ApiFailure(401, "SIGN_ERROR", message, detail)


def authenticate(
    request: httpx.Request,
    body: bytes,
    merchants: Mapping[str, EmulatedMerchant],
    now: float,
    max_skew_seconds: int,
) -> EmulatedMerchant:
    """The merchant whose signature this request carries; raises the server's error otherwise."""
    if not request.headers.get("Accept") or not request.headers.get("User-Agent"):
        raise ApiFailure(400, "INVALID_REQUEST", HEADERS_MISSING)
    params = parse_authorization(request.headers.get("Authorization", ""))
    if params is None:
        raise _sign_error(AUTHORIZATION_MALFORMED)
    merchant = merchants.get(params["mchid"])
    if merchant is None:
        raise ApiFailure(400, "MCH_NOT_EXISTS", MERCHANT_UNKNOWN)
    if params["serial_no"] != merchant.serial_no:
        raise _sign_error(SERIAL_WRONG)
    timestamp = params["timestamp"]
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise _sign_error(AUTHORIZATION_MALFORMED)
    if abs(now - int(timestamp)) > max_skew_seconds:
        raise _sign_error(TIMESTAMP_STALE)
    target = request_target(request)
    message = request_message(request.method, target, timestamp, params["nonce_str"], body)
    if not verify(merchant.public_key, message, params["signature"]):
        text = message.decode("utf-8", errors="replace")
        raise _sign_error(
            SIGNATURE_WRONG,
            {
                "field": "signature",
                "location": "authorization",
                "detail": {"issue": "sign not match"},
                "sign_information": {
                    "method": request.method,
                    "url": target,
                    "sign_message_length": len(message),
                    "truncated_sign_message": text[:TRUNCATED_MESSAGE_CHARS],
                },
            },
        )
    return merchant


def encode_body(payload: Mapping[str, Any] | None) -> bytes:
    if payload is None:
        return b""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_response(
    status: int,
    payload: Mapping[str, Any] | None,
    *,
    signer: SigningIdentity,
    timestamp: int,
    request_id: str,
    fault: SignatureFault | None = None,
) -> httpx.Response:
    """A response with the `Wechatpay-*` headers over its exact body bytes (empty for 204)."""
    body = encode_body(payload)
    headers = [("Request-ID", request_id)]
    if payload is not None:
        headers.append(("Content-Type", "application/json"))
    if fault != "unsigned":
        nonce = secrets.token_hex(16).upper()
        message = response_message(str(timestamp), nonce, body)
        if fault == "bad":
            # A well-formed signature over other bytes: only real verification notices.
            signature = sign(signer.private_key, message + b"tampered")
        elif fault == "probe":
            signature = SIGNTEST_PREFIX + base64.b64encode(secrets.token_bytes(192)).decode()
        else:
            signature = sign(signer.private_key, message)
        headers += [
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Timestamp", str(timestamp)),
            ("Wechatpay-Serial", signer.serial),
            ("Wechatpay-Signature-Type", SCHEME),
        ]
    return httpx.Response(status, headers=headers, content=body)
