"""Merchant credentials and their loaders (files and environment variables).

The loaders are the only functions here that touch the outside world: they read a file or an
environment variable whose *name* the caller passes in. `MerchantCredentials` itself is a
plain value whose repr hides every secret.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from reconciler.wechatpay.errors import CredentialError

PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
APIV3_KEY_BYTES = 32

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
_BASE64_ONLY = re.compile(rb"[A-Za-z0-9+/=\s]+")
_MCHID = re.compile(r"[0-9A-Za-z_-]{1,32}")
_HEX = re.compile(r"[0-9A-Fa-f]{1,64}")
_PRIVATE_LABELS = (b"PRIVATE KEY", b"RSA PRIVATE KEY")
_PUBLIC_LABELS = (b"PUBLIC KEY", b"RSA PUBLIC KEY")


@dataclass(frozen=True, repr=False, eq=False)
class MerchantCredentials:
    """Everything needed to sign requests for one merchant and verify WeChat Pay's answers.

    Give `wechatpay_public_key` with its `wechatpay_public_key_id` (public-key mode), or
    `apiv3_key` (platform-certificate mode, certificates are downloaded), or both while a
    merchant migrates from certificates to the public key.
    """

    mchid: str
    serial_no: str
    private_key: rsa.RSAPrivateKey
    wechatpay_public_key: rsa.RSAPublicKey | None = None
    wechatpay_public_key_id: str | None = None
    apiv3_key: bytes | None = field(default=None)

    def __post_init__(self) -> None:
        if not _MCHID.fullmatch(self.mchid):
            raise CredentialError(f"mchid {self.mchid!r} is not a merchant number")
        if not _HEX.fullmatch(self.serial_no):
            raise CredentialError(
                f"serial_no {self.serial_no!r} is not a certificate serial (hexadecimal, from 商户平台 → API安全)"
            )
        # WeChat Pay writes serials in upper case; normalising lets comparisons be exact.
        object.__setattr__(self, "serial_no", self.serial_no.upper())
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise CredentialError("the merchant private key must be an RSA private key")
        has_key = self.wechatpay_public_key is not None
        if has_key != (self.wechatpay_public_key_id is not None):
            raise CredentialError(
                "wechatpay_public_key and wechatpay_public_key_id go together: give both or neither"
            )
        key_id = self.wechatpay_public_key_id
        if key_id is not None and not key_id.startswith(PUBLIC_KEY_ID_PREFIX):
            raise CredentialError(
                f"wechatpay_public_key_id {key_id!r} must start with {PUBLIC_KEY_ID_PREFIX}"
            )
        if self.apiv3_key is not None:
            object.__setattr__(self, "apiv3_key", _check_apiv3_key(self.apiv3_key, "apiv3_key"))
        if not has_key and self.apiv3_key is None:
            raise CredentialError(
                "cannot verify WeChat Pay responses: give the WeChat Pay public key with its"
                " PUB_KEY_ID, or the APIv3 key to download platform certificates"
            )

    @property
    def uses_public_key(self) -> bool:
        return self.wechatpay_public_key is not None

    @property
    def uses_platform_certificates(self) -> bool:
        return self.apiv3_key is not None

    def __repr__(self) -> str:
        return (
            f"MerchantCredentials(mchid={self.mchid!r}, serial_no={self.serial_no!r},"
            f" private_key=<hidden>, wechatpay_public_key_id={self.wechatpay_public_key_id!r},"
            f" apiv3_key={'<hidden>' if self.apiv3_key is not None else None})"
        )

    __str__ = __repr__


def parse_private_key(data: bytes, source: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM text (PKCS#1 or PKCS#8, unencrypted); pure."""
    blocks = {m.group(1): m.group(0) for m in _PEM_BLOCK.finditer(data)}
    if not blocks and _BASE64_ONLY.fullmatch(data.strip() or b"-"):
        # PEM markers stripped by a copy-paste: the Base64 body is still PKCS#8 or PKCS#1 DER.
        try:
            der = base64.b64decode(b"".join(data.split()), validate=True)
        except binascii.Error:
            raise CredentialError(f"{source} is neither PEM text nor a Base64 key") from None
        return _private_key_or_error(lambda: serialization.load_der_private_key(der, None), source)
    pem = next((blocks[label] for label in _PRIVATE_LABELS if label in blocks), None)
    if b"ENCRYPTED PRIVATE KEY" in blocks or (pem is not None and b"Proc-Type:" in pem):
        raise CredentialError(f"{source} holds an encrypted private key: {_DECRYPT_HINT}")
    if pem is None:
        raise CredentialError(f"{source} does not hold a private key: {_describe(blocks)}")
    found = pem
    return _private_key_or_error(lambda: serialization.load_pem_private_key(found, None), source)


def _private_key_or_error(load: Callable[[], PrivateKeyTypes], source: str) -> rsa.RSAPrivateKey:
    try:
        key = load()
    except TypeError as exc:
        raise CredentialError(f"{source} holds an encrypted private key: {_DECRYPT_HINT}") from exc
    except ValueError as exc:
        raise CredentialError(f"{source} holds a private key that cannot be parsed") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialError(f"{source} holds a {type(key).__name__}, WeChat Pay needs RSA")
    return key


