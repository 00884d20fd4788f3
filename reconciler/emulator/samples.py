"""Valid create bodies for the emulator: a starting point for demos, tests and benchmarks."""

from __future__ import annotations

from typing import Any

from reconciler.emulator.timefmt import format_time

DAY = 86400


def favor_create_body(mchid: str, now: float, out_request_no: str) -> dict[str, Any]:
    """A 代金券 create body that passes every documented rule at emulator time `now`."""
    begin = now + 3600
    return {
        "stock_name": "春季满减券",
        "comment": "emulator sample",
        "belong_merchant": mchid,
        "available_begin_time": format_time(begin),
        "available_end_time": format_time(begin + 30 * DAY),
        "stock_use_rule": {
            "max_coupons": 100,
            "max_amount": 50000,
            "max_amount_by_day": 10000,
            "max_coupons_per_user": 3,
            "natural_person_limit": False,
            "prevent_api_abuse": False,
        },
        "pattern_info": {
            "description": "满10元减5元",
            "merchant_name": "示例商户",
            "background_color": "COLOR020",
        },
        "coupon_use_rule": {
            "fixed_normal_coupon": {"coupon_amount": 500, "transaction_minimum": 1000},
            "goods_tag": ["spring_sale"],
            "trade_type": ["MICROAPP", "APPPAY"],
            "combine_use": False,
            "available_merchants": [mchid],
        },
        "no_cash": False,
        "stock_type": "NORMAL",
        "out_request_no": out_request_no,
    }


def busifavor_create_body(mchid: str, now: float, out_request_no: str) -> dict[str, Any]:
    """A 商家券 NORMAL create body that passes every documented rule."""
    begin = now + 3600
    return {
        "stock_name": "商家满减券",
        "belong_merchant": mchid,
        "comment": "emulator sample",
        "goods_name": "全场通用",
        "stock_type": "NORMAL",
        "coupon_use_rule": {
            "coupon_available_time": {
                "available_begin_time": format_time(begin),
                "available_end_time": format_time(begin + 30 * DAY),
                "available_day_after_receive": 7,
                "wait_days_after_receive": 1,
            },
            "fixed_normal_coupon": {"discount_amount": 500, "transaction_minimum": 1000},
            "use_method": "OFF_LINE",
        },
        "stock_send_rule": {
            "max_coupons": 100,
            "max_coupons_per_user": 2,
            "max_coupons_by_day": 50,
            "natural_person_limit": False,
            "prevent_api_abuse": False,
        },
        "custom_entrance": {"hall_id": "233455656", "code_display_mode": "BARCODE"},
        "display_pattern_info": {"description": "全场可用", "background_color": "Color020"},
        "coupon_code_mode": "WECHATPAY_MODE",
        "notify_config": {"notify_appid": "wx23232232323"},
        "out_request_no": out_request_no,
    }
