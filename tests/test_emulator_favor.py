"""代金券 (favor) endpoints: shapes, validation pointers, list paging, transitions, reuse."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.emulator import DemoMerchant, Emulator
from reconciler.emulator.samples import DAY, busifavor_create_body, favor_create_body
from reconciler.emulator.timefmt import format_time
from tests.emulator_support import MCHID, NOW, Call, Clock

CREATE = "/v3/marketing/favor/coupon-stocks"


def create(call: Call, number: str = "fav-1", now: float = NOW, **changes: Any) -> httpx.Response:
    body = favor_create_body(MCHID, now, number)
    body.update(changes)
    return call("POST", CREATE, body)


def detail(call: Call, stock_id: str, creator: str = MCHID) -> httpx.Response:
    return call("GET", f"/v3/marketing/favor/stocks/{stock_id}?stock_creator_mchid={creator}")


# --- create and detail ---------------------------------------------------------------------------


def test_create_answers_stock_id_and_create_time(call: Call, emu: Emulator) -> None:
    first = create(call, "fav-1")
    second = create(call, "fav-2")
    assert first.status_code == 200
    assert first.json() == {"stock_id": "10000001", "create_time": format_time(NOW)}
    assert first.json()["create_time"] == "2026-05-29T04:26:40+08:00"
    assert second.json()["stock_id"] == "10000002"
    stock = emu.stocks["10000001"]
    assert (stock.kind, stock.creator_mchid, stock.out_request_no) == ("favor", MCHID, "fav-1")


def test_detail_regroups_the_create_body(call: Call) -> None:
    body = favor_create_body(MCHID, NOW, "fav-1")
    stock_id = call("POST", CREATE, body).json()["stock_id"]
    response = detail(call, stock_id)
    assert response.status_code == 200
    assert response.json() == {
        "stock_id": stock_id,
        "stock_creator_mchid": MCHID,
        "stock_name": body["stock_name"],
        "status": "unactivated",
        "create_time": format_time(NOW),
        "description": body["pattern_info"]["description"],
        "stock_use_rule": {
            "max_coupons": 100,
            "max_amount": 50000,
            "max_amount_by_day": 10000,
            "max_coupons_per_user": 3,
            "fixed_normal_coupon": {"coupon_amount": 500, "transaction_minimum": 1000},
            "coupon_type": "NORMAL",
            "goods_tag": ["spring_sale"],
            "trade_type": ["MICROAPP", "APPPAY"],
            "combine_use": False,
        },
        "available_begin_time": body["available_begin_time"],
        "available_end_time": body["available_end_time"],
        "distributed_coupons": 0,
        "no_cash": False,
        "singleitem": False,
        "stock_type": "NORMAL",
    }


def test_detail_of_a_minimal_single_item_stock(call: Call) -> None:
    body = favor_create_body(MCHID, NOW, "fav-1")
    del body["pattern_info"], body["comment"], body["stock_use_rule"]["max_amount_by_day"]
    body["coupon_use_rule"] = {
        "fixed_normal_coupon": {"coupon_amount": 500, "transaction_minimum": 1000},
        "available_items": ["SKU1"],
    }
    stock_id = call("POST", CREATE, body).json()["stock_id"]
    view = detail(call, stock_id).json()
    assert view["description"] == ""
    assert view["singleitem"] is True
    assert set(view["stock_use_rule"]) == {
        "max_coupons",
        "max_amount",
        "max_amount_by_day",
        "max_coupons_per_user",
        "fixed_normal_coupon",
        "coupon_type",
    }


@pytest.mark.parametrize(
    ("style", "sent", "shown"),
    [
        ("as_sent", "2026-05-29T05:26:40.120+08:00", "2026-05-29T05:26:40.120+08:00"),
        ("seconds", "2026-05-28T21:26:40.120Z", "2026-05-29T05:26:40+08:00"),
        ("millis", "2026-05-29T05:26:40+08:00", "2026-05-29T05:26:40.000+08:00"),
    ],
)
def test_detail_time_format(call: Call, emu: Emulator, style: str, sent: str, shown: str) -> None:
    emu.settings.detail_time_format = style  # type: ignore[assignment]
    stock_id = create(call, available_begin_time=sent).json()["stock_id"]
    assert detail(call, stock_id).json()["available_begin_time"] == shown


def test_unknown_and_foreign_stocks(call: Call, other: DemoMerchant) -> None:
    assert detail(call, "99999999").json() == {
        "code": "RESOURCE_NOT_EXISTS",
        "message": "批次不存在",
    }
    assert detail(call, "not-a-number").status_code == 404
    busi = call("POST", "/v3/marketing/busifavor/stocks", busifavor_create_body(MCHID, NOW, "b"))
    assert detail(call, busi.json()["stock_id"]).status_code == 404
    theirs = call("POST", CREATE, favor_create_body(other.mchid, NOW, "o-1"), who=other).json()[
        "stock_id"
    ]
    # Asking for another creator's stock, or naming a creator that is not the caller.
    for response in (detail(call, theirs), detail(call, theirs, creator=other.mchid)):
        assert response.status_code == 400
        assert response.json() == {"code": "INVALID_REQUEST", "message": "非法的商户号"}
    missing = call("GET", f"/v3/marketing/favor/stocks/{theirs}")
    assert missing.status_code == 400
    assert missing.json()["detail"] == {
        "field": "stock_creator_mchid",
        "location": "query",
        "issue": "商户号必填",
    }


# --- server-side validation -----------------------------------------------------------------------


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node = body
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


_DELETE = object()

INVALID = [
    ("/stock_name", _set("/stock_name", _DELETE)),
    ("/stock_name", _set("/stock_name", "spring_sale")),
    ("/stock_name", _set("/stock_name", "十个中文字符的批次名")),
    ("/stock_name", _set("/stock_name", 12)),
    ("/belong_merchant", _set("/belong_merchant", "1900000002")),
    ("/available_begin_time", _set("/available_begin_time", format_time(NOW - 1))),
    ("/available_begin_time", _set("/available_begin_time", format_time(NOW + 366 * DAY))),
    ("/available_begin_time", _set("/available_begin_time", "2026-06-01 10:00:00")),
    ("/available_end_time", _set("/available_end_time", format_time(NOW + 3600))),
    ("/available_end_time", _set("/available_end_time", format_time(NOW + 3600 + 91 * DAY))),
    ("/stock_use_rule", _set("/stock_use_rule", _DELETE)),
    ("/stock_use_rule/max_amount", _set("/stock_use_rule/max_amount", 50001)),
    ("/stock_use_rule/max_coupons", _set("/stock_use_rule/max_coupons", 4)),
    ("/stock_use_rule/max_coupons", _set("/stock_use_rule/max_coupons", 10_000_001)),
    ("/stock_use_rule/max_coupons", _set("/stock_use_rule/max_coupons", "100")),
    ("/stock_use_rule/max_coupons", _set("/stock_use_rule/max_coupons", True)),
    ("/stock_use_rule/max_coupons", _set("/stock_use_rule/max_coupons", 100.0)),
    ("/stock_use_rule/max_amount_by_day", _set("/stock_use_rule/max_amount_by_day", 0)),
    ("/stock_use_rule/max_coupons_per_user", _set("/stock_use_rule/max_coupons_per_user", 61)),
    ("/stock_use_rule/max_coupons_per_user", _set("/stock_use_rule/max_coupons_per_user", 0)),
    ("/stock_use_rule/natural_person_limit", _set("/stock_use_rule/natural_person_limit", _DELETE)),
    ("/stock_use_rule/prevent_api_abuse", _set("/stock_use_rule/prevent_api_abuse", "false")),
    ("/pattern_info/description", _set("/pattern_info/description", _DELETE)),
    ("/pattern_info/background_color", _set("/pattern_info/background_color", "Color020")),
    ("/coupon_use_rule/fixed_normal_coupon", _set("/coupon_use_rule/fixed_normal_coupon", _DELETE)),
    (
        "/coupon_use_rule/fixed_normal_coupon/transaction_minimum",
        _set("/coupon_use_rule/fixed_normal_coupon/transaction_minimum", 500),
    ),
    ("/coupon_use_rule/goods_tag", _set("/coupon_use_rule/goods_tag", [])),
    ("/coupon_use_rule/goods_tag/0", _set("/coupon_use_rule/goods_tag", ["a-b"])),
    ("/coupon_use_rule/trade_type/1", _set("/coupon_use_rule/trade_type", ["APPPAY", "WEB"])),
    (
        "/coupon_use_rule/limit_card",
        _set("/coupon_use_rule/limit_card", {"name": "白金", "bin": ["622848"]}),
    ),
    ("/no_cash", _set("/no_cash", _DELETE)),
    ("/stock_type", _set("/stock_type", "DISCOUNT")),
    ("/out_request_no", _set("/out_request_no", "has space")),
    ("/out_request_no", _set("/out_request_no", "x" * 129)),
    ("/stock_nmae", _set("/stock_nmae", "typo")),
    ("/coupon_use_rule/availble_items", _set("/coupon_use_rule/availble_items", ["SKU"])),
]


@pytest.mark.parametrize(
    ("pointer", "change"), INVALID, ids=[f"{p}#{i}" for i, (p, _) in enumerate(INVALID)]
)
def test_invalid_bodies_get_param_error_at_the_field(
    call: Call, emu: Emulator, pointer: str, change: Callable[[dict[str, Any]], None]
) -> None:
    body = favor_create_body(MCHID, NOW, "fav-bad")
    change(body)
    response = call("POST", CREATE, body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "PARAM_ERROR"
    assert (error["detail"]["field"], error["detail"]["location"]) == (pointer, "body")
    assert error["message"]
    assert emu.stocks == {}


def test_the_budget_rule_has_the_documented_message(call: Call) -> None:
    body = favor_create_body(MCHID, NOW, "fav-1")
    body["stock_use_rule"]["max_amount"] = 49999
    assert call("POST", CREATE, body).json()["message"] == "批次预算等于批次面额乘以发券数"


def test_the_bounds_themselves_are_accepted(call: Call) -> None:
    body = favor_create_body(MCHID, NOW, "fav-1")
    body["available_begin_time"] = format_time(NOW)
    body["available_end_time"] = format_time(NOW + 90 * DAY)
    body["stock_use_rule"].update(
        max_coupons=5, max_amount=2500, max_amount_by_day=2500, max_coupons_per_user=5
    )
    body["stock_name"] = "九个中文字符的批次"
    assert call("POST", CREATE, body).status_code == 200


def test_unknown_fields_pass_when_not_strict(call: Call, emu: Emulator) -> None:
    emu.settings.reject_unknown_fields = False
    assert create(call, extra_field="ignored").status_code == 200


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"a": NaN}', b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object(
    emu: Emulator, merchant: DemoMerchant, raw: bytes
) -> None:
    request = httpx.Request(
        "POST",
        "https://api.mch.weixin.qq.com" + CREATE,
        headers={
            "Accept": "application/json",
            "User-Agent": "t",
            "Content-Type": "application/json",
        },
        content=raw,
    )
    response = emu.handle(merchant.sign(request, timestamp=NOW, nonce="N"))
    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")


# --- list -------------------------------------------------------------------------------------


def list_target(**query: str) -> str:
    params = {"stock_creator_mchid": MCHID, "offset": "0", "limit": "10", **query}
    return "/v3/marketing/favor/stocks?" + "&".join(f"{k}={v}" for k, v in params.items())


def ids(response: httpx.Response) -> list[str]:
    return [item["stock_id"] for item in response.json()["data"]]


@pytest.fixture
def five(call: Call, clock: Clock, other: DemoMerchant) -> list[str]:
    made = []
    for i in range(5):
        made.append(create(call, f"fav-{i}", now=clock.now).json()["stock_id"])
        clock.now += 100
    call("POST", CREATE, favor_create_body(other.mchid, clock.now, "o"), who=other)
    return made


def test_list_pages_by_page_number(call: Call, five: list[str]) -> None:
    first = call("GET", list_target(limit="2"))
    assert first.json()["total_count"] == 5
    assert (first.json()["limit"], first.json()["offset"]) == (2, 0)
    assert ids(first) == five[:2]
    assert ids(call("GET", list_target(limit="2", offset="1"))) == five[2:4]
    assert ids(call("GET", list_target(limit="2", offset="2"))) == five[4:]
    item = call("GET", list_target(limit="2")).json()["data"][0]
    assert item == detail(call, five[0]).json()


def test_list_pages_by_item_offset_when_set(call: Call, emu: Emulator, five: list[str]) -> None:
    emu.settings.list_offset = "item"
    assert ids(call("GET", list_target(limit="2", offset="1"))) == five[1:3]


def test_list_filters_by_encoded_create_time_and_status(call: Call, five: list[str]) -> None:
    start = format_time(NOW + 100).replace(":", "%3A").replace("+", "%2B")
    end = format_time(NOW + 300).replace(":", "%3A").replace("+", "%2B")
    window = call("GET", list_target(create_start_time=start, create_end_time=end))
    assert ids(window) == five[1:4]
    call("POST", f"/v3/marketing/favor/stocks/{five[0]}/start", {"stock_creator_mchid": MCHID})
    assert ids(call("GET", list_target(status="running"))) == five[:1]
    assert call("GET", list_target(status="unactivated")).json()["total_count"] == 4


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"limit": "11"}, "limit", "页大小超过阈值"),
        ({"limit": "0"}, "limit", "页大小超过阈值"),
        ({"offset": ""}, "offset", "offset必填"),
        ({"offset": "-1"}, "offset", "offset必须为整数"),
        # "+08:00" sent without encoding arrives as " 08:00": the doc's warning, enforced.
        (
            {"create_start_time": "2026-05-29T04:26:40+08:00"},
            "create_start_time",
            "输入时间格式错误",
        ),
        ({"status": "RUNNING"}, "status", "非法的批次状态"),
        ({"stock_creator_mchid": ""}, "stock_creator_mchid", "商户号必填"),
    ],
)
def test_list_query_errors(call: Call, query: dict[str, str], field: str, message: str) -> None:
    response = call("GET", list_target(**query))
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "PARAM_ERROR"
    assert error["message"] == message
    assert (error["detail"]["field"], error["detail"]["location"]) == (field, "query")


def test_list_for_another_creator_is_refused(call: Call) -> None:
    response = call("GET", list_target(stock_creator_mchid="1900000002"))
    assert response.json() == {"code": "INVALID_REQUEST", "message": "非法的商户号"}


# --- start / pause / restart / stop -----------------------------------------------------------------


def act(call: Call, stock_id: str, action: str, creator: str = MCHID) -> httpx.Response:
    return call(
        "POST", f"/v3/marketing/favor/stocks/{stock_id}/{action}", {"stock_creator_mchid": creator}
    )


def test_start_pause_restart_answers_and_states(call: Call, clock: Clock) -> None:
    stock_id = create(call).json()["stock_id"]
    started = act(call, stock_id, "start")
    assert started.json() == {"start_time": format_time(NOW), "stock_id": stock_id}
    clock.now += 10
    assert act(call, stock_id, "pause").json() == {
        "pause_time": format_time(NOW + 10),
        "stock_id": stock_id,
    }
    assert detail(call, stock_id).json()["status"] == "paused"
    clock.now += 10
    assert act(call, stock_id, "restart").json() == {
        "restart_time": format_time(NOW + 20),
        "stock_id": stock_id,
    }
    view = detail(call, stock_id).json()
    assert (view["status"], view["start_time"]) == ("running", format_time(NOW))
    # Start is re-entrant: a repeat answers the first activation.
    assert act(call, stock_id, "start").json() == started.json()


@pytest.mark.parametrize(
    ("before", "action", "message"),
    [
        ([], "pause", "活动已结束或未激活"),
        ([], "restart", "活动已结束或未激活"),
        (["start"], "restart", "非法的批次状态"),
        (["start"], "stop", "非法的批次状态"),
        (["start", "pause"], "pause", "非法的批次状态"),
        (["start", "pause"], "start", "非法的批次状态"),
        (["stop"], "start", "非法的批次状态"),
    ],
)
def test_transition_preconditions(call: Call, before: list[str], action: str, message: str) -> None:
    stock_id = create(call).json()["stock_id"]
    for step in before:
        assert act(call, stock_id, step).status_code == 200
    response = act(call, stock_id, action)
    assert response.status_code == 400
    assert response.json() == {"code": "INVALID_REQUEST", "message": message}


def test_stop_an_unactivated_stock(call: Call) -> None:
    stock_id = create(call).json()["stock_id"]
    assert act(call, stock_id, "stop").json() == {
        "stop_time": format_time(NOW),
        "stock_id": stock_id,
    }
    view = detail(call, stock_id).json()
    assert (view["status"], view["stop_time"]) == ("stoped", format_time(NOW))


def test_an_ended_stock_cannot_start(call: Call, clock: Clock) -> None:
    stock_id = create(call).json()["stock_id"]
    clock.now += 3600 + 30 * DAY
    assert act(call, stock_id, "start").json()["message"] == "活动已结束或未激活"


def test_transition_errors_for_stock_and_creator(call: Call) -> None:
    assert act(call, "10009999", "start").status_code == 404
    stock_id = create(call).json()["stock_id"]
    assert act(call, stock_id, "start", creator="1900000002").json()["message"] == "非法的商户号"
    missing = call("POST", f"/v3/marketing/favor/stocks/{stock_id}/start", {})
    assert missing.json()["detail"]["field"] == "/stock_creator_mchid"


# --- out_request_no reuse -----------------------------------------------------------------------


def test_idempotent_reuse_returns_the_original_stock(
    call: Call, emu: Emulator, clock: Clock
) -> None:
    body = favor_create_body(MCHID, NOW, "fav-same")
    first = call("POST", CREATE, body)
    clock.now += 2 * 3600  # the begin time has passed: a replay is still recognised
    again = call("POST", CREATE, body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert list(emu.stocks) == [first.json()["stock_id"]]


def test_idempotent_reuse_with_another_body_is_refused(call: Call, emu: Emulator) -> None:
    body = favor_create_body(MCHID, NOW, "fav-same")
    call("POST", CREATE, body)
    changed = copy.deepcopy(body)
    changed["stock_name"] = "另一个名字"
    response = call("POST", CREATE, changed)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
    assert response.json()["message"].startswith("单号已存在但信息不一致")
    assert len(emu.stocks) == 1


def test_reuse_compare_json_or_bytes(call: Call, emu: Emulator, merchant: DemoMerchant) -> None:
    body = favor_create_body(MCHID, NOW, "fav-same")
    call("POST", CREATE, body)
    reordered = json.dumps(dict(reversed(list(body.items()))), ensure_ascii=False).encode()

    def send_raw() -> httpx.Response:
        request = httpx.Request(
            "POST",
            "https://api.mch.weixin.qq.com" + CREATE,
            headers={
                "Accept": "application/json",
                "User-Agent": "t",
                "Content-Type": "application/json",
            },
            content=reordered,
        )
        return emu.handle(merchant.sign(request, timestamp=NOW, nonce="R"))

    assert send_raw().status_code == 200
    emu.settings.reuse_compare = "bytes"
    assert send_raw().json()["code"] == "INVALID_REQUEST"
    assert len(emu.stocks) == 1


def test_reject_mode_refuses_any_reuse(call: Call, emu: Emulator) -> None:
    emu.settings.out_request_no_reuse = "reject"
    body = favor_create_body(MCHID, NOW, "fav-same")
    call("POST", CREATE, body)
    response = call("POST", CREATE, body)
    assert response.status_code == 400
    assert response.json() == {"code": "RESOURCE_ALREADY_EXISTS", "message": "批次已存在"}
    assert len(emu.stocks) == 1


def test_reuse_is_scoped_per_merchant_and_kind(
    call: Call, emu: Emulator, other: DemoMerchant
) -> None:
    create(call, "shared-no")
    theirs = call("POST", CREATE, favor_create_body(other.mchid, NOW, "shared-no"), who=other)
    busi = call(
        "POST", "/v3/marketing/busifavor/stocks", busifavor_create_body(MCHID, NOW, "shared-no")
    )
    assert theirs.status_code == busi.status_code == 200
    assert len({theirs.json()["stock_id"], busi.json()["stock_id"], "10000001"}) == 3
    assert len(emu.stocks) == 3


# --- activation: registration delay, balance, the running-stocks limit ----------------------------


def test_a_start_too_soon_after_the_create_is_not_registered_yet(
    call: Call, emu: Emulator, clock: Clock
) -> None:
    emu.settings.activation_delay_seconds = 60
    stock_id = create(call).json()["stock_id"]
    clock.now += 59
    early = act(call, stock_id, "start")
    assert (early.status_code, early.json()["message"]) == (400, "卡包信息尚未注册完成,请稍后再试")
    assert detail(call, stock_id).json()["status"] == "unactivated"
    clock.now += 1
    assert act(call, stock_id, "start").status_code == 200


def test_a_prepaid_start_draws_the_balance_once(call: Call, emu: Emulator) -> None:
    emu.set_balance(MCHID, 50000 + 7)
    first = create(call, "fav-1").json()["stock_id"]
    second = create(call, "fav-2").json()["stock_id"]
    assert act(call, first, "start").status_code == 200
    assert act(call, first, "start").status_code == 200  # re-entrant: drawn once
    assert emu.balance(MCHID) == (7, 50000)
    short = act(call, second, "start")
    assert (short.status_code, short.json()["code"]) == (403, "NOT_ENOUGH")
    assert short.json()["message"] == "激活失败:账户余额不足,请充值"
    emu.set_balance(MCHID, 50000)
    assert act(call, second, "start").status_code == 200
    assert emu.balance(MCHID) == (0, 100000)


def test_a_no_cash_start_draws_nothing(call: Call, emu: Emulator) -> None:
    emu.set_balance(MCHID, 0)
    stock_id = create(call, no_cash=True).json()["stock_id"]
    assert act(call, stock_id, "start").status_code == 200
    assert emu.balance(MCHID) == (0, 0)


def test_more_running_stocks_than_the_limit_are_refused(call: Call, emu: Emulator) -> None:
    emu.settings.max_running_stocks = 1
    first = create(call, "fav-1").json()["stock_id"]
    second = create(call, "fav-2").json()["stock_id"]
    assert act(call, first, "start").status_code == 200
    refused = act(call, second, "start")
    assert (refused.status_code, refused.json()["code"]) == (403, "RULE_LIMIT")
    assert act(call, first, "pause").status_code == 200
    assert act(call, second, "start").status_code == 200


# --- modify-goods-id and items ---------------------------------------------------------------------


def goods_call(call: Call, stock_id: str, **lists: str) -> httpx.Response:
    return call(
        "POST",
        f"/v3/marketing/favor/stocks/{stock_id}/modify-goods-id",
        {"stock_creator_mchid": MCHID, **lists},
    )


def items(call: Call, stock_id: str) -> list[str]:
    target = f"/v3/marketing/favor/stocks/{stock_id}/items?offset=0&limit=100&stock_creator_mchid={MCHID}"
    data = call("GET", target).json()
    assert data["total_count"] == len(data["data"])
    return list(data["data"])


def with_items(call: Call, goods: list[str]) -> str:
    body = favor_create_body(MCHID, NOW, "fav-goods")
    body["coupon_use_rule"]["available_items"] = goods
    return str(call("POST", CREATE, body).json()["stock_id"])


def test_modify_goods_id_adds_and_deletes_in_place(call: Call) -> None:
    stock_id = with_items(call, ["a", "b"])
    assert (
        goods_call(call, stock_id, add_goods_id_list="c,d", delete_goods_id_list="a").status_code
        == 200
    )
    assert items(call, stock_id) == ["b", "c", "d"]
    # The doc's spelling of the deletion list is read too.
    assert goods_call(call, stock_id, Delete_goods_id_list="b").status_code == 200
    assert items(call, stock_id) == ["c", "d"]


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ({"delete_goods_id_list": "a,b"}, "至少保留一个可用商品"),
        ({"add_goods_id_list": "a"}, "商品已存在或不存在"),
        ({"delete_goods_id_list": "z"}, "商品已存在或不存在"),
    ],
)
def test_modify_goods_id_keeps_at_least_one_item(
    call: Call, lists: dict[str, str], message: str
) -> None:
    stock_id = with_items(call, ["a", "b"])
    refused = goods_call(call, stock_id, **lists)
    assert (refused.status_code, refused.json()["message"]) == (400, message)
    assert items(call, stock_id) == ["a", "b"]


def test_modify_goods_id_needs_a_single_item_stock(call: Call) -> None:
    stock_id = create(call).json()["stock_id"]
    refused = goods_call(call, stock_id, add_goods_id_list="a")
    assert refused.json()["message"] == "非单品批次不支持修改商品"
