"""Server-side rules for a 代金券 (favor) create body, written from the docs (reference §1.1).

Independent of the client-side models on purpose: the emulator exists to catch client mistakes.
"""

from __future__ import annotations

import re
from datetime import timedelta

from reconciler.emulator.checks import REQUEST_NO, Obj, fail

CREATE_FIELDS = frozenset(
    {
        "stock_name",
        "comment",
        "belong_merchant",
        "available_begin_time",
        "available_end_time",
        "stock_use_rule",
        "pattern_info",
        "coupon_use_rule",
        "no_cash",
        "stock_type",
        "out_request_no",
        "ext_info",
    }
)
_USE_RULE = frozenset(
    {
        "max_coupons",
        "max_amount",
        "max_amount_by_day",
        "max_coupons_per_user",
        "natural_person_limit",
        "prevent_api_abuse",
    }
)
_PATTERN = frozenset(
    {
        "description",
        "merchant_logo",
        "merchant_name",
        "background_color",
        "coupon_image",
        "jump_target",
        "mini_program_appid",
        "mini_program_path",
    }
)
_COUPON_RULE = frozenset(
    {
        "coupon_available_time",
        "fixed_normal_coupon",
        "goods_tag",
        "limit_pay",
        "limit_card",
        "trade_type",
        "combine_use",
        "available_items",
        "unavailable_items",
        "available_merchants",
    }
)
COLORS = frozenset(
    f"COLOR{n}" for n in ("010", "020", "030", "040", "050", "060", "070", "080", "081", "082")
) | frozenset({"COLOR090", "COLOR100", "COLOR101", "COLOR102"})
TRADE_TYPES = frozenset({"MICROAPP", "APPPAY", "PPAY", "CARD", "FACE", "OTHER"})
JUMP_TARGETS = frozenset({"PAYMENT_CODE", "MINI_PROGRAM", "DEFAULT_PAGE"})

MAX_BUDGET_FEN = 1_000_000_000
"""批次总预算最多1000万元 (seed 2021 page); other copies say 1亿元 (UNCONFIRMED)."""
COUPON_AMOUNT_RANGE = (2, 100_000)
"""面额 >1分 and ≤1000元 (WXJAVA); the 2021 page says >1元 ≤500元 but its own example uses 50
(UNCONFIRMED), so the wider range is enforced."""

_NAME_FORBIDDEN = re.compile(r"[_,;|]")
_GOODS_TAG = re.compile(r"[A-Za-z0-9_]+")
_DIGITS = re.compile(r"[0-9]+")


def fits(text: str, cjk_max: int, ascii_max: int) -> bool:
    """ "At most N Chinese characters or M letters": mixed text is weighed proportionally."""
    wide = sum(1 for ch in text if not ch.isascii())
    return wide * ascii_max + (len(text) - wide) * cjk_max <= cjk_max * ascii_max


NOT_AUTHORISED = "免充值批次的可用商户须为服务商已授权的子商户号"
"""The wording is the emulator's own: the partner docs state the rule, not the message."""


def validate_favor_create(
    body: object,
    *,
    caller: str,
    now: float,
    strict: bool,
    sub_merchants: frozenset[str] = frozenset(),
) -> Obj:
    """Check a create body in the order of the doc table; the first problem raises PARAM_ERROR.
    `sub_merchants`: the caller's, when it is a service provider (服务商): a 免充值 stock may be
    used at itself and those only (a direct merchant's list is not checked)."""
    root = Obj.root(body)
    if strict:
        root.only(CREATE_FIELDS)
    name = root.string("stock_name", required=True, max_len=20)
    assert name is not None
    if _NAME_FORBIDDEN.search(name):
        fail("/stock_name", "批次名称中不能包含特殊字符 _ , ; |", name)
    if not fits(name, 9, 20):
        fail("/stock_name", "批次名称最多9个中文汉字或20个字母", name)
    root.string("comment", required=False, max_len=60)
    belong = root.string("belong_merchant", required=True, max_len=20)
    if belong != caller:
        fail("/belong_merchant", "归属商户号请设置为当前创建代金券的商户号", belong)
    _check_window(root, now)
    max_coupons, max_amount = _check_use_rule(root, strict)
    _check_pattern(root, strict)
    coupon_amount = _check_coupon_rule(root, strict)
    if max_amount != coupon_amount * max_coupons:
        fail("/stock_use_rule/max_amount", "批次预算等于批次面额乘以发券数", max_amount)
    no_cash = root.boolean("no_cash", required=True)
    if no_cash and sub_merchants:
        listed = root.data.get("coupon_use_rule", {}).get("available_merchants") or []
        for i, m in enumerate(listed):
            if m != caller and m not in sub_merchants:
                fail(f"/coupon_use_rule/available_merchants/{i}", NOT_AUTHORISED, m)
    stock_type = root.string("stock_type", required=True, max_len=16)
    if stock_type != "NORMAL":
        fail("/stock_type", "批次类型仅支持NORMAL", stock_type)
    root.string("out_request_no", required=True, max_len=128, pattern=REQUEST_NO)
    root.string("ext_info", required=False, max_len=128)
    return root


