"""代金券 (favor) rules beyond shape: every documented cross-field and content rule.

Where the sources disagree (see the README, "Validation choices") the loosest documented
bound is an error and the stricter one a warning.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from reconciler.diagnostic_messages import Msg, msg
from reconciler.money import money, yuan
from reconciler.spec.common import shown, weighted_length_problem
from reconciler.spec.favor import FAVOR_COLORS, FavorCouponUseRule, FavorPatternInfo, FavorSpec
from reconciler.spec.findings import Findings
from reconciler.spec.rules_common import creation_window, list_size, not_open, times, unique

FORBIDDEN_NAME_CHARS = "_,;|"
MAX_WINDOW = timedelta(days=90)
MAX_AMOUNT_CAP_LOOSE = 100_000_000 * 100  # 1亿元 (WXJAVA/Senparc copies)
MAX_AMOUNT_CAP_STRICT = 10_000_000 * 100  # 1000万元 (EasyAbp copy, official 2021 page)
COUPON_AMOUNT_LOOSE = (2, 100_000)  # > 1 分, ≤ 1000 元 (WXJAVA)
COUPON_AMOUNT_STRICT = (101, 50_000)  # > 1 元, ≤ 500 元 (EasyAbp)
_GOODS_TAG = re.compile(r"^[A-Za-z0-9_]{1,128}$")
_BIN = re.compile(r"^[0-9]{6,9}$")


def favor_rules(spec: FavorSpec, merchant: str, out: Findings) -> None:
    """Time-independent rules; `merchant` is the stock file's creating mchid."""
    too_long = weighted_length_problem(spec.stock_name, 9, 20)
    if too_long:
        out.error(("stock_name",), too_long, "too_long")
    bad = sorted({c for c in spec.stock_name if c in FORBIDDEN_NAME_CHARS})
    if bad:
        chars = " ".join(repr(c) for c in bad)
        out.error(("stock_name",), msg("forbidden_char", chars=chars), "forbidden_char")
    if spec.belong_merchant != merchant:
        out.error(
            ("belong_merchant",),
            msg("belong_merchant", merchant=merchant),
            "belong_merchant",
        )
    window = times(
        out,
        ("available_begin_time",),
        spec.available_begin_time,
        ("available_end_time",),
        spec.available_end_time,
    )
    if window and window[1] - window[0] > MAX_WINDOW:
        days = (window[1] - window[0]).total_seconds() / 86400
        out.error(
            ("available_end_time",),
            msg("window_too_long", days=f"{days:.1f}"),
            "window_too_long",
        )
    _stock_use_rule(spec, out)
    if spec.pattern_info is not None:
        _pattern_info(spec.pattern_info, out)
    _coupon_use_rule(spec, spec.coupon_use_rule, out)
    if spec.stock_type != "NORMAL":
        out.warning(
            ("stock_type",),
            msg("stock_type", stock_type=spec.stock_type),
            "stock_type",
        )
    if spec.ext_info is not None:
        try:
            json.loads(spec.ext_info)
        except ValueError:
            out.error(("ext_info",), msg("not_json"), "not_json")
        not_open(out, ("ext_info",), spec.ext_info)


def favor_creation_rules(spec: FavorSpec, now: datetime, out: Findings) -> None:
    """Rules that depend on the clock: only for a stock that still has to be created."""
    creation_window(out, ("available_begin_time",), spec.available_begin_time, now)


