"""The emulator's own WeChat Pay keys: the public key pair (PUB_KEY_ID) and a platform certificate.

These are the emulator's keys, not a user's secrets, and they are persisted in its data file so a
restarted emulator keeps its identity; they still never go to a log line.
"""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from reconciler.emulator.timefmt import format_time

CERTIFICATE_YEARS = 5
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class SigningIdentity:
    """A key WeChat Pay signs with, and the serial it announces in `Wechatpay-Serial`."""

    serial: str
    private_key: rsa.RSAPrivateKey


@dataclass(frozen=True)
class PlatformCertificate:
    serial_no: str
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def identity(self) -> SigningIdentity:
        return SigningIdentity(self.serial_no, self.private_key)


@dataclass(frozen=True)
class WechatPayKeys:
    public_key_id: str
    private_key: rsa.RSAPrivateKey
    certificate: PlatformCertificate | None = None

    def public_key_identity(self) -> SigningIdentity:
        return SigningIdentity(self.public_key_id, self.private_key)


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def generate_keys() -> WechatPayKeys:
    """A fresh public key pair with an id shaped like the real ones (`PUB_KEY_ID_0114...`)."""
    digits = "".join(secrets.choice(string.digits) for _ in range(28))
    return WechatPayKeys(public_key_id=f"PUB_KEY_ID_0114{digits}", private_key=new_rsa_key())


def generate_certificate(now: float) -> PlatformCertificate:
    """A self-signed platform certificate valid for five years from `now`."""
    key = new_rsa_key()
    # 40 upper-case hex digits like the real serials: a value in [2**156, 2**159).
    serial = (1 << 156) | secrets.randbits(156) | (secrets.randbits(2) << 157)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reconciler emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "WeChat Pay emulator platform certificate"),
        ]
    )
    begin = datetime.fromtimestamp(int(now), UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(begin)
        .not_valid_after(begin + timedelta(days=365 * CERTIFICATE_YEARS))
        .sign(key, hashes.SHA256())
    )
    return PlatformCertificate(f"{serial:X}", key, cert)


def certificate_entry(cert: PlatformCertificate, apiv3_key: str) -> dict[str, Any]:
    """One `data[]` item of `GET /v3/certificates`, the PEM sealed with AES-256-GCM."""
    nonce = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(12))
    associated = "certificate"
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), cert.pem(), associated.encode())
    return {
        "serial_no": cert.serial_no,
        "effective_time": format_time(cert.certificate.not_valid_before_utc.timestamp()),
        "expire_time": format_time(cert.certificate.not_valid_after_utc.timestamp()),
        "encrypt_certificate": {
            "algorithm": "AEAD_AES_256_GCM",
            "nonce": nonce,
            "associated_data": associated,
            "ciphertext": base64.b64encode(sealed).decode("ascii"),
        },
    }


def public_key_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _load_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def keys_to_data(keys: WechatPayKeys) -> dict[str, Any]:
    cert = keys.certificate
    return {
        "public_key_id": keys.public_key_id,
        "private_key": _private_pem(keys.private_key),
        "certificate": None
        if cert is None
        else {
            "serial_no": cert.serial_no,
            "private_key": _private_pem(cert.private_key),
            "certificate": cert.pem().decode("ascii"),
        },
    }


def keys_from_data(data: dict[str, Any]) -> WechatPayKeys:
    cert_data = data.get("certificate")
    cert = None
    if cert_data is not None:
        cert = PlatformCertificate(
            serial_no=cert_data["serial_no"],
            private_key=_load_private(cert_data["private_key"]),
            certificate=x509.load_pem_x509_certificate(cert_data["certificate"].encode("ascii")),
        )
    return WechatPayKeys(
        public_key_id=data["public_key_id"],
        private_key=_load_private(data["private_key"]),
        certificate=cert,
    )
