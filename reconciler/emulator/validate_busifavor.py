"""Server-side rules for a 商家券 (busifavor) create body (reference §2.1)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reconciler.emulator.checks import REQUEST_NO, Obj, fail

COUPON_KINDS = {
    "NORMAL": "fixed_normal_coupon",
    "DISCOUNT": "discount_coupon",
    "EXCHANGE": "exchange_coupon",
}
CODE_MODES = frozenset({"WECHATPAY_MODE", "MERCHANT_API", "MERCHANT_UPLOAD"})
USE_METHODS = frozenset({"OFF_LINE", "MINI_PROGRAMS", "PAYMENT_CODE", "SELF_CONSUME"})
DISPLAY_MODES = frozenset({"NOT_SHOW", "BARCODE", "QRCODE"})
COLORS = frozenset(f"Color{n:03d}" for n in range(10, 101, 10))
"""OAPI enum, mixed case (favor uses `COLOR020`); sending favor's spelling is a client bug."""

CREATE_FIELDS = frozenset(
    {
        "stock_name",
        "belong_merchant",
        "comment",
        "goods_name",
        "stock_type",
        "coupon_use_rule",
        "stock_send_rule",
        "out_request_no",
        "custom_entrance",
        "display_pattern_info",
        "coupon_code_mode",
        "notify_config",
        "subsidy",
    }
)
_USE_RULE = frozenset(
    {"coupon_available_time", "use_method", "mini_programs_appid", "mini_programs_path"}
) | frozenset(COUPON_KINDS.values())
_TIME = frozenset(
    {
        "available_begin_time",
        "available_end_time",
        "available_day_after_receive",
        "available_week",
        "irregulary_avaliable_time",
        "wait_days_after_receive",
    }
)
_SEND_RULE = frozenset(
    {
        "max_amount",
        "max_coupons",
        "max_coupons_per_user",
        "max_amount_by_day",
        "max_coupons_by_day",
        "natural_person_limit",
        "prevent_api_abuse",
        "transferable",
        "shareable",
    }
)
_ENTRANCE = frozenset({"mini_programs_info", "appid", "hall_id", "store_id", "code_display_mode"})
_DISPLAY = frozenset(
    {
        "description",
        "merchant_logo_url",
        "merchant_name",
        "background_color",
        "coupon_image_url",
        "finder_info",
    }
)
NOT_CHANGEABLE = "该字段不支持修改"
NOT_A_SUB_MERCHANT = "批次归属商户号须为服务商已授权的子商户号"
"""The wording is the emulator's own: the partner docs state the rule, not the message."""
MAX_COUNT = 1_000_000_000
MAX_FEN = 10_000_000


def validate_busifavor_create(
    body: object, *, caller: str, strict: bool, sub_merchants: frozenset[str] = frozenset()
) -> Obj:
    """`sub_merchants`: the caller's, when it is a service provider (服务商): its 商家券 belong
    to one of them (or to itself)."""
    root = Obj.root(body)
    if strict:
        root.only(CREATE_FIELDS)
    root.string("stock_name", required=True, max_len=21)
    belong = root.string("belong_merchant", required=True, max_len=15)
    if belong != caller and belong not in sub_merchants:
        if sub_merchants:
            fail("/belong_merchant", NOT_A_SUB_MERCHANT, belong)
        fail("/belong_merchant", "批次归属商户号须为调用接口的直连商户号", belong)
    root.string("comment", required=False, max_len=20)
    root.string("goods_name", required=True, max_len=15)
    stock_type = root.enum("stock_type", COUPON_KINDS, required=True)
    assert stock_type is not None
    _check_use_rule(root, stock_type, strict)
    _check_send_rule(root, strict)
    root.string("out_request_no", required=True, max_len=128, pattern=REQUEST_NO)
    check_entrance(root.obj("custom_entrance", required=False), strict, modify=False)
    check_display(root.obj("display_pattern_info", required=False), strict, current=None)
    root.enum("coupon_code_mode", CODE_MODES, required=True)
    check_notify(root, strict)
    root.boolean("subsidy", required=False)
    return root


def _check_use_rule(root: Obj, stock_type: str, strict: bool) -> None:
    rule = root.obj("coupon_use_rule", required=True)
    assert rule is not None
    if strict:
        rule.only(_USE_RULE)
    _check_available_time(rule, strict)
    expected = COUPON_KINDS[stock_type]
    for kind in COUPON_KINDS.values():
        if kind != expected and rule.has(kind):
            fail(rule.at(kind), f"stock_type为{stock_type}时只能填写{expected}")
    coupon = rule.obj(expected, required=True)
    assert coupon is not None
    if stock_type == "NORMAL":
        amount_fields = {"discount_amount": (1, MAX_FEN)}
    elif stock_type == "DISCOUNT":
        amount_fields = {"discount_percent": (1, 99)}
    else:
        amount_fields = {"exchange_price": (0, MAX_FEN)}
    if strict:
        coupon.only({*amount_fields, "transaction_minimum"})
    for name, (lo, hi) in amount_fields.items():
        coupon.integer(name, required=True, lo=lo, hi=hi)
    coupon.integer("transaction_minimum", required=True, lo=1, hi=MAX_FEN)
    check_use_method(rule, required=True, merged=rule.data)


def check_use_method(rule: Obj, *, required: bool, merged: dict[str, Any]) -> None:
    """`merged` is the rule as it will be stored (for modify: the current rule plus the patch)."""
    rule.enum("use_method", USE_METHODS, required=required)
    rule.string("mini_programs_appid", required=False, max_len=32)
    rule.string("mini_programs_path", required=False, max_len=128)
    if merged.get("use_method") == "MINI_PROGRAMS":
        for key in ("mini_programs_appid", "mini_programs_path"):
            if merged.get(key) is None:
                fail(rule.at(key), "核销方式为MINI_PROGRAMS时小程序AppID与path必填")