def _stock_use_rule(spec: FavorSpec, out: Findings) -> None:
    rule, p = spec.stock_use_rule, ("stock_use_rule",)
    if not 5 <= rule.max_coupons <= 10_000_000:
        out.error(
            (*p, "max_coupons"),
            msg("range.between", lo="5", hi="10,000,000", value=f"{rule.max_coupons:,}"),
            "range",
        )
    if not 1 <= rule.max_coupons_per_user <= 60:
        out.error(
            (*p, "max_coupons_per_user"),
            msg("range.between", lo="1", hi="60", value=str(rule.max_coupons_per_user)),
            "range",
        )
    elif rule.max_coupons_per_user > rule.max_coupons:
        out.error(
            (*p, "max_coupons_per_user"),
            _above(rule.max_coupons_per_user, "max_coupons", rule.max_coupons),
            "range",
        )
    fixed = spec.coupon_use_rule.fixed_normal_coupon
    if fixed is not None:
        expected = fixed.coupon_amount * rule.max_coupons
        if rule.max_amount != expected:
            out.error(
                (*p, "max_amount"),
                msg(
                    "budget_mismatch",
                    amount=money(fixed.coupon_amount),
                    coupons=f"{rule.max_coupons:,}",
                    expected=money(expected),
                    value=money(rule.max_amount),
                ),
                "budget_mismatch",
            )
    if rule.max_amount > MAX_AMOUNT_CAP_LOOSE:
        out.error(
            (*p, "max_amount"),
            msg("max_amount.cap", value=money(rule.max_amount), cap=money(MAX_AMOUNT_CAP_LOOSE)),
            "range",
        )
    elif rule.max_amount > MAX_AMOUNT_CAP_STRICT:
        out.warning(
            (*p, "max_amount"),
            msg(
                "max_amount.cap_strict",
                value=money(rule.max_amount),
                cap=money(MAX_AMOUNT_CAP_STRICT),
            ),
            "range_strict",
        )
    if rule.max_amount_by_day is not None:
        if rule.max_amount_by_day == 0:
            out.error((*p, "max_amount_by_day"), msg("max_amount_by_day.zero"), "range")
        elif rule.max_amount_by_day > rule.max_amount:
            out.error(
                (*p, "max_amount_by_day"),
                _above(money(rule.max_amount_by_day), "max_amount", money(rule.max_amount)),
                "range",
            )


def _pattern_info(info: FavorPatternInfo, out: Findings) -> None:
    p = ("pattern_info",)
    if len(info.description) > 1000:
        out.error(
            (*p, "description"), msg("description_too_long", n=len(info.description)), "too_long"
        )
    too_long = (
        None if info.merchant_name is None else weighted_length_problem(info.merchant_name, 12, 36)
    )
    if too_long:
        out.error((*p, "merchant_name"), too_long, "too_long")
    if info.background_color is not None:
        if info.background_color.upper() not in FAVOR_COLORS:
            out.error(
                (*p, "background_color"),
                msg("colour", value=shown(info.background_color), colours=", ".join(FAVOR_COLORS)),
                "enum",
            )
        elif info.background_color not in FAVOR_COLORS:
            out.warning(
                (*p, "background_color"),
                msg("enum_case.upper", value=info.background_color.upper()),
                "enum_case",
            )
    mini = info.jump_target == "MINI_PROGRAM"
    for name in ("mini_program_appid", "mini_program_path"):
        value = getattr(info, name)
        if mini and value is None:
            out.error((*p, name), _when("required_when", "jump_target"), "required_when")
        elif not mini and value is not None:
            out.warning((*p, name), _when("ignored_unless", "jump_target"), "ignored")


