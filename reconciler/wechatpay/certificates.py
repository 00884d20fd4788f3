"""Platform certificates (平台证书): download, decrypt with the APIv3 key, keep by serial.

Trust comes from the AES-256-GCM step: only WeChat Pay and the merchant know the APIv3 key,
so a certificate that decrypts and authenticates was put there by WeChat Pay. That is why the
first download may be verified with the certificates it carries (nothing else is known yet).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Mapping

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.errors import ApiError
from reconciler.wechatpay.auth import TimeSource
from reconciler.wechatpay.errors import CredentialError, UnexpectedResponseError, request_id_of
from reconciler.wechatpay.verify import ResponseOrigin, check_signature

CERTIFICATES_PATH = "/v3/certificates"
ALGORITHM = "AEAD_AES_256_GCM"
# WeChat Pay adds a new certificate 24 h before switching and advises polling under 12 h.
DEFAULT_MAX_AGE_SECONDS = 12 * 3600.0

log = logging.getLogger(__name__)


def decrypt_certificate(apiv3_key: bytes, encrypted: Mapping[str, object]) -> x509.Certificate:
    """Decrypt one `encrypt_certificate` object (ciphertext ends with the 16-byte GCM tag)."""
    algorithm = encrypted.get("algorithm")
    if algorithm != ALGORITHM:
        raise ValueError(f"unsupported certificate encryption {algorithm!r}")
    nonce, aad, ciphertext = (encrypted.get(k) for k in ("nonce", "associated_data", "ciphertext"))
    if not isinstance(nonce, str) or not isinstance(ciphertext, str):
        raise ValueError("encrypt_certificate lacks nonce or ciphertext")
    associated = aad.encode() if isinstance(aad, str) and aad else None
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except binascii.Error as exc:
        raise ValueError("certificate ciphertext is not Base64") from exc
    plain = AESGCM(apiv3_key).decrypt(nonce.encode(), raw, associated)
    return x509.load_pem_x509_certificate(plain)


def parse_certificate_list(apiv3_key: bytes, body: bytes) -> dict[str, rsa.RSAPublicKey]:
    """`{"data": [{serial_no, encrypt_certificate}, ...]}` to RSA public keys by serial; pure."""
    try:
        data = json.loads(body)["data"]
        entries = [(str(e["serial_no"]).upper(), e["encrypt_certificate"]) for e in data]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            "the certificate list is not {data: [{serial_no, encrypt_certificate}]}"
        ) from exc
    keys: dict[str, rsa.RSAPublicKey] = {}
    for serial, encrypted in entries:
        if not isinstance(encrypted, Mapping):
            raise ValueError(f"certificate {serial} has no encrypt_certificate object")
        try:
            certificate = decrypt_certificate(apiv3_key, encrypted)
        except InvalidTag:
            raise CredentialError(
                f"platform certificate {serial} does not decrypt with the APIv3 key: the key is"
                " wrong (check or reset it in 商户平台 → API安全) or the answer was tampered with"
            ) from None
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"platform certificate {serial} does not hold an RSA key")
        keys[serial] = key
    return keys


class PlatformCertificates:
    """Thread-safe store of platform certificate keys, refreshed on demand and by age.

    `fetch` performs the signed GET /v3/certificates (with the client's retries) and returns
    the raw 2xx response; this store verifies and decrypts it.
    """

    def __init__(
        self,
        apiv3_key: bytes,
        fetch: Callable[[], httpx.Response],
        *,
        clock: TimeSource,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        self._apiv3_key = apiv3_key
        self._fetch = fetch
        self._clock = clock
        self._max_age = max_age_seconds
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._generation = 0
        self._state = threading.Lock()
        # Serialises downloads so that many threads meeting a new serial download it once.
        # Re-entrant, with a depth count, so that checking the download's own answer can
        # never start a second download from inside the first.
        self._download = threading.RLock()
        self._downloading = 0

    def __repr__(self) -> str:
        return f"PlatformCertificates(serials={self.serials()!r})"

    def serials(self) -> list[str]:
        with self._state:
            return sorted(self._keys)

    def get(self, serial: str) -> rsa.RSAPublicKey | None:
        with self._state:
            return self._keys.get(serial.upper())

    def refresh_for(self, serial: str) -> rsa.RSAPublicKey | None:
        """The key for `serial`, downloading the list at most once if unknown or too old."""
        serial = serial.upper()
        with self._state:
            key = self._keys.get(serial)
            fresh = self._fetched_at is not None and (
                self._clock() - self._fetched_at <= self._max_age
            )
            seen = self._generation
        if key is not None and fresh:
            return key
        with self._download:
            with self._state:
                if self._generation != seen or self._downloading:
                    return self._keys.get(serial)
            try:
                self.refresh()
            except ApiError:
                if key is None:
                    raise
                # A failed age-based refresh must not stop us using a key we already trust.
                log.warning("platform certificate refresh failed; keeping serial %s", serial)
                return key
        return self.get(serial)

    def refresh(self) -> None:
        """Download, verify and decrypt the certificate list, replacing the known keys."""
        with self._download:
            self._downloading += 1
            try:
                self._refresh()
            finally:
                self._downloading -= 1

    def _refresh(self) -> None:
        response = self._fetch()
        context = ResponseOrigin.of(response)
        try:
            fetched = parse_certificate_list(self._apiv3_key, response.content)
        except ValueError as exc:
            raise UnexpectedResponseError(
                method="GET",
                path=CERTIFICATES_PATH,
                problem=str(exc),
                request_id=request_id_of(response.headers),
            ) from exc
        with self._state:
            trusted = {**fetched, **self._keys}
        check_signature(
            response.headers,
            response.content,
            now=self._clock(),
            lookup=lambda s: trusted.get(s.upper()),
            context=context,
            known=lambda: sorted(trusted),
        )
        with self._state:
            self._keys = fetched
            self._fetched_at = self._clock()
            self._generation += 1
        log.info("platform certificates loaded: %s", ", ".join(sorted(fetched)))
