"""The emulator: one request -> response function over a store that may be persisted."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.emulator import (
    routes_busifavor,
    routes_callbacks,
    routes_codes,
    routes_favor,
    routes_media,
    store,
)
from reconciler.emulator.auth import authenticate, request_target, signed_response
from reconciler.emulator.context import Reply, RequestContext
from reconciler.emulator.failures import ApiFailure, system_error
from reconciler.emulator.faults import FaultDecision, FaultInjector, Faults
from reconciler.emulator.keys import (
    PlatformCertificate,
    SigningIdentity,
    WechatPayKeys,
    certificate_entry,
    generate_certificate,
    generate_keys,
    load_public_key,
    public_key_pem,
)
from reconciler.emulator.ratelimit import RateLimiter
from reconciler.emulator.routing import match
from reconciler.emulator.settings import EmulatorSettings
from reconciler.emulator.store import EmulatedMerchant, MerchantSigning, Store, StoredStock

if TYPE_CHECKING:
    from reconciler.emulator.server import EmulatorServer

HANDLERS = {
    **routes_favor.HANDLERS,
    **routes_busifavor.HANDLERS,
    **routes_media.HANDLERS,
    **routes_codes.HANDLERS,
    **routes_callbacks.HANDLERS,
}
NO_CERTIFICATE = "无可用的平台证书,请在商户平台-API安全申请使用微信支付公钥"
DISCONNECTED = "Server disconnected without sending a response."


@dataclass(frozen=True)
class RequestLogEntry:
    """One request as the emulator saw it. `status` is None when the connection was dropped."""

    method: str
    path: str
    status: int | None
    endpoint: str | None
    mchid: str | None
    fault: str | None
    request_id: str


@dataclass(frozen=True)
class Answer:
    """What to send back: a response, or None to drop the connection, after `delay` seconds."""

    response: httpx.Response | None
    delay: float


class Emulator:
    """A local WeChat Pay for coupon stocks: verifies request signatures, signs every response.

    `clock` is the emulator's time (signature skew, validity rules, rate limits, create times);
    `sleep` is how `handle` waits out injected latency (the HTTP server always really sleeps).
    With `data_path`, keys, merchants, stocks and request numbers are loaded from that JSON file
    and saved after every change, so a restarted emulator continues where it stopped. `keys`
    lets tests share one pre-made key pair; a data file's keys take precedence.
    """

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        clock: Callable[[], float] = time.time,
        data_path: Path | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        keys: WechatPayKeys | None = None,
    ) -> None:
        self.settings = settings if settings is not None else EmulatorSettings()
        self._clock = clock
        self._sleep = sleep
        self._data_path = data_path
        self._lock = threading.RLock()
        self._limiter = RateLimiter()
        self._injector = FaultInjector(self.settings.faults)
        self._log: list[RequestLogEntry] = []
        loaded = None if data_path is None else store.load(data_path)
        if loaded is None:
            self._keys = keys if keys is not None else generate_keys()
            self._store = Store()
        else:
            self._keys, self._store = loaded
        if self.settings.platform_certificates is True:
            self._certificate()
        if loaded is None:
            self._save()

    # --- identity -------------------------------------------------------------------------

    @property
    def keys(self) -> WechatPayKeys:
        return self._keys

    @property
    def wechatpay_public_key_id(self) -> str:
        return self._keys.public_key_id

    @property
    def wechatpay_public_key(self) -> rsa.RSAPublicKey:
        return self._keys.private_key.public_key()

    def wechatpay_public_key_pem(self) -> bytes:
        return public_key_pem(self.wechatpay_public_key)

    @property
    def platform_certificate(self) -> PlatformCertificate | None:
        """The platform certificate, once one exists (see `EmulatorSettings.platform_certificates`)."""
        return self._keys.certificate

    def register_merchant(
        self,
        mchid: str,
        serial_no: str,
        public_key: rsa.RSAPublicKey | bytes,
        apiv3_key: str | None = None,
        *,
        signing: MerchantSigning = "public_key",
        name: str | None = None,
        logo_url: str | None = None,
    ) -> None:
        """Accept requests signed by this merchant (public key object or SPKI PEM bytes).

        With `apiv3_key` the merchant can download the platform certificate; `signing` says
        which key signs answers to its requests that name none in `Wechatpay-Serial`
        (`platform_certificate` needs an APIv3 key). `name` and `logo_url` are what WeChat Pay
        fills into a 商家券 display that gives none (the short name defaults to 测试商户 and the
        mchid's last four digits; no logo by default)."""
        if not mchid or not serial_no:
            raise ValueError("mchid and serial_no must not be empty")
        if apiv3_key is not None and len(apiv3_key.encode()) != 32:
            raise ValueError("the APIv3 key must be 32 bytes")
        if signing == "platform_certificate" and apiv3_key is None:
            raise ValueError("a merchant in certificate mode needs an APIv3 key")
        key = load_public_key(public_key) if isinstance(public_key, bytes) else public_key
        with self._lock:
            earlier = self._store.merchants.get(mchid)
            merchant = EmulatedMerchant(
                mchid, serial_no, key, apiv3_key, signing=signing, name=name, logo_url=logo_url
            )
            if earlier is not None:
                merchant.balance_fen, merchant.locked_fen = earlier.balance_fen, earlier.locked_fen
            self._store.merchants[mchid] = merchant
            self._save()

    def ensure_platform_certificate(self) -> PlatformCertificate:
        """The platform certificate, made (and saved) now if there is none yet."""
        with self._lock:
            return self._certificate()

    def add_sub_merchants(self, provider: str, sub_merchants: Iterable[str]) -> None:
        """Make `provider` a service provider (服务商) authorised for `sub_merchants`: its
        商家券 may belong to them and its 免充值 代金券 may list them as available merchants;
        a sub-merchant cannot create 代金券 itself."""
        with self._lock:
            self._store.sub_merchants.setdefault(provider, set()).update(sub_merchants)
            self._save()

    def sub_merchants(self, provider: str) -> frozenset[str]:
        """The sub-merchants `provider` is authorised for (empty: a direct merchant)."""
        with self._lock:
            return self._store.subs_of(provider)

    def set_balance(self, mchid: str, balance_fen: int | None) -> None:
        """The merchant's balance that 预充值 activations draw from (None: unlimited)."""
        with self._lock:
            self._store.merchants[mchid].balance_fen = balance_fen
            self._save()

    def balance(self, mchid: str) -> tuple[int | None, int]:
        """(balance left, money locked by activations so far) of a merchant, in fen."""
        with self._lock:
            m = self._store.merchants[mchid]
            return m.balance_fen, m.locked_fen

    # --- inspection and control -------------------------------------------------------------

    @property
    def stocks(self) -> dict[str, StoredStock]:
        """A copy of every stock by id; what a test asserts about "what exists remotely"."""
        with self._lock:
            return {sid: s.snapshot() for sid, s in self._store.stocks.items()}

    def insert_stocks(self, build: Callable[[Store], list[StoredStock]]) -> list[StoredStock]:
        """Store stocks made outside any request (`reconciler emulator seed`): `build` makes
        them from the store (allocating their ids); saved once."""
        with self._lock:
            made = build(self._store)
            for stock in made:
                self._store.stocks[stock.stock_id] = stock
            self._save()
            return [s.snapshot() for s in made]

    @property
    def request_log(self) -> list[RequestLogEntry]:
        with self._lock:
            return list(self._log)

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def faults(self) -> Faults:
        return self.settings.faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults; "next N requests" counting and the seeded draws start afresh."""
        with self._lock:
            self.settings.faults = faults
            self._injector = FaultInjector(faults)

    @property
    def faults_remaining(self) -> int | None:
        with self._lock:
            return self._fault_injector().remaining

    # --- serving ----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The app: a request in, a signed response out (or RemoteProtocolError for a drop)."""
        outcome = self.respond(request)
        if outcome.delay > 0:
            self._sleep(outcome.delay)
        if outcome.response is None:
            raise httpx.RemoteProtocolError(DISCONNECTED, request=request)
        return outcome.response

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
        from reconciler.emulator.server import EmulatorServer

        return EmulatorServer(self, host, port)

    def respond(self, request: httpx.Request) -> Answer:
        """Process one request; the caller applies the delay and a drop (server or transport)."""
        body = request.read()
        request_id = secrets.token_hex(16).upper()
        with self._lock:
            now = self._clock()
            endpoint: str | None = None
            mchid: str | None = None
            decision = FaultDecision()
            try:
                mchid = authenticate(
                    request,
                    routes_media.signed_part(request, body),  # the upload signs `meta` only
                    self._store.merchants,
                    now,
                    self.settings.max_clock_skew_seconds,
                ).mchid
                found = match(request.method, request.url.path)
                if found is None:
                    raise ApiFailure(404, "NOT_FOUND", "请求的接口不存在")
                endpoint, params = found
                decision = self._fault_injector().decide(endpoint)
                if decision.before == "drop":
                    self._record(request, None, endpoint, mchid, decision, request_id)
                    return Answer(None, decision.latency_seconds)
                if decision.before == "error_500":
                    raise system_error()
                if decision.before == "rate_limit" or not self._admit(mchid, endpoint, now):
                    raise _rate_limited(endpoint)
                ctx = RequestContext(
                    request, body, mchid, now, params, self._store, self.settings, self._save
                )
                reply = self._route(endpoint, ctx)
            except ApiFailure as failure:
                reply = Reply(failure.status, failure.body())
            if decision.after == "drop":
                self._record(request, None, endpoint, mchid, decision, request_id)
                return Answer(None, decision.latency_seconds)
            if decision.after == "error_500":
                reply = Reply(500, system_error().body())
            response = signed_response(
                reply.status,
                reply.body,
                signer=self._signer(request, mchid),
                timestamp=int(now) + decision.clock_skew_seconds,
                request_id=request_id,
                fault=decision.signature,
            )
            self._record(request, reply.status, endpoint, mchid, decision, request_id)
            return Answer(response, decision.latency_seconds)

    # --- internals --------------------------------------------------------------------------

    def _route(self, endpoint: str, ctx: RequestContext) -> Reply:
        if endpoint == "certificates":
            return self._certificates(ctx)
        return HANDLERS[endpoint](ctx)

    def _certificates(self, ctx: RequestContext) -> Reply:
        """The platform certificate sealed with the caller's APIv3 key (AEAD_AES_256_GCM)."""
        if self.settings.platform_certificates is False:
            raise ApiFailure(404, "RESOURCE_NOT_EXISTS", NO_CERTIFICATE)
        apiv3_key = self._store.merchants[ctx.mchid].apiv3_key
        if apiv3_key is None:
            raise ApiFailure(400, "INVALID_REQUEST", "商户未设置APIv3密钥")
        return Reply(200, {"data": [certificate_entry(self._certificate(), apiv3_key)]})

    def _certificate(self) -> PlatformCertificate:
        if self._keys.certificate is None:
            self._keys = replace(self._keys, certificate=generate_certificate(self._clock()))
            self._save()
        assert self._keys.certificate is not None
        return self._keys.certificate

    def _signer(self, request: httpx.Request, mchid: str | None) -> SigningIdentity:
        mode = self.settings.signing_key
        asked = request.headers.get("Wechatpay-Serial")
        if mode == "by_merchant":
            return self._merchant_signer(asked, mchid)
        if mode == "public_key" or (
            mode == "by_request_serial" and asked == self._keys.public_key_id
        ):
            return self._keys.public_key_identity()
        return self._certificate().identity()

    def _merchant_signer(self, asked: str | None, mchid: str | None) -> SigningIdentity:
        """The key the request names, else the merchant's own mode; the public key for a
        merchant without an APIv3 key (it has no platform certificate) or an unknown caller."""
        merchant = None if mchid is None else self._store.merchants.get(mchid)
        if merchant is None or merchant.apiv3_key is None or asked == self._keys.public_key_id:
            return self._keys.public_key_identity()
        cert = self._keys.certificate
        if asked is not None and cert is not None and asked.upper() == cert.serial_no:
            return cert.identity()
        if merchant.signing == "platform_certificate":
            return self._certificate().identity()
        return self._keys.public_key_identity()

    def _admit(self, mchid: str, endpoint: str, now: float) -> bool:
        if not self.settings.rate_limiting:
            return True
        return self._limiter.admit(
            mchid,
            endpoint,
            self.settings.rate_limits.get(endpoint),
            now,
            across=self.settings.global_rate_limits.get(endpoint),
        )

    def _fault_injector(self) -> FaultInjector:
        # Assigning settings.faults directly works too: a new value restarts the injector.
        if self._injector.faults is not self.settings.faults:
            self._injector = FaultInjector(self.settings.faults)
        return self._injector

    def _record(
        self,
        request: httpx.Request,
        status: int | None,
        endpoint: str | None,
        mchid: str | None,
        decision: FaultDecision,
        request_id: str,
    ) -> None:
        self._log.append(
            RequestLogEntry(
                method=request.method,
                path=request_target(request),
                status=status,
                endpoint=endpoint,
                mchid=mchid,
                fault=decision.label(),
                request_id=request_id,
            )
        )

    def _save(self) -> None:
        if self._data_path is not None:
            store.save_atomically(self._data_path, store.dump(self._keys, self._store))


def _rate_limited(endpoint: str) -> ApiFailure:
    if endpoint.startswith("favor."):
        return ApiFailure(429, "FREQUENCY_LIMIT_EXCEED", "接口限频")
    if endpoint.startswith("busifavor."):
        return ApiFailure(429, "FREQUENCY_LIMITED", "频率限制")
    return ApiFailure(429, "RATELIMIT_EXCEEDED", "请求未受理,请降低频率后重试")
