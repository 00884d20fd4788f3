"""One merchant's signed HTTP session: pacing, bounded concurrency, retries, verification.

Each attempt takes a rate-limit token, then a concurrency slot only for the network exchange
itself; backoff sleeps and response verification (which may download certificates) happen
outside the slot, so a slot is never held while waiting and never needed twice by one thread.

An optional cancel event stops every wait the moment it is set (token, slot, back-off) and is
checked once more, holding the slot, just before the request is sent; a request already being
sent always finishes and its answer is used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from reconciler.errors import ApiError
from reconciler.wechatpay.auth import (
    SIGNED_BODY,
    NonceSource,
    TimeSource,
    WeChatPayAuth,
    signed_message,
)
from reconciler.wechatpay.cancel import Cancelled, pause, take_slot
from reconciler.wechatpay.certificates import CERTIFICATES_PATH, PlatformCertificates
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.errors import (
    ApiResponseError,
    CertificateUnavailableError,
    RequestCancelled,
    ResponseVerificationError,
    TransportError,
    request_id_of,
)
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.retry import (
    RetryPolicy,
    classify,
    is_retryable_status,
    retry_after_seconds,
)
from reconciler.wechatpay.verify import ResponseVerifier

log = logging.getLogger("reconciler.wechatpay")
# WeChat Pay's server keeps idle connections 8 s (per the Java SDK); close ours before that.
_KEEPALIVE_SECONDS = 7.0


@dataclass(frozen=True)
class Call:
    """One API call: rate-limit key, method, target (path and encoded query), body bytes."""

    endpoint: str
    method: str
    target: str
    body: bytes | None = None
    content_type: str | None = None
    """Set for a body that is not JSON (the multipart image upload)."""
    signed_body: bytes | None = None
    """What the signature covers when it is not the body (the upload's `meta` JSON)."""


class Session:
    """Sends `Call`s for one merchant and returns verified 2xx responses, or raises."""

    def __init__(
        self,
        credentials: MerchantCredentials,
        *,
        base_url: str,
        transport: httpx.BaseTransport | None,
        clock: TimeSource,
        nonce_source: NonceSource,
        rate_limiter: RateLimiter,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        random: Callable[[], float],
        max_concurrency: int,
        timeout: httpx.Timeout,
        certificate_max_age: float,
        cancel: threading.Event | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._mchid = credentials.mchid
        self._limiter = rate_limiter
        self._retry = retry
        self._sleep = sleep
        self._cancel = cancel
        self._random = random
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            auth=WeChatPayAuth(credentials, clock=clock, nonce_source=nonce_source),
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_concurrency,
                max_keepalive_connections=max_concurrency,
                keepalive_expiry=_KEEPALIVE_SECONDS,
            ),
            # A compressed answer would leave open which bytes WeChat Pay signed.
            headers={"Accept-Encoding": "identity"},
            # Proxies and CA bundles come from the caller, not from ambient variables.
            trust_env=False,
        )
        self._certificates: PlatformCertificates | None = None
        if credentials.apiv3_key is not None:
            self._certificates = PlatformCertificates(
                credentials.apiv3_key,
                # Not cancellable: after a cancel, a download is only needed to check the
                # answer to a request that was on the wire, and that answer must be kept.
                lambda: self.send(
                    Call("certificates", "GET", CERTIFICATES_PATH),
                    store_verifies=True,
                    cancellable=False,
                ),
                clock=clock,
                max_age_seconds=certificate_max_age,
            )
        self._verifier = ResponseVerifier(credentials, clock=clock, certificates=self._certificates)

    def close(self) -> None:
        self._http.close()

    def refresh_certificates(self) -> None:
        if self._certificates is None:
            raise ValueError("this merchant has no APIv3 key, so it uses no platform certificates")
        if self._cancel is not None and self._cancel.is_set():
            raise RequestCancelled(
                method="GET",
                path=CERTIFICATES_PATH,
                sent=False,
                attempts=0,
                waiting="before the certificate download",
            )
        self._certificates.refresh()

    def send(
        self, call: Call, *, store_verifies: bool = False, cancellable: bool = True
    ) -> httpx.Response:
        """The verified 2xx response to `call`, after retries; errors as `ApiError`s.

        `store_verifies` is only for the certificate download: its signature can only be
        checked with the certificates inside it, so the certificate store checks it. Once the
        cancel event is set (and `cancellable`), no further attempt is sent: `RequestCancelled`.
        """
        verify = not store_verifies
        cancel = self._cancel if cancellable else None
        reached = False  # whether any attempt may have reached WeChat Pay
        attempt = 0
        retry: tuple[str, float | None] | None = None  # why the last attempt is repeated
        while True:
            attempt += 1
            request = self._http.build_request(
                call.method,
                call.target,
                content=call.body,
                headers={"Content-Type": call.content_type} if call.content_type else None,
                extensions={SIGNED_BODY: call.signed_body}
                if call.signed_body is not None
                else None,
            )
            try:
                if retry is not None:
                    self._backoff(call, attempt - 1, *retry, cancel)
                response = self._exchange(call, request, cancel)
            except _NotSent as stop:
                raise RequestCancelled(
                    method=call.method,
                    path=request.url.path,
                    sent=reached,
                    attempts=attempt - 1,
                    waiting=stop.waiting,
                ) from None
            except httpx.RequestError as exc:
                failure = classify(exc)
                reached = reached or failure.sent
                if failure.retryable and attempt < self._retry.max_attempts:
                    retry = (failure.reason, None)
                    continue
                raise TransportError(
                    method=call.method,
                    path=request.url.path,
                    reason=failure.reason,
                    attempts=attempt,
                    sent=reached,
                ) from exc
            reached = True
            status = response.status_code
            if status == 429:
                self._limiter.note_throttled(self._mchid, call.endpoint)
            if 200 <= status < 300 and verify:
                self._verify(response)
            if 200 <= status < 300 and status != 202:
                return response
            if is_retryable_status(status) and attempt < self._retry.max_attempts:
                retry = (f"HTTP {status}", retry_after_seconds(response.headers))
                continue
            raise ApiResponseError.parse(
                status=status,
                method=call.method,
                path=request.url.path,
                headers=response.headers,
                body=response.content,
                attempts=attempt,
                signature_verified=True
                if status == 202 and verify
                else self._verifier.check_optional(response),
                client_sign_message=signed_message(response.request) if status == 401 else None,
            )

    def _exchange(
        self, call: Call, request: httpx.Request, cancel: threading.Event | None
    ) -> httpx.Response:
        """One attempt: a rate-limit token, a slot, then the network; `_NotSent` if cancelled."""
        try:
            self._limiter.acquire(self._mchid, call.endpoint, cancel=cancel)
        except Cancelled:
            raise _NotSent("while waiting for a rate-limit token") from None
        try:
            take_slot(self._slots, cancel)
        except Cancelled:
            self._limiter.give_back(self._mchid, call.endpoint)
            raise _NotSent("while waiting for a concurrency slot") from None
        # Past this point the request is on its way: it finishes whatever the event says.
        try:
            return self._http.send(request)
        finally:
            self._slots.release()

    def _verify(self, response: httpx.Response) -> None:
        try:
            self._verifier.verify(response)
        except ResponseVerificationError:
            raise
        except ApiError as exc:
            raise CertificateUnavailableError(
                f"downloading the platform certificates failed: {exc}",
                method=response.request.method,
                path=response.request.url.path,
                status=response.status_code,
                serial=response.headers.get("Wechatpay-Serial"),
                request_id=request_id_of(response.headers),
            ) from exc

    def _backoff(
        self,
        call: Call,
        attempt: int,
        reason: str,
        retry_after: float | None,
        cancel: threading.Event | None,
    ) -> None:
        delay = self._retry.delay(attempt, self._random(), retry_after)
        log.info(
            "%s %s: %s on attempt %d of %d, retrying in %.2f s",
            call.method,
            call.target.partition("?")[0],
            reason,
            attempt,
            self._retry.max_attempts,
            delay,
        )
        try:
            pause(delay, self._sleep, cancel)
        except Cancelled:
            raise _NotSent(f"in the back-off after attempt {attempt}: {reason}") from None


class _NotSent(Exception):
    """An attempt was cancelled before its request went on the wire; `waiting` says where."""

    def __init__(self, waiting: str) -> None:
        super().__init__(waiting)
        self.waiting = waiting
