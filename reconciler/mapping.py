"""Create bodies versus detail responses (pure).

The two shapes differ (favor detail moves coupon rules under `stock_use_rule`, returns
`description` at the top level and drops what it does not echo), so drift is computed through
an explicit mapping of the fields a detail response shows: times compared as instants, lists
that are sets compared as sets, and fields that move on their own reported as facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from reconciler.spec.common import parse_rfc3339

MONEY_FIELDS = frozenset(
    {
        "max_amount",
        "max_amount_by_day",
        "coupon_amount",
        "transaction_minimum",
        "discount_amount",
        "exchange_price",
        "discount_amount_max",
    }
)
SET_LISTS = frozenset(
    {
        "goods_tag",
        "trade_type",
        "available_merchants",
        "available_items",
        "week_day",
        "available_week_day",
        "limit_pay",
        "bin",
    }
)

# favor: create-body path -> detail-response path, for every field the detail shows.
FAVOR_OBSERVABLE: dict[str, str] = {
    "stock_name": "stock_name",
    "available_begin_time": "available_begin_time",
    "available_end_time": "available_end_time",
    "stock_use_rule.max_coupons": "stock_use_rule.max_coupons",
    "stock_use_rule.max_amount": "stock_use_rule.max_amount",
    "stock_use_rule.max_amount_by_day": "stock_use_rule.max_amount_by_day",
    "stock_use_rule.max_coupons_per_user": "stock_use_rule.max_coupons_per_user",
    "pattern_info.description": "description",
    "coupon_use_rule.fixed_normal_coupon.coupon_amount": "stock_use_rule.fixed_normal_coupon.coupon_amount",
    "coupon_use_rule.fixed_normal_coupon.transaction_minimum": "stock_use_rule.fixed_normal_coupon.transaction_minimum",
    "coupon_use_rule.goods_tag": "stock_use_rule.goods_tag",
    "coupon_use_rule.trade_type": "stock_use_rule.trade_type",
    "coupon_use_rule.combine_use": "stock_use_rule.combine_use",
    "no_cash": "no_cash",
    "stock_type": "stock_type",
}
FAVOR_FACTS = ("status", "distributed_coupons", "create_time", "start_time", "stop_time")
BUSIFAVOR_FACTS = ("stock_state", "send_count_information", "coupon_code_count")


def leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted paths of every leaf; lists are leaves (compared whole)."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from leaves(value, path + ".")
        else:
            yield path, value


def get_path(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def normalise(path: str, value: Any) -> Any:
    """A comparable form: instants for times, frozensets for set-like lists."""
    name = path.rsplit(".", 1)[-1]
    if isinstance(value, str) and name.endswith("_time"):
        try:
            instant: datetime = parse_rfc3339(value)
        except ValueError:
            return value
        return instant.timestamp()
    if name in SET_LISTS:
        items = value if isinstance(value, list) else [value]
        try:
            return frozenset(items)
        except TypeError:
            return tuple(map(repr, items))
    return value


def observable_pairs(
    kind: str, body: Mapping[str, Any], detail: Mapping[str, Any]
) -> Iterator[tuple[str, Any, Any]]:
    """(create path, sent value, observed value) for every field both sides show."""
    pairs: Iterable[tuple[str, str]]
    if kind == "favor":
        pairs = FAVOR_OBSERVABLE.items()
    else:
        pairs = ((p, p) for p, _ in leaves(body) if p != "out_request_no")
    for create_path, detail_path in pairs:
        has_sent, sent = get_path(body, create_path)
        has_seen, seen = get_path(detail, detail_path)
        if has_sent and has_seen:
            yield create_path, sent, seen


def drifted(
    kind: str, body: Mapping[str, Any], detail: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """Fields whose observed value differs from what was applied: (path, observed, applied)."""
    return [
        (p, seen, sent)
        for p, sent, seen in observable_pairs(kind, body, detail)
        if normalise(p, sent) != normalise(p, seen)
    ]


def facts(kind: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    names = FAVOR_FACTS if kind == "favor" else BUSIFAVOR_FACTS
    return {n: detail[n] for n in names if n in detail}


def ended(kind: str, body: Mapping[str, Any], now: datetime) -> bool:
    """Whether the stock's usable window is over (it can no longer change)."""
    path = (
        "available_end_time"
        if kind == "favor"
        else "coupon_use_rule.coupon_available_time.available_end_time"
    )
    found, value = get_path(body, path)
    if not found or not isinstance(value, str):
        return False
    try:
        return parse_rfc3339(value) <= now
    except ValueError:
        return False
