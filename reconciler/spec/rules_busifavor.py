"""商家券 (busifavor) rules beyond shape: every documented cross-field and content rule."""

from __future__ import annotations

from datetime import datetime

from reconciler.money import money
from reconciler.spec.busifavor import BusifavorCouponUseRule, BusifavorSpec
from reconciler.spec.common import shown
from reconciler.spec.findings import Findings
from reconciler.spec.rules_common import creation_window, list_size, not_open, times, unique

BUSIFAVOR_COLORS = tuple(f"Color{n:03d}" for n in range(10, 101, 10))
_KINDS = {
    "NORMAL": "fixed_normal_coupon",
    "DISCOUNT": "discount_coupon",
    "EXCHANGE": "exchange_coupon",
}


def busifavor_rules(spec: BusifavorSpec, merchant: str, out: Findings) -> None:
    """Time-independent rules; `merchant` is the stock file's creating mchid."""
    if len(spec.stock_name.encode("utf-8")) > 24:
        out.warning(
            ("stock_name",),
            "is more than 24 UTF-8 bytes, the limit of the 2020 docs (today's docs allow 21 characters)",
            "too_long_strict",
        )
    if len(spec.belong_merchant) < 8:
        out.warning(
            ("belong_merchant",),
            "is shorter than 8 characters, the minimum in the 2020 docs",
            "too_short_strict",
        )
    _coupon_use_rule(spec, spec.coupon_use_rule, out)
    send, sp = spec.stock_send_rule, ("stock_send_rule",)
    if send.max_coupons is None:
        out.warning(
            (*sp, "max_coupons"), "most sources require it (1 to 1,000,000,000)", "required_old"
        )
    elif send.max_coupons_by_day is not None and send.max_coupons_by_day > send.max_coupons:
        out.error(
            (*sp, "max_coupons_by_day"),
            f"{send.max_coupons_by_day:,} is above max_coupons ({send.max_coupons:,})",
            "range",
        )
    if send.max_coupons is not None and send.max_coupons_per_user > send.max_coupons:
        out.error(
            (*sp, "max_coupons_per_user"),
            f"{send.max_coupons_per_user} is above max_coupons ({send.max_coupons:,})",
            "range",
        )
    for name in ("max_amount", "max_amount_by_day", "transferable", "shareable"):
        not_open(out, (*sp, name), getattr(send, name))
    not_open(out, ("subsidy",), spec.subsidy)
    display = spec.display_pattern_info
    if display is not None:
        dp = ("display_pattern_info",)
        if display.background_color is not None:
            if display.background_color.lower() not in {c.lower() for c in BUSIFAVOR_COLORS}:
                out.error(
                    (*dp, "background_color"),
                    f"{shown(display.background_color)} is not a colour; use one of {', '.join(BUSIFAVOR_COLORS)}",
                    "enum",
                )
            elif display.background_color not in BUSIFAVOR_COLORS:
                out.warning(
                    (*dp, "background_color"),
                    f"write it as {display.background_color.capitalize()} as the API's enum does",
                    "enum_case",
                )
        if display.merchant_name is not None:
            out.warning(
                (*dp, "merchant_name"),
                "WeChat Pay takes the name from the brand or merchant short name; this value may be ignored",
                "ignored",
            )


def busifavor_creation_rules(spec: BusifavorSpec, now: datetime, out: Findings) -> None:
    """Rules that depend on the clock: only for a stock that still has to be created."""
    cat = spec.coupon_use_rule.coupon_available_time
    creation_window(
        out,
        ("coupon_use_rule", "coupon_available_time", "available_begin_time"),
        cat.available_begin_time,
        now,
    )


def _one_year_later(t: datetime) -> datetime:
    try:
        return t.replace(year=t.year + 1)
    except ValueError:  # 29 February
        return t.replace(year=t.year + 1, day=28)


def _coupon_use_rule(spec: BusifavorSpec, rule: BusifavorCouponUseRule, out: Findings) -> None:
    p = ("coupon_use_rule",)
    cat, tp = rule.coupon_available_time, (*p, "coupon_available_time")
    window = times(
        out,
        (*tp, "available_begin_time"),
        cat.available_begin_time,
        (*tp, "available_end_time"),
        cat.available_end_time,
    )
    if window and window[1] > _one_year_later(window[0]):
        out.error(
            (*tp, "available_end_time"),
            "the validity period is longer than one year, the documented maximum",
            "window_too_long",
        )
    if cat.wait_days_after_receive is not None and cat.available_day_after_receive is None:
        out.error(
            (*tp, "wait_days_after_receive"),
            "needs available_day_after_receive as well",
            "required_with",
        )
    if cat.available_week is not None:
        wp = (*tp, "available_week")
        for i, day in enumerate(cat.available_week.week_day or []):
            if not 0 <= day <= 6:
                out.error((*wp, "week_day", i), f"{day} is not a weekday (0 = Sunday … 6)", "range")
        unique(out, (*wp, "week_day"), cat.available_week.week_day)
        list_size(out, (*wp, "available_day_time"), cat.available_week.available_day_time, 1, 2)
        for i, r in enumerate(cat.available_week.available_day_time or []):
            if r.end_time <= r.begin_time:
                out.error(
                    (*wp, "available_day_time", i, "end_time"),
                    "must be later than begin_time",
                    "time_order",
                )
    for i, span in enumerate(cat.irregulary_avaliable_time or []):
        ip = (*tp, "irregulary_avaliable_time", i)
        times(out, (*ip, "begin_time"), span.begin_time, (*ip, "end_time"), span.end_time)

    chosen = [name for name in _KINDS.values() if getattr(rule, name) is not None]
    wanted = _KINDS[spec.stock_type]
    if wanted not in chosen:
        out.error(
            (*p, wanted),
            f"is required when stock_type is {spec.stock_type} (give exactly one of fixed_normal_coupon, discount_coupon, exchange_coupon)",
            "required_when",
        )
    for name in chosen:
        if name != wanted:
            other = next(k for k, v in _KINDS.items() if v == name)
            out.error(
                (*p, name),
                f"belongs to stock_type {other}, but stock_type is {spec.stock_type}",
                "wrong_kind",
            )
    fixed = rule.fixed_normal_coupon
    if fixed is not None and fixed.transaction_minimum < fixed.discount_amount:
        out.warning(
            (*p, "fixed_normal_coupon", "transaction_minimum"),
            f"{money(fixed.transaction_minimum)} is below the discount ({money(fixed.discount_amount)}); check the values are in fen",
            "threshold",
        )
    if rule.use_method == "SELF_CONSUME":
        out.warning(
            (*p, "use_method"), "SELF_CONSUME is not supported yet per the docs", "not_open"
        )
    mini = rule.use_method == "MINI_PROGRAMS"
    for name in ("mini_programs_appid", "mini_programs_path"):
        value = getattr(rule, name)
        if mini and value is None:
            out.error((*p, name), "is required when use_method is MINI_PROGRAMS", "required_when")
        elif not mini and value is not None:
            out.warning((*p, name), "has no effect unless use_method is MINI_PROGRAMS", "ignored")
