"""APIv3 signatures, pure: message builders, RSA-SHA256 sign/verify, the Authorization header.

Nothing here reads the clock or draws random numbers; the timestamp and nonce come in as
arguments so that a fixed key, timestamp and nonce always give the same header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCHEME = "WECHATPAY2-SHA256-RSA2048"
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
MAX_CLOCK_SKEW_SECONDS = 300

_AUTH_PARAM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


def request_message(
    method: str, target: str, timestamp: int | str, nonce: str, body: bytes
) -> bytes:
    """The five-line request message: method, path with query as sent, seconds, nonce, body.

    `target` is the request target exactly as it goes on the wire (httpx's `url.raw_path`),
    `body` the exact bytes sent (empty for GET); every line ends in a newline, the last too.
    """
    head = f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n".encode("ascii")
    return head + body + b"\n"


def upload_meta(filename: str, content: bytes) -> bytes:
    """The `meta` part of a marketing image upload, and exactly what its signature covers
    (the request message's body line): compact JSON `{"filename": ..., "sha256": ...}` with
    the file's SHA-256 as lower-case hex (not Base64: that is a documented SIGN_ERROR)."""
    meta = {"filename": filename, "sha256": hashlib.sha256(content).hexdigest()}
    return json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The three-line response message: `Wechatpay-Timestamp`, `Wechatpay-Nonce`, raw body."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """RSASSA-PKCS1-v1_5 over SHA-256, standard Base64 (deterministic for a given key)."""
    raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def is_probe(signature: str) -> bool:
    """True for WeChat Pay's deliberate signature probes (`WECHATPAY/SIGNTEST/...`)."""
    return signature.startswith(SIGNTEST_PREFIX)


def verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """True only for a valid signature; a probe, bad Base64 or a mismatch is simply False."""
    if is_probe(signature):
        return False
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    try:
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def authorization(
    mchid: str, serial_no: str, timestamp: int | str, nonce: str, signature: str
) -> str:
    """The `Authorization` header value (parameter order is free; this one is fixed)."""
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def parse_authorization(value: str) -> dict[str, str] | None:
    """Split an Authorization header into its parameters; None when it is not our scheme."""
    scheme, _, rest = value.partition(" ")
    if scheme != SCHEME or not rest:
        return None
    params: dict[str, str] = {}
    for part in rest.split(","):
        m = _AUTH_PARAM.fullmatch(part)
        if m is None:
            return None
        params[m.group(1)] = m.group(2)
    required = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    return params if required <= params.keys() else None