def _check_window(root: Obj, now: float) -> None:
    begin = root.time("available_begin_time", required=True)
    end = root.time("available_end_time", required=True)
    assert begin is not None and end is not None
    if begin.timestamp() < int(now):
        fail("/available_begin_time", "开始时间不可早于当前时间", root.data["available_begin_time"])
    if begin.timestamp() > now + timedelta(days=365).total_seconds():
        fail(
            "/available_begin_time", "不能创建365天后开始的批次", root.data["available_begin_time"]
        )
    if end - begin < timedelta(seconds=1):
        fail("/available_end_time", "结束时间需晚于开始时间", root.data["available_end_time"])
    if end - begin > timedelta(days=90):
        fail("/available_end_time", "批次可用时间范围最长为90天", root.data["available_end_time"])


def _check_use_rule(root: Obj, strict: bool) -> tuple[int, int]:
    rule = root.obj("stock_use_rule", required=True)
    assert rule is not None
    if strict:
        rule.only(_USE_RULE)
    max_coupons = rule.integer("max_coupons", required=True, lo=5, hi=10_000_000)
    max_amount = rule.integer("max_amount", required=True, lo=1, hi=MAX_BUDGET_FEN)
    assert max_coupons is not None and max_amount is not None
    rule.integer("max_amount_by_day", required=False, lo=1, hi=max_amount)
    per_user = rule.integer("max_coupons_per_user", required=True, lo=1, hi=60)
    if per_user is not None and per_user > max_coupons:
        fail(rule.at("max_coupons_per_user"), "单个用户可领个数不能大于发放总个数", per_user)
    rule.boolean("natural_person_limit", required=True)
    rule.boolean("prevent_api_abuse", required=True)
    return max_coupons, max_amount


def _check_pattern(root: Obj, strict: bool) -> None:
    pattern = root.obj("pattern_info", required=False)
    if pattern is None:
        return
    if strict:
        pattern.only(_PATTERN)
    pattern.string("description", required=True, max_len=1000)
    pattern.string("merchant_logo", required=False, max_len=128)
    merchant_name = pattern.string("merchant_name", required=False, max_len=36)
    if merchant_name is not None and not fits(merchant_name, 12, 36):
        fail(pattern.at("merchant_name"), "品牌名称最多12个中文汉字或36个英文字符", merchant_name)
    pattern.enum("background_color", COLORS, required=False)
    pattern.string("coupon_image", required=False, max_len=128)
    jump = pattern.enum("jump_target", JUMP_TARGETS, required=False)
    mini = jump == "MINI_PROGRAM"
    pattern.string("mini_program_appid", required=mini, max_len=32)
    pattern.string("mini_program_path", required=mini, max_len=256)


def _check_coupon_rule(root: Obj, strict: bool) -> int:
    rule = root.obj("coupon_use_rule", required=True)
    assert rule is not None
    if strict:
        rule.only(_COUPON_RULE)
    _check_available_time(rule, strict)
    fixed = rule.obj("fixed_normal_coupon", required=True)
    assert fixed is not None
    if strict:
        fixed.only({"coupon_amount", "transaction_minimum"})
    lo, hi = COUPON_AMOUNT_RANGE
    amount = fixed.integer("coupon_amount", required=True, lo=lo, hi=hi)
    minimum = fixed.integer("transaction_minimum", required=True, lo=0)
    assert amount is not None and minimum is not None
    if minimum <= amount:
        fail(fixed.at("transaction_minimum"), "使用门槛必须大于优惠金额", minimum)
    rule.strings("goods_tag", required=False, max_items=50, max_len=128, pattern=_GOODS_TAG)
    limit_pay = rule.strings("limit_pay", required=False, max_items=1, max_len=32)
    card = rule.obj("limit_card", required=False)
    if card is not None:
        if strict:
            card.only({"name", "bin"})
        card.string("name", required=True, max_len=4)
        card.strings("bin", required=True, max_items=10, pattern=re.compile(r"[0-9]{6,9}"))
        if limit_pay is None:
            fail(rule.at("limit_card"), "指定银行卡BIN需同时指定付款方式limit_pay")
    rule.strings("trade_type", required=False, max_items=len(TRADE_TYPES), values=TRADE_TYPES)
    rule.boolean("combine_use", required=False)
    rule.strings("available_items", required=False, max_items=50, max_len=128)
    rule.strings("unavailable_items", required=False, max_items=50, max_len=128)
    rule.strings("available_merchants", required=False, max_items=50, max_len=20, pattern=_DIGITS)
    return amount


def _check_available_time(rule: Obj, strict: bool) -> None:
    # "该字段暂未开放" in the docs; checked for shape only.
    available = rule.obj("coupon_available_time", required=False)
    if available is None:
        return
    if strict:
        available.only(
            {"fix_available_time", "second_day_available", "available_time_after_receive"}
        )
    fix = available.obj("fix_available_time", required=False)
    if fix is not None:
        if strict:
            fix.only({"available_week_day", "begin_time", "end_time"})
        fix.integers("available_week_day", required=False, max_items=7, lo=0, hi=6)
        fix.integer("begin_time", required=False, lo=0, hi=86399)
        fix.integer("end_time", required=False, lo=0, hi=86399)
    available.boolean("second_day_available", required=False)
    available.integer("available_time_after_receive", required=False, lo=1)