def parse_public_key(data: bytes, source: str) -> rsa.RSAPublicKey:
    """The WeChat Pay public key (pub_key.pem, SPKI or PKCS#1 PEM); pure."""
    blocks = {m.group(1): m.group(0) for m in _PEM_BLOCK.finditer(data)}
    pem = next((blocks[label] for label in _PUBLIC_LABELS if label in blocks), None)
    if pem is None:
        raise CredentialError(
            f"{source} does not hold the WeChat Pay public key (pub_key.pem): {_describe(blocks)}"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise CredentialError(f"{source} holds a public key that cannot be parsed") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise CredentialError(f"{source} holds a {type(key).__name__}, WeChat Pay uses RSA")
    return key


def load_private_key(
    *,
    path: str | Path | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> rsa.RSAPrivateKey:
    """The merchant API private key (apiclient_key.pem) from a file or a named env variable."""
    data, source = _read(path, env, environ, "merchant private key")
    return parse_private_key(data, source)


def load_wechatpay_public_key(
    *,
    path: str | Path | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> rsa.RSAPublicKey:
    """The WeChat Pay public key (pub_key.pem) from a file or a named env variable."""
    data, source = _read(path, env, environ, "WeChat Pay public key")
    return parse_public_key(data, source)


def load_apiv3_key(
    *,
    path: str | Path | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The 32-byte APIv3 key from a file or a named env variable (surrounding blanks dropped)."""
    data, source = _read(path, env, environ, "APIv3 key")
    return _check_apiv3_key(data.strip(), source)


def load_certificate(path: str | Path) -> x509.Certificate:
    """The merchant API certificate (apiclient_cert.pem), used to check key and serial."""
    data, source = _read(path, None, None, "merchant certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CredentialError(f"{source} is not a PEM certificate (apiclient_cert.pem)") from exc


def check_certificate(
    private_key: rsa.RSAPrivateKey, certificate: x509.Certificate, serial_no: str
) -> None:
    """Fail unless the certificate carries `serial_no` and the private key's public half."""
    actual = format(certificate.serial_number, "X")
    if not _HEX.fullmatch(serial_no) or int(serial_no, 16) != certificate.serial_number:
        raise CredentialError(
            f"serial_no {serial_no} is not the certificate's serial {actual}: use the serial shown"
            " in 商户平台 → API安全 for this certificate"
        )
    cert_key = certificate.public_key()
    if not isinstance(cert_key, rsa.RSAPublicKey) or (
        cert_key.public_numbers() != private_key.public_key().public_numbers()
    ):
        raise CredentialError(
            f"the private key does not match the merchant certificate {actual}: they come from"
            " different applications, use the apiclient_key.pem issued with this certificate"
        )


def load_merchant_credentials(
    *,
    mchid: str,
    serial_no: str,
    private_key_path: str | Path | None = None,
    private_key_env: str | None = None,
    certificate_path: str | Path | None = None,
    wechatpay_public_key_path: str | Path | None = None,
    wechatpay_public_key_env: str | None = None,
    wechatpay_public_key_id: str | None = None,
    apiv3_key_path: str | Path | None = None,
    apiv3_key_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> MerchantCredentials:
    """Load and cross-check one merchant's credentials; only the named sources are read."""
    private_key = load_private_key(path=private_key_path, env=private_key_env, environ=environ)
    if certificate_path is not None:
        check_certificate(private_key, load_certificate(certificate_path), serial_no)
    public_key = None
    if wechatpay_public_key_path is not None or wechatpay_public_key_env is not None:
        public_key = load_wechatpay_public_key(
            path=wechatpay_public_key_path, env=wechatpay_public_key_env, environ=environ
        )
    apiv3_key = None
    if apiv3_key_path is not None or apiv3_key_env is not None:
        apiv3_key = load_apiv3_key(path=apiv3_key_path, env=apiv3_key_env, environ=environ)
    return MerchantCredentials(
        mchid=mchid,
        serial_no=serial_no,
        private_key=private_key,
        wechatpay_public_key=public_key,
        wechatpay_public_key_id=wechatpay_public_key_id,
        apiv3_key=apiv3_key,
    )


_DECRYPT_HINT = (
    "store it unencrypted (openssl pkey -in <file> -out <new file>) and protect the file instead"
)


def _describe(blocks: Mapping[bytes, bytes]) -> str:
    if not blocks:
        return "it is not PEM text (a .p12 bundle must be converted with openssl first)"
    labels = ", ".join(label.decode() for label in blocks)
    if b"CERTIFICATE" in blocks:
        return f"found {labels}; a certificate was given where a key was expected"
    return f"found {labels} instead"


def _read(
    path: str | Path | None, env: str | None, environ: Mapping[str, str] | None, kind: str
) -> tuple[bytes, str]:
    if (path is None) == (env is None):
        raise CredentialError(
            f"the {kind} needs exactly one source: a file path or an env variable"
        )
    if path is not None:
        try:
            return Path(path).read_bytes(), f"{kind} file {str(path)!r}"
        except OSError as exc:
            raise CredentialError(
                f"cannot read the {kind} file {str(path)!r}: {exc.strerror or exc}"
            ) from None
    assert env is not None
    source = f"environment variable {env} ({kind})"
    value = (os.environ if environ is None else environ).get(env)
    if value is None:
        raise CredentialError(f"environment variable {env} is not set; it should hold the {kind}")
    if not value.strip():
        raise CredentialError(f"environment variable {env} is empty; it should hold the {kind}")
    if "\\n" in value and "\n" not in value:
        # CI systems often store PEM text on one line with literal \n escapes.
        value = value.replace("\\n", "\n")
    return value.encode("utf-8"), source


def _check_apiv3_key(key: bytes | str, source: str) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) != APIV3_KEY_BYTES:
        raise CredentialError(
            f"{source} is {len(raw)} bytes long; the APIv3 key must be exactly {APIV3_KEY_BYTES}"
            " bytes (the 32-character key set in 商户平台 → API安全)"
        )
    return raw