def _coupon_use_rule(spec: FavorSpec, rule: FavorCouponUseRule, out: Findings) -> None:
    p = ("coupon_use_rule",)
    kinds = {
        "NORMAL": "fixed_normal_coupon",
        "DISCOUNT": "discount_coupon",
        "EXCHANGE": "exchange_coupon",
    }
    wanted = kinds.get(spec.stock_type)
    for stock_type, name in kinds.items():
        present = getattr(rule, name) is not None
        if name == wanted and not present:
            said = msg("required_when", switch="stock_type", value=stock_type)
            out.error((*p, name), said, "required_when")
        elif name != wanted and present:
            out.error(
                (*p, name),
                msg("wrong_kind", other=stock_type, stock_type=spec.stock_type),
                "wrong_kind",
            )
    fixed = rule.fixed_normal_coupon
    if fixed is not None:
        fp = (*p, "fixed_normal_coupon")
        lo, hi = COUPON_AMOUNT_LOOSE
        slo, shi = COUPON_AMOUNT_STRICT
        if not lo <= fixed.coupon_amount <= hi:
            out.error(
                (*fp, "coupon_amount"),
                msg(
                    "coupon_amount.range",
                    lo=money(lo - 1),
                    hi=money(hi),
                    value=money(fixed.coupon_amount),
                ),
                "range",
            )
        elif not slo <= fixed.coupon_amount <= shi:
            out.warning(
                (*fp, "coupon_amount"),
                msg(
                    "coupon_amount.strict",
                    value=money(fixed.coupon_amount),
                    lo=yuan(slo - 1),
                    hi=yuan(shi),
                ),
                "range_strict",
            )
        if fixed.transaction_minimum <= fixed.coupon_amount:
            out.error(
                (*fp, "transaction_minimum"),
                msg(
                    "transaction_minimum",
                    amount=money(fixed.coupon_amount),
                    value=money(fixed.transaction_minimum),
                ),
                "range",
            )
    if rule.goods_tag is not None:
        list_size(out, (*p, "goods_tag"), rule.goods_tag, 1, 50)
        unique(out, (*p, "goods_tag"), rule.goods_tag)
        for i, tag in enumerate(rule.goods_tag):
            if not _GOODS_TAG.match(tag):
                out.error(
                    (*p, "goods_tag", i),
                    msg("goods_tag", tag=shown(tag)),
                    "format",
                )
    list_size(out, (*p, "limit_pay"), rule.limit_pay, 1, 1)
    if rule.limit_card is not None:
        cp = (*p, "limit_card")
        if rule.limit_card.name is not None and len(rule.limit_card.name) > 4:
            out.error((*cp, "name"), msg("card_name"), "too_long")
        list_size(out, (*cp, "bin"), rule.limit_card.bin, 1, 10)
        for i, b in enumerate(rule.limit_card.bin or []):
            if not _BIN.match(b):
                out.error((*cp, "bin", i), msg("card_bin", bin=shown(b)), "format")
        if rule.limit_pay is None:
            out.warning(cp, msg("limit_card.ignored"), "ignored")
    unique(out, (*p, "trade_type"), rule.trade_type)
    list_size(out, (*p, "available_items"), rule.available_items, 1, 50)
    for i, item in enumerate(rule.available_items or []):
        if not 1 <= len(item) <= 128:
            out.error((*p, "available_items", i), msg("item_code"), "too_long")
    not_open(out, (*p, "unavailable_items"), rule.unavailable_items)
    if rule.available_merchants is None:
        out.warning(
            (*p, "available_merchants"),
            msg("available_merchants.old"),
            "required_old",
        )
    else:
        list_size(out, (*p, "available_merchants"), rule.available_merchants, 1, 50)
        unique(out, (*p, "available_merchants"), rule.available_merchants)
    cat = rule.coupon_available_time
    if cat is not None:
        not_open(out, (*p, "coupon_available_time"), cat)
        fix = cat.fix_available_time
        if fix is not None:
            tp = (*p, "coupon_available_time", "fix_available_time")
            for i, day in enumerate(fix.available_week_day or []):
                if not 0 <= day <= 6:
                    out.error(
                        (*tp, "available_week_day", i),
                        msg("weekday", day=day),
                        "range",
                    )
            if (
                fix.begin_time is not None
                and fix.end_time is not None
                and fix.end_time <= fix.begin_time
            ):
                out.error((*tp, "end_time"), msg("time_order"), "time_order")


def _above(value: object, other: str, limit: object) -> Msg:
    return msg(f"above.{other}", value=value, limit=limit)


def _when(message_id: str, switch: str) -> Msg:
    return msg(message_id, switch=switch, value="MINI_PROGRAM")
