"""Verification of WeChat Pay's response signatures.

A 2xx answer is trusted only when `Wechatpay-Timestamp`, `-Nonce`, `-Signature` and `-Serial`
are present, the timestamp is within five minutes of our clock, the serial names a key we
trust and the signature over `timestamp\\nnonce\\nbody\\n` (raw body bytes) verifies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.errors import ApiError
from reconciler.wechatpay import signing
from reconciler.wechatpay.auth import TimeSource
from reconciler.wechatpay.credentials import PUBLIC_KEY_ID_PREFIX, MerchantCredentials
from reconciler.wechatpay.errors import (
    ResponseVerificationError,
    SignatureProbeError,
    request_id_of,
)

KeyLookup = Callable[[str], "rsa.RSAPublicKey | None"]
_HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")


class CertificateSource(Protocol):
    """Platform certificates by serial; `refresh` re-downloads them (see certificates.py)."""

    def get(self, serial: str) -> rsa.RSAPublicKey | None: ...

    def refresh_for(self, serial: str) -> rsa.RSAPublicKey | None: ...

    def serials(self) -> list[str]: ...


@dataclass(frozen=True)
class ResponseOrigin:
    """Where a response came from, for error messages only."""

    method: str = ""
    path: str = ""
    status: int | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, response: httpx.Response) -> ResponseOrigin:
        request = response.request
        return cls(
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            request_id=request_id_of(response.headers),
        )

    def error(self, reason: str, serial: str | None = None) -> ResponseVerificationError:
        return ResponseVerificationError(
            reason,
            method=self.method,
            path=self.path,
            status=self.status,
            serial=serial,
            request_id=self.request_id,
        )


def has_signature(headers: Mapping[str, str]) -> bool:
    """True when all four signature headers are present (httpx headers: any letter case)."""
    return all(headers.get(name) for name in _HEADERS)


def check_signature(
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    lookup: KeyLookup,
    context: ResponseOrigin,
    known: Callable[[], list[str]] = list,
) -> None:
    """Raise unless the headers carry a fresh, valid signature over `body`; pure but for lookup."""
    missing = [name for name in _HEADERS if not headers.get(name)]
    if missing:
        raise context.error(
            f"the signature header(s) {', '.join(missing)} are missing, and a successful"
            " answer without a signature must be treated as forged"
        )
    timestamp, nonce, signature, serial = (headers[name] for name in _HEADERS)
    if signing.is_probe(signature):
        raise SignatureProbeError(
            "nothing is wrong on this side",
            method=context.method,
            path=context.path,
            status=context.status,
            serial=serial,
            request_id=context.request_id,
        )
    # Bounded and ASCII before int(): a hostile header must not reach int()'s digit limit.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise context.error(f"Wechatpay-Timestamp {timestamp[:20]!r} is not Unix seconds", serial)
    skew = abs(now - int(timestamp))
    if skew > signing.MAX_CLOCK_SKEW_SECONDS:
        raise context.error(
            f"Wechatpay-Timestamp {timestamp} is {skew:.0f} s away from this machine's clock"
            f" (limit {signing.MAX_CLOCK_SKEW_SECONDS} s): a replayed answer, or a wrong clock here",
            serial,
        )
    key = lookup(serial)
    if key is None:
        trusted = ", ".join(known()) or "none"
        raise context.error(
            f"Wechatpay-Serial {serial[:64]} is not a key we trust (trusted: {trusted})"
            + _serial_hint(serial),
            serial,
        )
    if not signing.verify(key, signing.response_message(timestamp, nonce, body), signature):
        raise context.error(
            f"the signature does not match the body for key {serial}, so the body was altered"
            " or not signed by WeChat Pay",
            serial,
        )


class ResponseVerifier:
    """Picks the key by `Wechatpay-Serial` in public-key mode, certificate mode, or both."""

    def __init__(
        self,
        credentials: MerchantCredentials,
        *,
        clock: TimeSource,
        certificates: CertificateSource | None = None,
    ) -> None:
        if credentials.uses_platform_certificates and certificates is None:
            raise ValueError("platform-certificate mode needs a certificate source")
        self._public_key = credentials.wechatpay_public_key
        self._public_key_id = credentials.wechatpay_public_key_id
        self._certificates = certificates
        self._clock = clock

    def verify(self, response: httpx.Response) -> None:
        """Raise `ResponseVerificationError` unless the response is validly signed.

        In certificate mode an unknown serial triggers one certificate download (per call).
        """
        check_signature(
            response.headers,
            response.content,
            now=self._clock(),
            lookup=lambda serial: self._key(serial, refresh=True),
            context=ResponseOrigin.of(response),
            known=self._trusted,
        )

    def check_optional(self, response: httpx.Response) -> bool | None:
        """For non-2xx answers: True/False when signed with a key we can get, else None.

        A new platform serial may trigger the one certificate download of this call; if
        that download fails the answer simply stays unchecked.
        """
        if not has_signature(response.headers):
            return None
        try:
            key = self._key(response.headers["Wechatpay-Serial"], refresh=True)
        except ApiError:
            return None
        if key is None:
            return None
        try:
            check_signature(
                response.headers,
                response.content,
                now=self._clock(),
                lookup=lambda _: key,
                context=ResponseOrigin.of(response),
            )
        except ResponseVerificationError:
            return False
        return True

    def _key(self, serial: str, *, refresh: bool) -> rsa.RSAPublicKey | None:
        if self._public_key is not None and serial == self._public_key_id:
            return self._public_key
        if self._certificates is None or serial.startswith(PUBLIC_KEY_ID_PREFIX):
            # Downloading certificates cannot teach us a public key id.
            return None
        if refresh:
            return self._certificates.refresh_for(serial)
        return self._certificates.get(serial)

    def _trusted(self) -> list[str]:
        trusted = [self._public_key_id] if self._public_key_id else []
        if self._certificates is not None:
            trusted.extend(self._certificates.serials())
        return trusted


def _serial_hint(serial: str) -> str:
    if serial.startswith(PUBLIC_KEY_ID_PREFIX):
        return (
            "; this merchant's answers are signed with a WeChat Pay public key: configure"
            " pub_key.pem with this PUB_KEY_ID"
        )
    return ""
