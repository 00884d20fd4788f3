"""Server-side rules for 商家券 (busifavor) modify and budget bodies (reference §2.3, §2.4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from reconciler.emulator.checks import REQUEST_NO, Obj, fail
from reconciler.emulator.validate_busifavor import (
    MAX_COUNT,
    NOT_CHANGEABLE,
    check_display,
    check_entrance,
    check_notify,
    check_use_method,
    unchanged,
)

MODIFY_FIELDS = frozenset(
    {
        "out_request_no",
        "custom_entrance",
        "stock_name",
        "comment",
        "goods_name",
        "display_pattern_info",
        "coupon_use_rule",
        "stock_send_rule",
        "notify_config",
        "subsidy",
    }
)


def validate_busifavor_modify(body: object, *, current: dict[str, Any]) -> Obj:
    """Only the documented changeable fields; unknown or unchangeable ones are PARAM_ERROR."""
    root = Obj.root(body)
    root.only(MODIFY_FIELDS, NOT_CHANGEABLE)
    root.string("out_request_no", required=True, max_len=128, pattern=REQUEST_NO)
    unchanged(root, "stock_name", current.get("stock_name"))
    root.string("comment", required=False, max_len=20)
    root.string("goods_name", required=False, max_len=15)
    check_entrance(root.obj("custom_entrance", required=False), True, modify=True)
    check_display(
        root.obj("display_pattern_info", required=False),
        True,
        current=current.get("display_pattern_info") or {},
    )
    rule = root.obj("coupon_use_rule", required=False)
    if rule is not None:
        rule.only({"use_method", "mini_programs_appid", "mini_programs_path"}, NOT_CHANGEABLE)
        merged = {**current["coupon_use_rule"], **rule.data}
        check_use_method(rule, required=False, merged=merged)
    send = root.obj("stock_send_rule", required=False)
    if send is not None:
        send.only({"prevent_api_abuse", "natural_person_limit"}, NOT_CHANGEABLE)
        send.boolean("prevent_api_abuse", required=False)
        send.boolean("natural_person_limit", required=False)
        rule_now = current["stock_send_rule"]
        unchanged(send, "natural_person_limit", rule_now.get("natural_person_limit", False))
    check_notify(root, True)
    subsidy = root.boolean("subsidy", required=False)
    if subsidy is False and current.get("subsidy") is True:
        fail("/subsidy", "subsidy仅支持由false修改为true", False)
    return root


@dataclass(frozen=True)
class BudgetChange:
    request_no: str
    field: Literal["max_coupons", "max_coupons_by_day"]
    target: int
    current: int
    current_pointer: str


def validate_budget(body: object) -> BudgetChange:
    """Exactly one of the two targets (0 counts as not given), with its current value."""
    root = Obj.root(body)
    root.only(
        {
            "target_max_coupons",
            "current_max_coupons",
            "target_max_coupons_by_day",
            "current_max_coupons_by_day",
            "modify_budget_request_no",
        }
    )
    number = root.string("modify_budget_request_no", required=True, max_len=128, pattern=REQUEST_NO)
    assert number is not None
    total = root.integer("target_max_coupons", required=False, lo=0, hi=MAX_COUNT) or None
    daily = root.integer("target_max_coupons_by_day", required=False, lo=0, hi=MAX_COUNT) or None
    if total is not None and daily is not None:
        fail(
            "/target_max_coupons_by_day",
            "target_max_coupons与target_max_coupons_by_day每次只能修改其中一个",
        )
    if total is not None:
        current = root.integer("current_max_coupons", required=True, lo=0)
        assert current is not None
        return BudgetChange(number, "max_coupons", total, current, "/current_max_coupons")
    if daily is not None:
        current = root.integer("current_max_coupons_by_day", required=True, lo=0)
        assert current is not None
        return BudgetChange(
            number, "max_coupons_by_day", daily, current, "/current_max_coupons_by_day"
        )
    fail("/target_max_coupons", "target_max_coupons与target_max_coupons_by_day必须填写其中一个")
