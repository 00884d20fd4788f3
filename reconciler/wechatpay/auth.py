"""`httpx.Auth` that signs the exact request httpx sends (APIv3 `WECHATPAY2-SHA256-RSA2048`).

The signature covers `request.url.raw_path` and `request.content`, i.e. the target and bytes
that go on the wire, so no re-encoding or re-serialising can make them disagree. The clock
and the nonce source are injected; only their defaults reach for the real time and `secrets`.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from reconciler import __version__
from reconciler.wechatpay import signing
from reconciler.wechatpay.credentials import MerchantCredentials

TimeSource = Callable[[], float]
NonceSource = Callable[[], str]

USER_AGENT = f"reconciler/{__version__} (+python httpx)"
JSON = "application/json"
SIGNED_BODY = "wechatpay_signed_body"
"""Request extension: the bytes to sign in place of the body (the image upload's `meta`)."""
NONCE_LENGTH = 32
_NONCE_ALPHABET = string.digits + string.ascii_letters
_NONCE = re.compile(r"[0-9A-Za-z]{1,64}")


def random_nonce() -> str:
    """32 characters from [0-9A-Za-z] drawn with a CSPRNG, as the official SDKs do."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(NONCE_LENGTH))


def json_body(body: Mapping[str, Any]) -> bytes:
    """Serialise a request body once: compact, UTF-8, non-ASCII kept as is.

    These bytes are both signed and sent; nothing downstream may serialise the body again.
    """
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class WeChatPayAuth(httpx.Auth):
    """Signs each request with the merchant key and sets the headers APIv3 requires.

    Thread-safe: it holds no per-request state, so one instance can serve a shared client.
    A retried request passes through here again and gets a fresh timestamp and nonce, while
    its body bytes stay the same.
    """

    def __init__(
        self,
        credentials: MerchantCredentials,
        *,
        clock: TimeSource = time.time,
        nonce_source: NonceSource = random_nonce,
    ) -> None:
        self._credentials = credentials
        self._clock = clock
        self._nonce_source = nonce_source

    def __repr__(self) -> str:
        return f"WeChatPayAuth(mchid={self._credentials.mchid!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Set Authorization and the protocol headers on `request`, in place."""
        creds = self._credentials
        headers = request.headers
        headers["Accept"] = JSON
        headers["User-Agent"] = USER_AGENT
        body = request.content
        if body and "Content-Type" not in headers:
            headers["Content-Type"] = JSON
        if creds.wechatpay_public_key_id is not None:
            # Tells WeChat Pay which key we verify with; during a migration it makes the
            # server sign its answer with the public key rather than a platform certificate.
            headers["Wechatpay-Serial"] = creds.wechatpay_public_key_id
        body = signed_body(request)
        timestamp = int(self._clock())
        nonce = self._nonce_source()
        if not _NONCE.fullmatch(nonce):
            raise ValueError("the nonce source must return 1-64 characters from [0-9A-Za-z]")
        target = request.url.raw_path.decode("ascii")
        message = signing.request_message(request.method, target, timestamp, nonce, body)
        signature = signing.sign(creds.private_key, message)
        headers["Authorization"] = signing.authorization(
            creds.mchid, creds.serial_no, timestamp, nonce, signature
        )


def signed_message(request: httpx.Request) -> bytes | None:
    """Rebuild the message a sent request was signed over, from the request itself.

    Used to explain a 401 SIGN_ERROR next to the server's `sign_information`; it needs
    nothing secret, only the timestamp and nonce carried in the Authorization header.
    """
    params = signing.parse_authorization(request.headers.get("Authorization", ""))
    if params is None:
        return None
    target = request.url.raw_path.decode("ascii")
    return signing.request_message(
        request.method, target, params["timestamp"], params["nonce_str"], signed_body(request)
    )


def signed_body(request: httpx.Request) -> bytes:
    """What the signature covers: the body, or for a multipart upload its `meta` JSON only."""
    meta = request.extensions.get(SIGNED_BODY)
    return bytes(meta) if meta is not None else request.content
