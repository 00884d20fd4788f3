"""The endpoint table: (method, path pattern) -> endpoint name."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FAVOR = "/v3/marketing/favor"
_BUSI = "/v3/marketing/busifavor/stocks"
_ID = r"(?P<stock_id>[^/]+)"


@dataclass(frozen=True)
class Route:
    endpoint: str
    method: str
    pattern: re.Pattern[str]


def _route(endpoint: str, method: str, pattern: str) -> Route:
    return Route(endpoint, method, re.compile(pattern))


ROUTES: tuple[Route, ...] = (
    _route("favor.create", "POST", f"{_FAVOR}/coupon-stocks"),
    _route("favor.list", "GET", f"{_FAVOR}/stocks"),
    _route("favor.detail", "GET", f"{_FAVOR}/stocks/{_ID}"),
    _route("favor.start", "POST", f"{_FAVOR}/stocks/{_ID}/start"),
    _route("favor.pause", "POST", f"{_FAVOR}/stocks/{_ID}/pause"),
    _route("favor.restart", "POST", f"{_FAVOR}/stocks/{_ID}/restart"),
    _route("favor.stop", "POST", f"{_FAVOR}/stocks/{_ID}/stop"),
    _route("favor.modify_goods_id", "POST", f"{_FAVOR}/stocks/{_ID}/modify-goods-id"),
    _route("favor.items", "GET", f"{_FAVOR}/stocks/{_ID}/items"),
    _route("favor.merchants", "GET", f"{_FAVOR}/stocks/{_ID}/merchants"),
    _route("busifavor.create", "POST", _BUSI),
    _route("busifavor.detail", "GET", f"{_BUSI}/{_ID}"),
    _route("busifavor.modify", "PATCH", f"{_BUSI}/{_ID}"),
    _route("busifavor.budget", "PATCH", f"{_BUSI}/{_ID}/budget"),
    _route("media.image_upload", "POST", f"{_FAVOR}/media/image-upload"),
    _route("busifavor.upload_codes", "POST", f"{_BUSI}/{_ID}/couponcodes"),
    _route("busifavor.codes", "GET", f"{_BUSI}/{_ID}/couponcodes"),
    _route("favor.callback_set", "POST", f"{_FAVOR}/callbacks"),
    _route("favor.callback_get", "GET", f"{_FAVOR}/callbacks"),
    _route("busifavor.callback_set", "POST", "/v3/marketing/busifavor/callbacks"),
    _route("busifavor.callback_get", "GET", "/v3/marketing/busifavor/callbacks"),
    _route("certificates", "GET", "/v3/certificates"),
)

ENDPOINTS: frozenset[str] = frozenset(r.endpoint for r in ROUTES)
"""Every endpoint name; faults and rate limits are keyed by these."""


def match(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint and path parameters for a request, or None (answered with 404)."""
    for route in ROUTES:
        if route.method == method:
            m = route.pattern.fullmatch(path)
            if m is not None:
                return route.endpoint, m.groupdict()
    return None
