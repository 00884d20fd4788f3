"""Shared helpers for the wechatpay tests: run-time keys and a small fake WeChat Pay.

No tests live here. The fake sits behind `httpx.MockTransport`, checks the client's
signature like WeChat Pay would, and signs its answers with keys generated at run time.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from reconciler.limits import Limit
from reconciler.wechatpay import signing
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.retry import RetryPolicy

NOW = 1_700_000_000.0
MCHID = "1900000001"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD01A1C5A9"
PUB_KEY_ID = "PUB_KEY_ID_0119000000012025000000000001"
APIV3_KEY = b"0123456789abcdefABCDEF0123456789"


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per name, generated once per test run."""
    del name
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(key: rsa.RSAPrivateKey, *, pkcs8: bool = True) -> bytes:
    fmt = (
        serialization.PrivateFormat.PKCS8
        if pkcs8
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate(
    key: rsa.RSAPrivateKey, serial_hex: str, common_name: str = "test"
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(serial_hex, 16))
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=5 * 365))
        .sign(key, hashes.SHA256())
    )


def encrypt_certificate(cert: x509.Certificate, apiv3_key: bytes, nonce: str) -> dict[str, str]:
    pem = cert.public_bytes(serialization.Encoding.PEM)
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), pem, b"certificate")
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "nonce": nonce,
        "associated_data": "certificate",
        "ciphertext": base64.b64encode(sealed).decode(),
    }


def credentials(mode: str = "public_key") -> MerchantCredentials:
    """`public_key`, `certificates` or `both` (a merchant migrating between the two)."""
    return MerchantCredentials(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        private_key=rsa_key("merchant"),
        wechatpay_public_key=rsa_key("wechatpay").public_key() if mode != "certificates" else None,
        wechatpay_public_key_id=PUB_KEY_ID if mode != "certificates" else None,
        apiv3_key=APIV3_KEY if mode != "public_key" else None,
    )


@dataclass
class Reply:
    """One scripted answer. `raise_` makes the transport fail instead of answering."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sign: bool = True
    serial: str | None = None
    key: str | None = None  # name for rsa_key(); default is the signer for `serial`
    timestamp: int | None = None
    signature: str | None = None
    tamper: bool = False
    tamper_replace: tuple[bytes, bytes] | None = None  # applied after signing
    raise_: Exception | None = None


PLATFORM_SERIAL = "5A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
NEW_PLATFORM_SERIAL = "6B2C3D4E5F60718293A4B5C6D7E8F90123456789"


class FakeWeChatPay:
    """Scripted WeChat Pay: checks request signatures, signs answers, serves /v3/certificates."""

    def __init__(
        self,
        *,
        signer: str = PUB_KEY_ID,
        clock: Callable[[], float] = lambda: NOW,
        platform_serials: tuple[str, ...] = (PLATFORM_SERIAL,),
    ) -> None:
        self.signer = signer
        self.clock = clock
        self.platform_serials = platform_serials
        self.requests: list[httpx.Request] = []
        self.replies: list[Reply] = []
        self.default = Reply(json={"ok": True})
        self.certificate_downloads = 0
        #: When set, /v3/certificates answers this instead of the certificate list.
        self.certificate_reply: Reply | None = None
        self.tamper_certificates: tuple[bytes, bytes] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        problem = self._check_request(request)
        if problem is not None:
            return self._answer(Reply(status=401, json=problem))
        if request.url.path == "/v3/certificates":
            self.certificate_downloads += 1
            return self._answer(self.certificate_reply or self._certificate_list())
        reply = self.replies.pop(0) if self.replies else self.default
        if reply.raise_ is not None:
            raise reply.raise_
        return self._answer(reply)

    def key_for(self, serial: str) -> rsa.RSAPrivateKey:
        return rsa_key("wechatpay" if serial.startswith("PUB_KEY_ID_") else f"platform-{serial}")

    def _certificate_list(self) -> Reply:
        data = [
            {
                "serial_no": serial,
                "effective_time": "2023-01-01T00:00:00+08:00",
                "expire_time": "2028-01-01T00:00:00+08:00",
                "encrypt_certificate": encrypt_certificate(
                    certificate(self.key_for(serial), serial), APIV3_KEY, f"nonce{i:07d}"
                ),
            }
            for i, serial in enumerate(self.platform_serials)
        ]
        return Reply(
            json={"data": data},
            serial=self.platform_serials[-1],
            tamper_replace=self.tamper_certificates,
        )

    def _check_request(self, request: httpx.Request) -> dict[str, Any] | None:
        params = signing.parse_authorization(request.headers.get("Authorization", ""))
        target = request.url.raw_path.decode()
        if params is None:
            return {"code": "SIGN_ERROR", "message": "Authorization missing"}
        message = signing.request_message(
            request.method, target, params["timestamp"], params["nonce_str"], request.content
        )
        if signing.verify(rsa_key("merchant").public_key(), message, params["signature"]):
            return None
        text = message.decode()
        return {
            "code": "SIGN_ERROR",
            "message": "错误的签名,验签失败",
            "detail": {
                "field": "signature",
                "location": "authorization",
                "detail": {"issue": "sign not match"},
                "sign_information": {
                    "method": request.method,
                    "url": target,
                    "sign_message_length": len(message),
                    "truncated_sign_message": text[:60],
                },
            },
        }

    def _answer(self, reply: Reply) -> httpx.Response:
        if reply.body is not None:
            body = reply.body
        elif reply.json is not None:
            body = json.dumps(reply.json, ensure_ascii=False).encode()
        else:
            body = b""
        headers = {"Request-ID": "08F4A3B2C1-REQ", **reply.headers}
        if body:
            headers.setdefault("Content-Type", "application/json")
        if reply.sign:
            serial = reply.serial or self.signer
            timestamp = str(reply.timestamp if reply.timestamp is not None else int(self.clock()))
            nonce = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
            key = rsa_key(reply.key) if reply.key else self.key_for(serial)
            signature = reply.signature or signing.sign(
                key, signing.response_message(timestamp, nonce, body)
            )
            headers.update(
                {
                    "Wechatpay-Timestamp": timestamp,
                    "Wechatpay-Nonce": nonce,
                    "Wechatpay-Signature": signature,
                    "Wechatpay-Serial": serial,
                    "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                }
            )
        if reply.tamper:
            body = body.replace(b"1", b"2") if b"1" in body else body + b" "
        if reply.tamper_replace is not None:
            body = body.replace(*reply.tamper_replace)
        return httpx.Response(reply.status, headers=headers, content=body)


class Sleeps:
    """Records the delays the client asked for instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client_for(
    fake: FakeWeChatPay,
    mode: str = "public_key",
    *,
    sleeps: Sleeps | None = None,
    max_attempts: int = 5,
    **kwargs: Any,
) -> WeChatPayClient:
    """A client on the fake with a fixed clock, no real sleeping and unthrottled pacing."""
    limits = {name: Limit(1_000_000, 1.0, burst=1_000_000) for name in RateLimiter().limits}
    kwargs.setdefault("rate_limiter", RateLimiter(limits, clock=lambda: 0.0, sleep=Sleeps()))
    return WeChatPayClient(
        credentials(mode),
        base_url="https://api.mch.weixin.qq.com",
        transport=fake.transport(),
        clock=fake.clock,
        retry=RetryPolicy(max_attempts=max_attempts),
        sleep=sleeps if sleeps is not None else Sleeps(),
        random=lambda: 0.5,
        **kwargs,
    )
