"""Comparing API bodies field by field (pure): dotted paths, comparable values, the diff.

Times are compared as instants and lists that are sets as sets, so `+08:00` versus `Z` for the
same instant, or merchants listed in another order, are not changes. Which paths a kind's
detail response shows, and how each changed field may change, is the kind's business
(`reconciler.kinds`); this module only knows JSON.

The diff is written here rather than taken from a library: it must yield create-body paths
that the kinds classify one by one, it runs only when two bodies differ (the common case is a
single C-level equality), and a dependency that turns paths into `root['a']['b']` strings
would have to be parsed back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
        # dict first: bodies are dicts, and the Mapping (ABC) check costs several times more.
        if not isinstance(node, (dict, Mapping)) or part not in node:
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


def without_number(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without its request number (which says nothing about the stock)."""
    return {k: v for k, v in body.items() if k != "out_request_no"}


def diff_bodies(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(path, before, after) of every leaf that differs, by path; request numbers ignored."""
    if before == after:  # the common case (same number too), decided by one C-level comparison
        return []
    a, b = without_number(before), without_number(after)
    if a == b:
        return []
    old, new = dict(leaves(a)), dict(leaves(b))
    return [
        (p, old.get(p), new.get(p))
        for p in sorted(old.keys() | new.keys())
        if normalise(p, old.get(p)) != normalise(p, new.get(p))
    ]
