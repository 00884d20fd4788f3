"""Detail responses follow the official SDK models field by field (docs/emulator.md): a field
the model marks required is always there; an optional one only under its documented condition,
or only when it was given. And the 商家券 brand fields that WeChat Pay fills in are filled in,
without reconciler taking them for drift.

The models: wechatpay-apiv3/wechatpay-go at 6dbd7ce, services/cashcoupons/models.go (`Stock`,
`StockUseRule`) and services/merchantexclusivecoupon/models.go (`StockGetResponse`,
`SendCount`, `DisplayPatternInfo`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import DemoMerchant, Emulator
from reconciler.emulator.samples import busifavor_create_body, favor_create_body
from reconciler.kinds import kind_of
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    Workspace,
    copy_stocks,
    demo_merchant,
    edit_stock,
    make_workspace,
)
from tests.emulator_support import NOW, Call

FAVOR = "/v3/marketing/favor"
BUSIFAVOR = "/v3/marketing/busifavor/stocks"
LOGO = "https://wxpaylogo.qpic.cn/wxpaylogo/emulator/latte.png"

# Stock: required fields, and the optional ones with their condition.
FAVOR_REQUIRED = {
    "stock_id", "stock_creator_mchid", "stock_name", "status", "create_time", "description",
    "available_begin_time", "available_end_time", "distributed_coupons", "no_cash",
    "singleitem", "stock_type",
}  # fmt: skip
FAVOR_USE_RULE_REQUIRED = {"max_coupons", "max_amount", "max_amount_by_day", "max_coupons_per_user"}
# StockGetResponse: required fields.
BUSIFAVOR_REQUIRED = {
    "stock_name", "belong_merchant", "goods_name", "stock_type", "coupon_use_rule",
    "stock_send_rule", "stock_state", "coupon_code_mode", "stock_id",
}  # fmt: skip


def favor_detail(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    created = call("POST", f"{FAVOR}/coupon-stocks", body)
    assert created.status_code == 200, created.json()
    stock_id = created.json()["stock_id"]
    shown = call("GET", f"{FAVOR}/stocks/{stock_id}?stock_creator_mchid={MCHID}")
    assert shown.status_code == 200
    return dict(shown.json())


def busifavor_detail(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    created = call("POST", BUSIFAVOR, body)
    assert created.status_code == 200, created.json()
    shown = call("GET", f"{BUSIFAVOR}/{created.json()['stock_id']}")
    assert shown.status_code == 200
    return dict(shown.json())


def minimal_favor() -> dict[str, Any]:
    body = favor_create_body(MCHID, NOW, "fav-min")
    del body["pattern_info"], body["comment"], body["stock_use_rule"]["max_amount_by_day"]
    body["coupon_use_rule"] = {
        "fixed_normal_coupon": {"coupon_amount": 500, "transaction_minimum": 1000},
        "available_merchants": [MCHID],
    }
    return body


def minimal_busifavor(stock_type: str = "NORMAL") -> dict[str, Any]:
    body = busifavor_create_body(MCHID, NOW, f"busi-{stock_type}")
    for key in ("comment", "custom_entrance", "display_pattern_info", "notify_config"):
        del body[key]
    body["stock_send_rule"] = {"max_coupons": 100, "max_coupons_per_user": 1}
    body["stock_type"] = stock_type
    rule = body["coupon_use_rule"]
    del rule["fixed_normal_coupon"]
    rule[{"NORMAL": "fixed_normal_coupon", "DISCOUNT": "discount_coupon"}.get(
        stock_type, "exchange_coupon"
    )] = {
        "NORMAL": {"discount_amount": 500, "transaction_minimum": 1000},
        "DISCOUNT": {"discount_percent": 88, "transaction_minimum": 100},
        "EXCHANGE": {"exchange_price": 100, "transaction_minimum": 100},
    }[stock_type]  # fmt: skip
    return body


# --- 代金券: Stock and StockUseRule ------------------------------------------------------------


def test_favor_required_fields_are_always_present(call: Call) -> None:
    minimal = favor_detail(call, minimal_favor())
    assert set(minimal) == FAVOR_REQUIRED | {"stock_use_rule"}
    assert minimal["description"] == "" and minimal["singleitem"] is False
    rule = minimal["stock_use_rule"]
    # StockUseRule.max_amount_by_day is required: without a daily cap it reads max_amount.
    assert set(rule) == FAVOR_USE_RULE_REQUIRED | {"fixed_normal_coupon", "coupon_type"}
    assert rule["max_amount_by_day"] == rule["max_amount"] == 50000


def test_favor_optional_use_rule_fields_only_when_given(call: Call) -> None:
    full = favor_detail(call, favor_create_body(MCHID, NOW, "fav-full"))
    rule = full["stock_use_rule"]
    assert rule["max_amount_by_day"] == 10000
    assert (rule["goods_tag"], rule["trade_type"], rule["combine_use"]) == (
        ["spring_sale"],
        ["MICROAPP", "APPPAY"],
        False,
    )
    # A fixed-amount (NORMAL) stock carries fixed_normal_coupon and coupon_type NORMAL.
    assert rule["coupon_type"] == "NORMAL"
    assert rule["fixed_normal_coupon"] == {"coupon_amount": 500, "transaction_minimum": 1000}
    minimal = favor_detail(call, minimal_favor())["stock_use_rule"]
    assert not {"goods_tag", "trade_type", "combine_use"} & set(minimal)


def test_favor_start_and_stop_times_appear_when_they_happen(call: Call) -> None:
    started = favor_detail(call, minimal_favor())
    stopped = favor_detail(call, favor_create_body(MCHID, NOW, "fav-stop"))
    assert not {"start_time", "stop_time", "cut_to_message", "card_id"} & set(started)
    creator = {"stock_creator_mchid": MCHID}
    for stock_id, action in ((started["stock_id"], "start"), (stopped["stock_id"], "stop")):
        assert call("POST", f"{FAVOR}/stocks/{stock_id}/{action}", creator).status_code == 200
    target = f"?stock_creator_mchid={MCHID}"
    after_start = call("GET", f"{FAVOR}/stocks/{started['stock_id']}{target}").json()
    after_stop = call("GET", f"{FAVOR}/stocks/{stopped['stock_id']}{target}").json()
    assert "start_time" in after_start and "stop_time" not in after_start
    assert "stop_time" in after_stop and "start_time" not in after_stop
    # No 减至 (CUT_TO) stock and no card pack in the emulator: never cut_to_message, card_id.
    assert not {"cut_to_message", "card_id"} & (set(after_start) | set(after_stop))


# --- 商家券: StockGetResponse and SendCount ----------------------------------------------------


def test_busifavor_required_fields_are_always_present(call: Call) -> None:
    shown = busifavor_detail(call, minimal_busifavor())
    always = BUSIFAVOR_REQUIRED | {"send_count_information", "display_pattern_info"}
    assert set(shown) == always
    # Optional flags the create did not give are absent, not false.
    assert set(shown["stock_send_rule"]) == {"max_coupons", "max_coupons_per_user"}
    assert set(shown["coupon_use_rule"]) == {
        "coupon_available_time",
        "fixed_normal_coupon",
        "use_method",
    }


def test_busifavor_optional_fields_only_when_given(call: Call) -> None:
    body = busifavor_create_body(MCHID, NOW, "busi-full")
    body["subsidy"] = False
    body["stock_send_rule"]["transferable"] = False
    shown = busifavor_detail(call, body)
    for key in ("comment", "custom_entrance", "notify_config", "subsidy"):
        assert shown[key] == body[key]
    assert shown["stock_send_rule"] == body["stock_send_rule"]
    assert "coupon_code_count" not in shown


def test_busifavor_code_count_only_for_uploaded_codes(call: Call) -> None:
    body = minimal_busifavor()
    body["coupon_code_mode"] = "MERCHANT_UPLOAD"
    assert busifavor_detail(call, body)["coupon_code_count"] == {
        "total_count": 0,
        "available_count": 0,
    }


@pytest.mark.parametrize(
    ("stock_type", "daily", "counters"),
    [
        ("NORMAL", False, {"total_send_num", "total_send_amount"}),
        (
            "NORMAL",
            True,
            {"total_send_num", "total_send_amount", "today_send_num", "today_send_amount"},
        ),
        ("DISCOUNT", False, {"total_send_num"}),
        ("DISCOUNT", True, {"total_send_num", "today_send_num"}),
        ("EXCHANGE", False, {"total_send_num"}),
        ("EXCHANGE", True, {"total_send_num", "today_send_num"}),
    ],
)
def test_send_counters_follow_their_documented_conditions(
    call: Call, stock_type: str, daily: bool, counters: set[str]
) -> None:
    body = minimal_busifavor(stock_type)
    if daily:
        body["stock_send_rule"]["max_coupons_by_day"] = 10
    sent = busifavor_detail(call, body)["send_count_information"]
    assert sent == dict.fromkeys(counters, 0)


def test_a_daily_cap_set_later_brings_the_daily_counters(call: Call) -> None:
    stock_id = call("POST", BUSIFAVOR, minimal_busifavor()).json()["stock_id"]
    budget = {
        "target_max_coupons_by_day": 20,
        "current_max_coupons_by_day": 0,
        "modify_budget_request_no": "budget-1",
    }
    assert call("PATCH", f"{BUSIFAVOR}/{stock_id}/budget", budget).status_code == 200
    sent = call("GET", f"{BUSIFAVOR}/{stock_id}").json()["send_count_information"]
    assert set(sent) == {
        "total_send_num",
        "total_send_amount",
        "today_send_num",
        "today_send_amount",
    }


# --- the brand name and logo WeChat Pay fills in ------------------------------------------------


def register_brand(emu: Emulator, merchant: DemoMerchant) -> None:
    emu.register_merchant(
        merchant.mchid,
        merchant.serial_no,
        merchant.public_key,
        merchant.apiv3_key,
        name="拿铁工坊",
        logo_url=LOGO,
    )


def test_brand_name_and_logo_are_filled_when_omitted(
    call: Call, emu: Emulator, merchant: DemoMerchant
) -> None:
    # Registered without a name or logo: the short name, and no logo (the grey placeholder).
    plain = busifavor_detail(call, minimal_busifavor())
    assert plain["display_pattern_info"] == {"merchant_name": "测试商户0001"}
    register_brand(emu, merchant)
    body = busifavor_create_body(MCHID, NOW, "busi-brand")
    assert busifavor_detail(call, body)["display_pattern_info"] == {
        **body["display_pattern_info"],
        "merchant_name": "拿铁工坊",
        "merchant_logo_url": LOGO,
    }
    given = copy.deepcopy(body)
    given["out_request_no"] = "busi-given"
    given["display_pattern_info"].update(merchant_name="自填名称", merchant_logo_url=LOGO + "?x")
    kept = busifavor_detail(call, given)["display_pattern_info"]
    assert (kept["merchant_name"], kept["merchant_logo_url"]) == ("自填名称", LOGO + "?x")


def test_echoing_the_filled_brand_in_a_modify_is_no_change(
    call: Call, emu: Emulator, merchant: DemoMerchant
) -> None:
    register_brand(emu, merchant)
    stock_id = call("POST", BUSIFAVOR, minimal_busifavor()).json()["stock_id"]
    display = call("GET", f"{BUSIFAVOR}/{stock_id}").json()["display_pattern_info"]
    echo = {"out_request_no": "mod-echo", "display_pattern_info": {**display, "description": "新"}}
    assert call("PATCH", f"{BUSIFAVOR}/{stock_id}", echo).status_code == 204
    other = {"out_request_no": "mod-name", "display_pattern_info": {"merchant_name": "别的"}}
    refused = call("PATCH", f"{BUSIFAVOR}/{stock_id}", other)
    assert refused.json()["detail"]["field"] == "/display_pattern_info/merchant_name"


def test_drift_ignores_what_the_file_omitted_and_sees_what_it_gave(
    call: Call, emu: Emulator, merchant: DemoMerchant
) -> None:
    register_brand(emu, merchant)
    kind = kind_of("busifavor")
    omitted = minimal_busifavor()
    shown = busifavor_detail(call, omitted)
    assert shown["display_pattern_info"]["merchant_name"] == "拿铁工坊"
    assert kind.drifted(omitted, shown) == []
    assert kind.matches(omitted, shown)
    # The control: a value the file gave, shown differently, is drift.
    gave = copy.deepcopy(omitted)
    gave["display_pattern_info"] = {"merchant_name": "文件里的名字"}
    (change,) = kind.drifted(gave, shown)
    assert (change.path, change.before, change.after) == (
        "display_pattern_info.merchant_name",
        "拿铁工坊",
        "文件里的名字",
    )


@pytest.fixture
def branded(tmp_path: Path) -> Iterator[tuple[Workspace, LocalEmulator]]:
    ws = make_workspace(tmp_path / "project")
    copy_stocks(ws.stocks_dir, kinds=("busifavor",))
    with LocalEmulator(ws) as local:
        register_brand(local.emu, demo_merchant(MCHID))
        yield ws, local


def test_plan_after_apply_shows_no_drift_for_system_filled_fields(
    branded: tuple[Workspace, LocalEmulator],
) -> None:
    ws, local = branded
    edit_stock(
        ws.stock_file("member-day-latte-8-off"),
        lambda data: data["spec"].pop("display_pattern_info"),
    )
    assert ws.cli("apply", "--yes").exit_code == 0
    filled = [s.body.get("display_pattern_info") for s in local.stocks.values()]
    assert filled and all(d is None or "merchant_name" not in d for d in filled)
    local.emu.clear_request_log()
    plan = ws.cli("plan", "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 0, str(plan)
    # The plan read both stocks back, and each detail carried the filled brand.
    assert [e.endpoint for e in local.emu.request_log] == ["busifavor.detail"] * 2
    assert {c["action"] for c in plan.json()["changes"]} == {"no-op"}
