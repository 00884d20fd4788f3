"""A throwaway merchant identity for the emulator (demo mode, tests, benchmarks).

The emulator only needs a merchant's public key; this holds the private side as well and can
sign a request the way the APIv3 rules say, using the shared pure signing primitives.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.emulator.keys import new_rsa_key
from reconciler.wechatpay.signing import authorization, request_message, sign

API_BASE = "https://api.mch.weixin.qq.com"

if TYPE_CHECKING:
    from reconciler.emulator.app import Emulator


def generate_apiv3_key() -> str:
    """A new APIv3 key shaped like the ones 商户平台 takes: 32 letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


@dataclass(frozen=True)
class DemoMerchant:
    mchid: str
    serial_no: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    apiv3_key: str = field(repr=False)

    @classmethod
    def generate(cls, mchid: str = "1900000001") -> DemoMerchant:
        """New key pair, a 40-hex-digit certificate serial and a 32-character APIv3 key."""
        return cls(
            mchid=mchid,
            serial_no=secrets.token_hex(20).upper(),
            private_key=new_rsa_key(),
            apiv3_key=generate_apiv3_key(),
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

    def request(
        self,
        method: str,
        target: str,
        *,
        timestamp: int,
        json_body: object = None,
        base_url: str = API_BASE,
        nonce: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """A signed request with the headers the rules require (Accept, User-Agent and, with a
        body, Content-Type); the body is compact UTF-8 JSON. `headers` are added before signing."""
        content = b""
        all_headers = {"Accept": "application/json", "User-Agent": "reconciler-emulator-demo/1"}
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        request = httpx.Request(method, base_url + target, headers=all_headers, content=content)
        return self.sign(request, timestamp=timestamp, nonce=nonce or secrets.token_hex(16).upper())
