"""商家券 (busifavor) endpoints: create/detail shapes, validation, modify, budget, reuse."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.emulator import DemoMerchant, Emulator
from reconciler.emulator.samples import DAY, busifavor_create_body
from reconciler.emulator.timefmt import format_time
from tests.emulator_support import MCHID, NOW, Call, Clock

STOCKS = "/v3/marketing/busifavor/stocks"


@pytest.fixture
def stock_id(call: Call) -> str:
    response = call("POST", STOCKS, busifavor_create_body(MCHID, NOW, "busi-1"))
    assert response.status_code == 200
    return str(response.json()["stock_id"])


def view(call: Call, stock_id: str) -> dict[str, Any]:
    response = call("GET", f"{STOCKS}/{stock_id}")
    assert response.status_code == 200
    return dict(response.json())


# --- create and detail ---------------------------------------------------------------------------


def test_create_and_detail_echo_the_body(call: Call, emu: Emulator) -> None:
    body = busifavor_create_body(MCHID, NOW, "busi-1")
    created = call("POST", STOCKS, body)
    assert created.json() == {"stock_id": "10000001", "create_time": format_time(NOW)}
    expected = copy.deepcopy(body)
    del expected["out_request_no"]
    # The merchant registered no name: WeChat Pay fills in its short name (detail_fields).
    expected["display_pattern_info"]["merchant_name"] = "测试商户0001"
    expected.update(
        stock_state="RUNNING",
        stock_id="10000001",
        send_count_information={
            "total_send_num": 0,
            "total_send_amount": 0,
            "today_send_num": 0,
            "today_send_amount": 0,
        },
    )
    assert view(call, "10000001") == expected
    assert emu.stocks["10000001"].out_request_no == "busi-1"


def test_initial_state_and_upload_counts(call: Call, emu: Emulator) -> None:
    emu.settings.busifavor_initial_state = "UNAUDIT"
    body = busifavor_create_body(MCHID, NOW, "busi-1")
    body["coupon_code_mode"] = "MERCHANT_UPLOAD"
    stock_id = call("POST", STOCKS, body).json()["stock_id"]
    shown = view(call, stock_id)
    assert shown["stock_state"] == "UNAUDIT"
    assert shown["coupon_code_count"] == {"total_count": 0, "available_count": 0}


@pytest.mark.parametrize(
    ("stock_type", "coupon"),
    [
        ("DISCOUNT", {"discount_percent": 88, "transaction_minimum": 100}),
        ("EXCHANGE", {"exchange_price": 100, "transaction_minimum": 100}),
    ],
)
def test_other_coupon_kinds(call: Call, stock_type: str, coupon: dict[str, int]) -> None:
    body = busifavor_create_body(MCHID, NOW, "busi-1")
    body["stock_type"] = stock_type
    rule = body["coupon_use_rule"]
    del rule["fixed_normal_coupon"]
    rule[{"DISCOUNT": "discount_coupon", "EXCHANGE": "exchange_coupon"}[stock_type]] = coupon
    assert call("POST", STOCKS, body).status_code == 200


def test_unknown_and_foreign_stocks(call: Call, other: DemoMerchant, stock_id: str) -> None:
    assert call("GET", f"{STOCKS}/10009999").json() == {
        "code": "RESOURCE_NOT_EXISTS",
        "message": "批次不存在",
    }
    denied = call("GET", f"{STOCKS}/{stock_id}", who=other)
    assert (denied.status_code, denied.json()["code"]) == (403, "NO_AUTH")


def _change(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node = body
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return apply


TIME = "/coupon_use_rule/coupon_available_time"
INVALID = [
    ("/stock_name", _change("/stock_name", "名" * 22)),
    ("/belong_merchant", _change("/belong_merchant", "1900000002")),
    ("/goods_name", _change("/goods_name", None)),
    ("/stock_type", _change("/stock_type", "RANDOM")),
    (
        "/coupon_use_rule/discount_coupon",
        _change(
            "/coupon_use_rule/discount_coupon", {"discount_percent": 88, "transaction_minimum": 1}
        ),
    ),
    ("/coupon_use_rule/fixed_normal_coupon", _change("/coupon_use_rule/fixed_normal_coupon", None)),
    (
        "/coupon_use_rule/fixed_normal_coupon/discount_amount",
        _change("/coupon_use_rule/fixed_normal_coupon/discount_amount", 0),
    ),
    (
        "/coupon_use_rule/fixed_normal_coupon/coupon_amount",
        _change("/coupon_use_rule/fixed_normal_coupon/coupon_amount", 5),
    ),
    (
        f"{TIME}/available_end_time",
        _change(f"{TIME}/available_end_time", format_time(NOW + 3600 + 366 * DAY)),
    ),
    (f"{TIME}/available_end_time", _change(f"{TIME}/available_end_time", format_time(NOW))),
    (f"{TIME}/available_begin_time", _change(f"{TIME}/available_begin_time", "tomorrow")),
    (f"{TIME}/wait_days_after_receive", _change(f"{TIME}/available_day_after_receive", None)),
    (f"{TIME}/wait_days_after_receive", _change(f"{TIME}/wait_days_after_receive", 31)),
    (f"{TIME}/irregular_available_time", _change(f"{TIME}/irregular_available_time", [])),
    (
        f"{TIME}/available_week/available_day_time",
        _change(
            f"{TIME}/available_week", {"available_day_time": [{"begin_time": 0, "end_time": 1}] * 3}
        ),
    ),
    ("/coupon_use_rule/use_method", _change("/coupon_use_rule/use_method", "ONLINE")),
    (
        "/coupon_use_rule/mini_programs_appid",
        _change("/coupon_use_rule/use_method", "MINI_PROGRAMS"),
    ),
    ("/stock_send_rule/max_coupons", _change("/stock_send_rule/max_coupons", None)),
    (
        "/stock_send_rule/max_coupons_per_user",
        _change("/stock_send_rule/max_coupons_per_user", 101),
    ),
    ("/stock_send_rule/max_coupons_by_day", _change("/stock_send_rule/max_coupons_by_day", 101)),
    ("/out_request_no", _change("/out_request_no", None)),
    (
        "/display_pattern_info/background_color",
        _change("/display_pattern_info/background_color", "COLOR020"),
    ),
    ("/custom_entrance/code_display_mode", _change("/custom_entrance/code_display_mode", "QR")),
    (
        "/custom_entrance/mini_programs_info/entrance_words",
        _change(
            "/custom_entrance/mini_programs_info",
            {"mini_programs_appid": "wx1", "mini_programs_path": "/p"},
        ),
    ),
    ("/coupon_code_mode", _change("/coupon_code_mode", "RANDOM")),
    ("/subsidy", _change("/subsidy", "no")),
]


@pytest.mark.parametrize(
    ("pointer", "change"), INVALID, ids=[f"{p}#{i}" for i, (p, _) in enumerate(INVALID)]
)
def test_invalid_create_bodies(
    call: Call, emu: Emulator, pointer: str, change: Callable[[dict[str, Any]], None]
) -> None:
    body = busifavor_create_body(MCHID, NOW, "busi-bad")
    change(body)
    response = call("POST", STOCKS, body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "PARAM_ERROR"
    assert (error["detail"]["field"], error["detail"]["location"]) == (pointer, "body")
    assert emu.stocks == {}


# --- modify -----------------------------------------------------------------------------------


def modify(call: Call, stock_id: str, body: dict[str, Any]) -> httpx.Response:
    return call("PATCH", f"{STOCKS}/{stock_id}", body)


def test_modify_merges_the_changeable_fields(call: Call, stock_id: str) -> None:
    response = modify(
        call,
        stock_id,
        {
            "out_request_no": "mod-1",
            "comment": "新备注",
            "goods_name": "部分商品",
            "custom_entrance": {"appid": "wx324345hgfhfghfg"},
            "display_pattern_info": {"description": "新说明"},
            "coupon_use_rule": {
                "use_method": "MINI_PROGRAMS",
                "mini_programs_appid": "wx23232232323",
                "mini_programs_path": "/pages/index",
            },
            "stock_send_rule": {"prevent_api_abuse": True},
            "notify_config": {"notify_appid": "wx999"},
            "subsidy": True,
            "stock_name": "商家满减券",  # unchanged: accepted
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    shown = view(call, stock_id)
    assert shown["comment"] == "新备注"
    assert shown["goods_name"] == "部分商品"
    assert shown["custom_entrance"] == {
        "hall_id": "233455656",
        "code_display_mode": "BARCODE",
        "appid": "wx324345hgfhfghfg",
    }
    assert shown["display_pattern_info"] == {
        "description": "新说明",
        "background_color": "Color020",
        "merchant_name": "测试商户0001",
    }
    assert shown["coupon_use_rule"]["use_method"] == "MINI_PROGRAMS"
    assert shown["coupon_use_rule"]["fixed_normal_coupon"]["discount_amount"] == 500
    assert shown["stock_send_rule"]["prevent_api_abuse"] is True
    assert shown["notify_config"] == {"notify_appid": "wx999"}
    assert shown["subsidy"] is True


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"stock_type": "DISCOUNT"}, "/stock_type"),
        ({"coupon_code_mode": "MERCHANT_API"}, "/coupon_code_mode"),
        ({"belong_merchant": MCHID}, "/belong_merchant"),
        ({"stock_name": "新名字"}, "/stock_name"),
        (
            {"coupon_use_rule": {"coupon_available_time": {}}},
            "/coupon_use_rule/coupon_available_time",
        ),
        (
            {"coupon_use_rule": {"fixed_normal_coupon": {"discount_amount": 1}}},
            "/coupon_use_rule/fixed_normal_coupon",
        ),
        (
            {"coupon_use_rule": {"use_method": "MINI_PROGRAMS"}},
            "/coupon_use_rule/mini_programs_appid",
        ),
        ({"stock_send_rule": {"max_coupons_per_user": 1}}, "/stock_send_rule/max_coupons_per_user"),
        (
            {"stock_send_rule": {"natural_person_limit": True}},
            "/stock_send_rule/natural_person_limit",
        ),
        ({"custom_entrance": {"store_id": "1"}}, "/custom_entrance/store_id"),
        (
            {"display_pattern_info": {"merchant_name": "别的名字"}},
            "/display_pattern_info/merchant_name",
        ),
        ({"comment": "注" * 21}, "/comment"),
    ],
)
def test_modify_refuses_what_cannot_change(
    call: Call, stock_id: str, change: dict[str, Any], pointer: str
) -> None:
    before = view(call, stock_id)
    response = modify(call, stock_id, {"out_request_no": "mod-x", **change})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAM_ERROR"
    assert response.json()["detail"]["field"] == pointer
    assert view(call, stock_id) == before


def test_modify_needs_its_own_request_number(call: Call, stock_id: str) -> None:
    response = modify(call, stock_id, {"comment": "x"})
    assert response.json()["detail"]["field"] == "/out_request_no"


def test_subsidy_only_goes_from_false_to_true(call: Call, stock_id: str) -> None:
    assert modify(call, stock_id, {"out_request_no": "m1", "subsidy": True}).status_code == 204
    back = modify(call, stock_id, {"out_request_no": "m2", "subsidy": False})
    assert back.json()["detail"]["field"] == "/subsidy"


def test_modify_after_the_validity_end_is_refused(call: Call, clock: Clock, stock_id: str) -> None:
    clock.now += 3600 + 30 * DAY
    response = modify(call, stock_id, {"out_request_no": "m1", "comment": "late"})
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")


def test_modify_request_number_reuse(call: Call, emu: Emulator, stock_id: str) -> None:
    body = {"out_request_no": "m1", "comment": "one"}
    assert modify(call, stock_id, body).status_code == 204
    assert modify(call, stock_id, body).status_code == 204
    clash = modify(call, stock_id, {"out_request_no": "m1", "comment": "two"})
    assert clash.json()["code"] == "INVALID_REQUEST"
    assert view(call, stock_id)["comment"] == "one"
    emu.settings.out_request_no_reuse = "reject"
    assert modify(call, stock_id, body).json()["code"] == "RESOURCE_ALREADY_EXISTS"


def test_modify_checks_stock_and_owner(call: Call, other: DemoMerchant, stock_id: str) -> None:
    assert modify(call, "10009999", {"out_request_no": "m"}).status_code == 404
    denied = call("PATCH", f"{STOCKS}/{stock_id}", {"out_request_no": "m"}, who=other)
    assert denied.status_code == 403


# --- budget -----------------------------------------------------------------------------------


def budget(call: Call, stock_id: str, body: dict[str, Any]) -> httpx.Response:
    return call("PATCH", f"{STOCKS}/{stock_id}/budget", body)


def test_budget_changes_the_total(call: Call, stock_id: str) -> None:
    response = budget(
        call,
        stock_id,
        {"modify_budget_request_no": "b1", "target_max_coupons": 200, "current_max_coupons": 100},
    )
    assert response.status_code == 200
    assert response.json() == {"max_coupons": 200, "max_coupons_by_day": 50}
    assert view(call, stock_id)["stock_send_rule"]["max_coupons"] == 200


def test_budget_changes_the_daily_cap(call: Call, stock_id: str) -> None:
    response = budget(
        call,
        stock_id,
        {
            "modify_budget_request_no": "b1",
            "target_max_coupons_by_day": 80,
            "current_max_coupons_by_day": 50,
        },
    )
    assert response.json() == {"max_coupons": 100, "max_coupons_by_day": 80}


def test_budget_current_value_must_match(call: Call, stock_id: str) -> None:
    response = budget(
        call,
        stock_id,
        {"modify_budget_request_no": "b1", "target_max_coupons": 200, "current_max_coupons": 99},
    )
    assert response.status_code == 400
    assert response.json()["message"] == "批次库存的当前值错误,请获取批次详情查看最新值"
    assert response.json()["detail"]["field"] == "/current_max_coupons"
    assert view(call, stock_id)["stock_send_rule"]["max_coupons"] == 100


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (
            {
                "target_max_coupons": 200,
                "current_max_coupons": 100,
                "target_max_coupons_by_day": 60,
                "current_max_coupons_by_day": 50,
            },
            "/target_max_coupons_by_day",
        ),
        ({}, "/target_max_coupons"),
        ({"target_max_coupons": 200}, "/current_max_coupons"),
        ({"target_max_coupons_by_day": 60}, "/current_max_coupons_by_day"),
        (
            {"target_max_coupons_by_day": 101, "current_max_coupons_by_day": 50},
            "/target_max_coupons_by_day",
        ),
        ({"target_max_coupons": "200", "current_max_coupons": 100}, "/target_max_coupons"),
        ({"target_max_coupons": 200, "current_max_coupons": 100, "max_coupons": 1}, "/max_coupons"),
    ],
)
def test_budget_body_errors(call: Call, stock_id: str, body: dict[str, Any], pointer: str) -> None:
    response = budget(call, stock_id, {"modify_budget_request_no": "b1", **body})
    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")
    assert response.json()["detail"]["field"] == pointer


def test_budget_needs_its_request_number(call: Call, stock_id: str) -> None:
    response = budget(call, stock_id, {"target_max_coupons": 200, "current_max_coupons": 100})
    assert response.json()["detail"]["field"] == "/modify_budget_request_no"


def test_budget_replay_returns_the_first_answer(call: Call, emu: Emulator, stock_id: str) -> None:
    body = {"modify_budget_request_no": "b1", "target_max_coupons": 200, "current_max_coupons": 100}
    first = budget(call, stock_id, body)
    # The current value is 200 now; an idempotent replay is not checked against it again.
    again = budget(call, stock_id, body)
    assert (again.status_code, again.json()) == (200, first.json())
    emu.settings.out_request_no_reuse = "reject"
    assert budget(call, stock_id, body).json()["code"] == "RESOURCE_ALREADY_EXISTS"


def test_budget_after_the_validity_end(call: Call, clock: Clock, stock_id: str) -> None:
    clock.now += 3600 + 30 * DAY
    body = {"modify_budget_request_no": "b1", "target_max_coupons": 200, "current_max_coupons": 100}
    assert budget(call, stock_id, body).json()["code"] == "INVALID_REQUEST"


# --- create reuse -------------------------------------------------------------------------------


def test_create_reuse_modes(call: Call, emu: Emulator) -> None:
    body = busifavor_create_body(MCHID, NOW, "busi-same")
    first = call("POST", STOCKS, body)
    assert call("POST", STOCKS, body).json() == first.json()
    changed = copy.deepcopy(body)
    changed["goods_name"] = "别的商品"
    assert call("POST", STOCKS, changed).json()["code"] == "INVALID_REQUEST"
    emu.settings.out_request_no_reuse = "reject"
    assert call("POST", STOCKS, body).json() == {
        "code": "RESOURCE_ALREADY_EXISTS",
        "message": "批次已存在",
    }
    assert len(emu.stocks) == 1
