"""The WeChat Pay APIv3 client for coupon stocks: typed calls over a signed, verified session.

One client serves one merchant: create one per merchant (they may share a `RateLimiter`,
whose buckets are keyed by merchant and endpoint). The client is synchronous and thread-safe;
run calls from a thread pool for concurrency, bounded by `max_concurrency`.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.operation import CreateResult
from reconciler.wechatpay import signing
from reconciler.wechatpay.auth import NonceSource, TimeSource, json_body, random_nonce
from reconciler.wechatpay.certificates import DEFAULT_MAX_AGE_SECONDS
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.errors import UnexpectedResponseError, request_id_of
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.retry import RetryPolicy
from reconciler.wechatpay.session import Call, Session

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
_FAVOR = "/v3/marketing/favor"
_BUSIFAVOR = "/v3/marketing/busifavor"


class WeChatPayClient:
    """Typed calls for 代金券 (favor) and 商家券 (busifavor) stocks, returning plain dicts.

    Every request is signed (see `WeChatPayAuth`), paced per (mchid, endpoint), retried on
    429/5xx/202 and network failures with the same body bytes, and every 2xx answer is
    verified before its body is used. `transport` replaces the network (tests, emulator);
    `clock`, `nonce_source`, `sleep` and `random` are injectable for the same reason.

    `cancel` (Ctrl-C, SIGTERM) stops the client from sending anything new: once it is set, a
    call still waiting for a rate-limit token, a concurrency slot or a retry back-off raises
    `RequestCancelled` at once, and its `sent` says whether an earlier attempt may have taken
    effect. A request already on the wire is never aborted; its answer is returned as usual
    (downloading the platform certificates if checking it needs them). An injected `sleep` is
    not interrupted: the event is looked at before and after it.
    """

    def __init__(
        self,
        credentials: MerchantCredentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        clock: TimeSource = time.time,
        nonce_source: NonceSource = random_nonce,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = random.random,
        max_concurrency: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        certificate_max_age: float = DEFAULT_MAX_AGE_SECONDS,
        cancel: threading.Event | None = None,
    ) -> None:
        self.mchid = credentials.mchid
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter()
        """The pacing this client waits on (shared between merchants' clients by default)."""
        self._session = Session(
            credentials,
            base_url=base_url,
            transport=transport,
            clock=clock,
            nonce_source=nonce_source,
            rate_limiter=self.rate_limiter,
            retry=retry if retry is not None else RetryPolicy(),
            sleep=sleep,
            random=random,
            max_concurrency=max_concurrency,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            certificate_max_age=certificate_max_age,
            cancel=cancel,
        )

    def __repr__(self) -> str:
        return f"WeChatPayClient(mchid={self.mchid!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> WeChatPayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh_certificates(self) -> None:
        """Download the platform certificates now (certificate mode only); cancellable."""
        self._session.refresh_certificates()

    # 代金券 favor

    def favor_create(self, body: Mapping[str, Any]) -> CreateResult:
        """POST /v3/marketing/favor/coupon-stocks (60/min per merchant)."""
        return self._create("favor_create", f"{_FAVOR}/coupon-stocks", body)

    def favor_detail(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        """GET /v3/marketing/favor/stocks/{stock_id}?stock_creator_mchid=..."""
        target = f"{_FAVOR}/stocks/{_segment(stock_id)}" + _query(
            stock_creator_mchid=stock_creator_mchid
        )
        return self._object(Call("favor_detail", "GET", target))

    def favor_list(
        self,
        stock_creator_mchid: str,
        offset: int,
        limit: int,
        create_start_time: str | datetime | None = None,
        create_end_time: str | datetime | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """GET /v3/marketing/favor/stocks with filters; values are percent-encoded once."""
        target = f"{_FAVOR}/stocks" + _query(
            offset=offset,
            limit=limit,
            stock_creator_mchid=stock_creator_mchid,
            create_start_time=create_start_time,
            create_end_time=create_end_time,
            status=status,
        )
        return self._object(Call("favor_list", "GET", target))

    def favor_start(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        """POST .../stocks/{stock_id}/start (activate); answers {start_time, stock_id}."""
        return self._favor_state("start", stock_id, stock_creator_mchid)

    def favor_pause(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        """POST .../stocks/{stock_id}/pause; answers {pause_time, stock_id}."""
        return self._favor_state("pause", stock_id, stock_creator_mchid)

    def favor_restart(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        """POST .../stocks/{stock_id}/restart; answers {restart_time, stock_id}."""
        return self._favor_state("restart", stock_id, stock_creator_mchid)

    def favor_stop(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        """POST .../stocks/{stock_id}/stop (never-activated stocks only); answers
        {stop_time, stock_id}."""
        return self._favor_state("stop", stock_id, stock_creator_mchid)

    def favor_modify_goods_id(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST .../stocks/{stock_id}/modify-goods-id (documented 2026-01-13): the body is
        {stock_creator_mchid, add_goods_id_list, delete_goods_id_list}, lists as "a,b"."""
        target = f"{_FAVOR}/stocks/{_segment(stock_id)}/modify-goods-id"
        call = Call("favor_modify_goods_id", "POST", target, json_body(body))
        response = self._session.send(call)
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def favor_items(
        self, stock_id: str, stock_creator_mchid: str, offset: int, limit: int
    ) -> dict[str, Any]:
        """GET .../stocks/{stock_id}/items: {total_count, data: [goods id...], offset, limit}."""
        target = f"{_FAVOR}/stocks/{_segment(stock_id)}/items" + _query(
            offset=offset, limit=limit, stock_creator_mchid=stock_creator_mchid
        )
        return self._object(Call("favor_items", "GET", target))

    def favor_merchants(
        self, stock_id: str, stock_creator_mchid: str, offset: int, limit: int
    ) -> dict[str, Any]:
        """GET .../stocks/{stock_id}/merchants: {total_count, data: [mchid...], offset, limit}
        (1000/min; limit at most 50)."""
        target = f"{_FAVOR}/stocks/{_segment(stock_id)}/merchants" + _query(
            offset=offset, limit=limit, stock_creator_mchid=stock_creator_mchid
        )
        return self._object(Call("favor_merchants", "GET", target))

    # 商家券 busifavor

    def busifavor_create(self, body: Mapping[str, Any]) -> CreateResult:
        """POST /v3/marketing/busifavor/stocks (1000/min)."""
        return self._create("busifavor_create", f"{_BUSIFAVOR}/stocks", body)

    def busifavor_detail(self, stock_id: str) -> dict[str, Any]:
        """GET /v3/marketing/busifavor/stocks/{stock_id}."""
        target = f"{_BUSIFAVOR}/stocks/{_segment(stock_id)}"
        return self._object(Call("busifavor_detail", "GET", target))

    def busifavor_modify(self, stock_id: str, body: Mapping[str, Any]) -> None:
        """PATCH /v3/marketing/busifavor/stocks/{stock_id}; WeChat Pay answers 204."""
        target = f"{_BUSIFAVOR}/stocks/{_segment(stock_id)}"
        self._session.send(Call("busifavor_modify", "PATCH", target, json_body(body)))

    def busifavor_budget(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH .../stocks/{stock_id}/budget; answers {max_coupons, max_coupons_by_day}."""
        target = f"{_BUSIFAVOR}/stocks/{_segment(stock_id)}/budget"
        return self._object(Call("busifavor_budget", "PATCH", target, json_body(body)))

    # marketing images

    def media_upload(self, filename: str, content: bytes) -> str:
        """POST /v3/marketing/favor/media/image-upload (multipart: `meta` then `file`); only
        the `meta` JSON is signed. Answers the image's permanent media URL."""
        meta = signing.upload_meta(filename, content)
        boundary = multipart_boundary(meta, content)
        body = multipart_body(boundary, meta, filename, content)
        target = f"{_FAVOR}/media/image-upload"
        call = Call(
            "media_upload",
            "POST",
            target,
            body,
            content_type=f"multipart/form-data; boundary={boundary}",  # unquoted, as WeChat Pay wants
            signed_body=meta,
        )
        response, data = self._object_response(call)
        url = data.get("media_url")
        if not isinstance(url, str) or not url:
            raise UnexpectedResponseError(
                method="POST",
                path=target,
                problem="no media_url in the answer",
                request_id=request_id_of(response.headers),
            )
        return url

    def upload_codes(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v3/marketing/busifavor/stocks/{stock_id}/couponcodes: one batch of a 商家券
        code pool ({coupon_code_list, upload_request_no})."""
        target = f"{_BUSIFAVOR}/stocks/{_segment(stock_id)}/couponcodes"
        return self._object(Call("busifavor_upload_codes", "POST", target, json_body(body)))

    def list_codes(self, stock_id: str, offset: int, limit: int) -> dict[str, Any]:
        """GET /v3/marketing/busifavor/stocks/{stock_id}/couponcodes: one page of the pool."""
        target = f"{_BUSIFAVOR}/stocks/{_segment(stock_id)}/couponcodes" + _query(
            offset=offset, limit=limit
        )
        return self._object(Call("busifavor_codes", "GET", target))

    # callbacks (notify URLs), per merchant and kind

    def get_callback(self, kind: str, mchid: str) -> str | None:
        """GET /v3/marketing/{kind}/callbacks?mchid=: the notify URL, None when none is set."""
        target = f"/v3/marketing/{_segment(kind)}/callbacks" + _query(mchid=mchid)
        data = self._object(Call(f"{kind}_callback_get", "GET", target))
        url = data.get("notify_url")
        return url if isinstance(url, str) and url else None

    def set_callback(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v3/marketing/{kind}/callbacks with the kind's body (StockKind.callback_body)."""
        target = f"/v3/marketing/{_segment(kind)}/callbacks"
        return self._object(Call(f"{kind}_callback", "POST", target, json_body(body)))

    # helpers

    def _favor_state(self, action: str, stock_id: str, creator: str) -> dict[str, Any]:
        target = f"{_FAVOR}/stocks/{_segment(stock_id)}/{action}"
        body = json_body({"stock_creator_mchid": creator})
        return self._object(Call(f"favor_{action}", "POST", target, body))

    def _create(self, endpoint: str, target: str, body: Mapping[str, Any]) -> CreateResult:
        response, data = self._object_response(Call(endpoint, "POST", target, json_body(body)))
        stock_id, create_time = data.get("stock_id"), data.get("create_time")
        if not isinstance(stock_id, str) or not stock_id:
            raise UnexpectedResponseError(
                method="POST",
                path=target,
                problem="no stock_id in the answer",
                request_id=request_id_of(response.headers),
            )
        return CreateResult(stock_id, create_time if isinstance(create_time, str) else "")

    def _object(self, call: Call) -> dict[str, Any]:
        return self._object_response(call)[1]

    def _object_response(self, call: Call) -> tuple[httpx.Response, dict[str, Any]]:
        response = self._session.send(call)
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UnexpectedResponseError(
                method=call.method,
                path=response.request.url.path,
                problem="a body that is not a JSON object",
                request_id=request_id_of(response.headers),
            )
        return response, data


def _segment(value: str) -> str:
    """One path segment: never empty, and a `/` or `..` in an id cannot change the path."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"a stock id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _query(**params: str | int | datetime | None) -> str:
    """`?k=v&...` with each value percent-encoded exactly once (`+08:00` -> `%2B08%3A00`)."""
    parts = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone offset")
            value = value.isoformat(timespec="seconds")
        parts.append(f"{name}={quote(str(value), safe='')}")
    return "?" + "&".join(parts) if parts else ""


_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".bmp": "image/bmp",
}


def multipart_boundary(meta: bytes, content: bytes) -> str:
    """A boundary found in neither part, derived from them (the same upload, the same bytes)."""
    seed = hashlib.sha256(meta + content).hexdigest()
    for n in itertools.count():
        boundary = f"reconciler-{seed[:32]}{n or ''}"
        if boundary.encode() not in content and boundary.encode() not in meta:
            return boundary
    raise AssertionError("unreachable")


def multipart_body(boundary: str, meta: bytes, filename: str, content: bytes) -> bytes:
    """The two parts, `meta` (JSON) then `file`, CRLF-delimited (RFC 7578). The file name is
    written with `"`, CR and LF percent-encoded, as browsers do."""
    safe = filename.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    kind = _IMAGE_TYPES.get(filename[filename.rfind(".") :].lower(), "application/octet-stream")
    dash = f"--{boundary}\r\n".encode()
    return b"".join(
        [
            dash,
            b'Content-Disposition: form-data; name="meta"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            meta,
            b"\r\n",
            dash,
            f'Content-Disposition: form-data; name="file"; filename="{safe}"\r\n'.encode(),
            f"Content-Type: {kind}\r\n\r\n".encode(),
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
