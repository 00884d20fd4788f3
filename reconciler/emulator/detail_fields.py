"""Which fields the detail responses carry, and when: the official SDK models' rules.

The models are those of wechatpay-apiv3/wechatpay-go at 6dbd7ce (v0.2.21, 2025-07-07):
services/cashcoupons/models.go (`Stock`, `StockUseRule`) for 代金券 and
services/merchantexclusivecoupon/models.go (`StockGetResponse`, `SendCount`,
`DisplayPatternInfo`) for 商家券. A field the model marks required is always present; an
optional one only under the condition its comment states, or, where it states none, only
when the create (or a later modify) gave it. docs/emulator.md tables every choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.emulator.store import EmulatedMerchant, default_short_name


def favor_max_amount_by_day(sent_rule: Mapping[str, Any]) -> int:
    """`StockUseRule.max_amount_by_day` is required in the detail but optional at create.
    Without a daily cap the whole budget may go in one day, so the emulator shows max_amount
    (the real value for an omitted cap is UNCONFIRMED)."""
    value = sent_rule.get("max_amount_by_day", sent_rule["max_amount"])
    return int(value)


def busifavor_send_count(body: Mapping[str, Any]) -> dict[str, int]:
    """`SendCount`, each counter under its documented condition:

    - total_send_num: 满减, 折扣 and 换购 stocks, so every stock;
    - total_send_amount: 满减 (NORMAL) stocks;
    - today_send_num: stocks with a daily cap (`max_coupons_by_day`);
    - today_send_amount: 满减 stocks with a daily cap.

    The emulator issues no coupons, so every counter is 0."""
    normal = body["stock_type"] == "NORMAL"
    daily = "max_coupons_by_day" in body["stock_send_rule"]
    out = {"total_send_num": 0}
    if normal:
        out["total_send_amount"] = 0
    if daily:
        out["today_send_num"] = 0
    if normal and daily:
        out["today_send_amount"] = 0
    return out


def fill_busifavor_brand(view: dict[str, Any], merchants: Mapping[str, EmulatedMerchant]) -> None:
    """What WeChat Pay fills into `display_pattern_info` when the create gave none
    (`DisplayPatternInfo`): merchant_name from the brand or the short name (商户简称) of the
    merchant the stock belongs to, and merchant_logo_url from its brand logo, when it has one
    (otherwise the card shows a grey placeholder, which the detail does not carry). A value
    the create gave is kept as given (whether WeChat Pay replaces it is UNCONFIRMED)."""
    owner_id = str(view["belong_merchant"])
    owner = merchants.get(owner_id)
    display = view.setdefault("display_pattern_info", {})
    name = owner.short_name if owner is not None else default_short_name(owner_id)
    display.setdefault("merchant_name", name)
    if owner is not None and owner.logo_url is not None:
        display.setdefault("merchant_logo_url", owner.logo_url)
