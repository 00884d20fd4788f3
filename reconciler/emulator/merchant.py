"""A throwaway merchant identity for the emulator (demo mode, tests, benchmarks).

The emulator only needs a merchant's public key; this holds the private side as well and can
sign a request the way the APIv3 rules say, using the shared pure signing primitives.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.emulator.keys import new_rsa_key
from reconciler.wechatpay.signing import authorization, request_message, sign

if TYPE_CHECKING:
    from reconciler.emulator.app import Emulator


@dataclass(frozen=True)
class DemoMerchant:
    mchid: str
    serial_no: str
    private_key: rsa.RSAPrivateKey
    apiv3_key: str

    @classmethod
    def generate(cls, mchid: str = "1900000001") -> DemoMerchant:
        """New key pair, a 40-hex-digit certificate serial and a 32-character APIv3 key."""
        alphabet = string.ascii_letters + string.digits
        return cls(
            mchid=mchid,
            serial_no=secrets.token_hex(20).upper(),
            private_key=new_rsa_key(),
            apiv3_key="".join(secrets.choice(alphabet) for _ in range(32)),
        )

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def register(self, emulator: Emulator) -> None:
        emulator.register_merchant(self.mchid, self.serial_no, self.public_key, self.apiv3_key)

    def sign(self, request: httpx.Request, *, timestamp: int, nonce: str) -> httpx.Request:
        """Set `Authorization` over the request as it will be sent (target and body bytes)."""
        message = request_message(
            request.method, request.url.raw_path.decode("ascii"), timestamp, nonce, request.read()
        )
        request.headers["Authorization"] = authorization(
            self.mchid, self.serial_no, timestamp, nonce, sign(self.private_key, message)
        )
        return request
