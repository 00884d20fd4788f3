"""商家券 (busifavor) rules beyond shape: every documented cross-field and content rule."""

from __future__ import annotations

from datetime import datetime

from reconciler.diagnostic_messages import Msg, msg
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
            msg("busifavor.name_bytes"),
            "too_long_strict",
        )
    if len(spec.belong_merchant) < 8:
        out.warning(
            ("belong_merchant",),
            msg("busifavor.belong_merchant_short"),
            "too_short_strict",
        )
    _coupon_use_rule(spec, spec.coupon_use_rule, out)
    send, sp = spec.stock_send_rule, ("stock_send_rule",)
    if send.max_coupons is None:
        out.warning((*sp, "max_coupons"), msg("busifavor.max_coupons_old"), "required_old")
    elif send.max_coupons_by_day is not None and send.max_coupons_by_day > send.max_coupons:
        out.error(
            (*sp, "max_coupons_by_day"),
            _above_max_coupons(f"{send.max_coupons_by_day:,}", send.max_coupons),
            "range",
        )
    if send.max_coupons is not None and send.max_coupons_per_user > send.max_coupons:
        out.error(
            (*sp, "max_coupons_per_user"),
            _above_max_coupons(str(send.max_coupons_per_user), send.max_coupons),
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
                    msg(
                        "colour",
                        value=shown(display.background_color),
                        colours=", ".join(BUSIFAVOR_COLORS),
                    ),
                    "enum",
                )
            elif display.background_color not in BUSIFAVOR_COLORS:
                out.warning(
                    (*dp, "background_color"),
                    msg("enum_case.capitalized", value=display.background_color.capitalize()),
                    "enum_case",
                )
        if display.merchant_name is not None:
            out.warning(
                (*dp, "merchant_name"),
                msg("busifavor.merchant_name_ignored"),
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
            msg("busifavor.window_too_long"),
            "window_too_long",
        )
    if cat.wait_days_after_receive is not None and cat.available_day_after_receive is None:
        out.error(
            (*tp, "wait_days_after_receive"),
            msg("busifavor.wait_days"),
            "required_with",
        )
    if cat.available_week is not None:
        wp = (*tp, "available_week")
        for i, day in enumerate(cat.available_week.week_day or []):
            if not 0 <= day <= 6:
                out.error((*wp, "week_day", i), msg("weekday", day=day), "range")
        unique(out, (*wp, "week_day"), cat.available_week.week_day)
        list_size(out, (*wp, "available_day_time"), cat.available_week.available_day_time, 1, 2)
        for i, r in enumerate(cat.available_week.available_day_time or []):
            if r.end_time <= r.begin_time:
                out.error(
                    (*wp, "available_day_time", i, "end_time"),
                    msg("time_order"),
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
            msg("busifavor.required_kind", stock_type=spec.stock_type),
            "required_when",
        )
    for name in chosen:
        if name != wanted:
            other = next(k for k, v in _KINDS.items() if v == name)
            out.error(
                (*p, name),
                msg("wrong_kind", other=other, stock_type=spec.stock_type),
                "wrong_kind",
            )
    fixed = rule.fixed_normal_coupon
    if fixed is not None and fixed.transaction_minimum < fixed.discount_amount:
        out.warning(
            (*p, "fixed_normal_coupon", "transaction_minimum"),
            msg(
                "busifavor.threshold",
                minimum=money(fixed.transaction_minimum),
                discount=money(fixed.discount_amount),
            ),
            "threshold",
        )
    if rule.use_method == "SELF_CONSUME":
        out.warning((*p, "use_method"), msg("busifavor.self_consume"), "not_open")
    mini = rule.use_method == "MINI_PROGRAMS"
    for name in ("mini_programs_appid", "mini_programs_path"):
        value = getattr(rule, name)
        if mini and value is None:
            out.error((*p, name), _when("required_when"), "required_when")
        elif not mini and value is not None:
            out.warning((*p, name), _when("ignored_unless"), "ignored")


def _above_max_coupons(value: str, limit: int) -> Msg:
    return msg("above.send_max_coupons", value=value, limit=f"{limit:,}")


def _when(message_id: str) -> Msg:
    return msg(message_id, switch="use_method", value="MINI_PROGRAMS")