def _check_available_time(rule: Obj, strict: bool) -> None:
    available = rule.obj("coupon_available_time", required=True)
    assert available is not None
    if strict:
        available.only(_TIME)
    begin = available.time("available_begin_time", required=True)
    end = available.time("available_end_time", required=True)
    assert begin is not None and end is not None
    if end <= begin:
        fail(available.at("available_end_time"), "结束时间需晚于开始时间")
    if end - begin > timedelta(days=365):
        fail(available.at("available_end_time"), "批次有效期最长为1年")
    after = available.integer("available_day_after_receive", required=False, lo=1, hi=365)
    week = available.obj("available_week", required=False)
    if week is not None:
        if strict:
            week.only({"week_day", "available_day_time"})
        week.integers("week_day", required=False, max_items=7, lo=0, hi=6)
        for slot in week.objects("available_day_time", required=False, max_items=2) or ():
            if strict:
                slot.only({"begin_time", "end_time"})
            start = slot.integer("begin_time", required=True, lo=0, hi=86399)
            stop = slot.integer("end_time", required=True, lo=0, hi=86399)
            if start is not None and stop is not None and stop <= start:
                fail(slot.at("end_time"), "当天结束时间需晚于开始时间", stop)
    for slot in available.objects("irregulary_avaliable_time", required=False) or ():
        if strict:
            slot.only({"begin_time", "end_time"})
        first = slot.time("begin_time", required=True)
        last = slot.time("end_time", required=True)
        if first is not None and last is not None and last <= first:
            fail(slot.at("end_time"), "结束时间需晚于开始时间")
    wait = available.integer("wait_days_after_receive", required=False, lo=0, hi=30)
    if wait is not None and after is None:
        fail(
            available.at("wait_days_after_receive"),
            "wait_days_after_receive需与available_day_after_receive同时填写",
        )


def _check_send_rule(root: Obj, strict: bool) -> None:
    send = root.obj("stock_send_rule", required=True)
    assert send is not None
    if strict:
        send.only(_SEND_RULE)
    max_coupons = send.integer("max_coupons", required=True, lo=1, hi=MAX_COUNT)
    assert max_coupons is not None
    per_user = send.integer("max_coupons_per_user", required=True, lo=1, hi=100)
    if per_user is not None and per_user > max_coupons:
        fail(send.at("max_coupons_per_user"), "用户最大可领个数不能大于批次最大发放个数", per_user)
    by_day = send.integer("max_coupons_by_day", required=False, lo=1, hi=MAX_COUNT)
    if by_day is not None and by_day > max_coupons:
        fail(send.at("max_coupons_by_day"), "单天发放上限个数不能大于批次最大发放个数", by_day)
    send.integer("max_amount", required=False, lo=1)
    send.integer("max_amount_by_day", required=False, lo=1)
    for flag in ("natural_person_limit", "prevent_api_abuse", "transferable", "shareable"):
        send.boolean(flag, required=False)


def check_entrance(entrance: Obj | None, strict: bool, *, modify: bool) -> None:
    if entrance is None:
        return
    if modify:
        entrance.only(_ENTRANCE - {"store_id"}, NOT_CHANGEABLE)
    elif strict:
        entrance.only(_ENTRANCE)
    mini = entrance.obj("mini_programs_info", required=False)
    if mini is not None:
        if strict or modify:
            mini.only(
                {"mini_programs_appid", "mini_programs_path", "entrance_words", "guiding_words"}
            )
        mini.string("mini_programs_appid", required=True, max_len=32)
        mini.string("mini_programs_path", required=True, max_len=128)
        mini.string("entrance_words", required=True, max_len=5)
        mini.string("guiding_words", required=False, max_len=6)
    entrance.string("appid", required=False, max_len=32)
    entrance.string("hall_id", required=False, max_len=64)
    entrance.string("store_id", required=False, max_len=64)
    entrance.enum("code_display_mode", DISPLAY_MODES, required=False)


def check_display(display: Obj | None, strict: bool, current: dict[str, Any] | None) -> None:
    if display is None:
        return
    if strict or current is not None:
        display.only(_DISPLAY)
    display.string("description", required=False, max_len=1000)
    display.string("merchant_logo_url", required=False, max_len=512)
    display.string("merchant_name", required=False, max_len=16)
    display.enum("background_color", COLORS, required=False)
    display.string("coupon_image_url", required=False, max_len=512)
    finder = display.obj("finder_info", required=False)
    if finder is not None:
        if strict or current is not None:
            finder.only({"finder_id", "finder_video_id", "finder_video_cover_image_url"})
        finder.string("finder_id", required=False, max_len=64)
        finder.string("finder_video_id", required=False, max_len=256)
        finder.string("finder_video_cover_image_url", required=False, max_len=512)
    if current is not None:
        # Documented as "暂不支持修改": accepted only when unchanged.
        for key in ("merchant_logo_url", "merchant_name"):
            unchanged(display, key, current.get(key))


def check_notify(root: Obj, strict: bool) -> None:
    notify = root.obj("notify_config", required=False)
    if notify is not None:
        if strict:
            notify.only({"notify_appid"})
        notify.string("notify_appid", required=False, max_len=64)


def unchanged(obj: Obj, key: str, current: object) -> None:
    if obj.has(key) and obj.data[key] != current:
        fail(obj.at(key), f"{key}暂不支持修改", obj.data[key])
