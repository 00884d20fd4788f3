"""商家券 (busifavor) endpoints: create, detail, modify (PATCH) and budget (PATCH .../budget)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from reconciler.emulator.context import Reply, RequestContext
from reconciler.emulator.detail_fields import busifavor_send_count, fill_busifavor_brand
from reconciler.emulator.failures import NO_PERMISSION, ApiFailure, invalid_request, param_error
from reconciler.emulator.store import StoredStock
from reconciler.emulator.timefmt import TimeStyle, format_time, parse_time, render_time
from reconciler.emulator.validate_busifavor import validate_busifavor_create
from reconciler.emulator.validate_busifavor_update import validate_budget, validate_busifavor_modify

CURRENT_VALUE_WRONG = "批次库存的当前值错误,请获取批次详情查看最新值"
STOCK_ENDED = "批次已过有效期,不允许修改"
# Replaced whole by a modify; every other object in a modify body is merged key by key.
_REPLACED_WHOLE = frozenset({"mini_programs_info", "finder_info"})


def create(ctx: RequestContext) -> Reply:
    body = ctx.json_body()
    number = body.get("out_request_no") if isinstance(body, dict) else None
    replayed = ctx.replay("busifavor.create", number)
    if replayed is not None:
        return replayed
    root = validate_busifavor_create(
        body,
        caller=ctx.mchid,
        strict=ctx.settings.reject_unknown_fields,
        sub_merchants=ctx.store.subs_of(ctx.mchid),
    )
    stock_id = ctx.store.allocate_stock_id()
    create_time = format_time(ctx.now)
    ctx.store.stocks[stock_id] = StoredStock(
        kind="busifavor",
        stock_id=stock_id,
        creator_mchid=ctx.mchid,
        out_request_no=root.data["out_request_no"],
        created_at=ctx.now,
        create_time=create_time,
        status=ctx.settings.busifavor_initial_state,
        body=copy.deepcopy(root.data),
    )
    response = {"stock_id": stock_id, "create_time": create_time}
    ctx.remember("busifavor.create", root.data["out_request_no"], stock_id, response)
    ctx.commit()
    return Reply(200, response)


def busifavor_view(stock: StoredStock, style: TimeStyle) -> dict[str, Any]:
    """The detail shape (reference §2.2): the create body under the same names, without
    out_request_no, plus stock_state, stock_id and the send counters. Optional fields appear
    only as the SDK model says (detail_fields): flags and subsidy only when they were given."""
    view = copy.deepcopy(stock.body)
    del view["out_request_no"]
    available = view["coupon_use_rule"]["coupon_available_time"]
    for key in ("available_begin_time", "available_end_time"):
        available[key] = render_time(available[key], style)
    for slot in available.get("irregulary_avaliable_time") or ():
        for key in ("begin_time", "end_time"):
            slot[key] = render_time(slot[key], style)
    view["stock_state"] = stock.status
    view["stock_id"] = stock.stock_id
    view["send_count_information"] = busifavor_send_count(view)
    if view["coupon_code_mode"] == "MERCHANT_UPLOAD":
        count = len(stock.codes)
        view["coupon_code_count"] = {"total_count": count, "available_count": count}
    return view


def _own_stock(ctx: RequestContext) -> StoredStock:
    stock = ctx.stock("busifavor")
    if stock.creator_mchid != ctx.mchid:
        raise ApiFailure(403, "NO_AUTH", NO_PERMISSION)
    return stock


def _require_running_window(ctx: RequestContext, stock: StoredStock) -> None:
    end = parse_time(stock.body["coupon_use_rule"]["coupon_available_time"]["available_end_time"])
    if end is not None and ctx.now >= end.timestamp():
        raise invalid_request(STOCK_ENDED)


def detail(ctx: RequestContext) -> Reply:
    view = busifavor_view(_own_stock(ctx), ctx.settings.detail_time_format)
    fill_busifavor_brand(view, ctx.store.merchants)
    return Reply(200, view)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if key in _REPLACED_WHOLE or not isinstance(value, dict):
            target[key] = copy.deepcopy(value)
        else:
            _merge(target.setdefault(key, {}), value)


def modify(ctx: RequestContext) -> Reply:
    stock = _own_stock(ctx)
    body = ctx.json_body()
    number = body.get("out_request_no") if isinstance(body, dict) else None
    replayed = ctx.replay("busifavor.modify", number, extra=stock.stock_id)
    if replayed is not None:
        return replayed
    # What the detail shows, system-filled brand included: echoing it back is no change.
    shown = copy.deepcopy(stock.body)
    fill_busifavor_brand(shown, ctx.store.merchants)
    root = validate_busifavor_modify(body, current=shown)
    _require_running_window(ctx, stock)
    patch = {k: v for k, v in root.data.items() if k != "out_request_no" and v is not None}
    _merge(stock.body, patch)
    ctx.remember(
        "busifavor.modify", root.data["out_request_no"], stock.stock_id, None, extra=stock.stock_id
    )
    ctx.commit()
    return Reply(204)


def budget(ctx: RequestContext) -> Reply:
    stock = _own_stock(ctx)
    body = ctx.json_body()
    number = body.get("modify_budget_request_no") if isinstance(body, dict) else None
    replayed = ctx.replay("busifavor.budget", number, extra=stock.stock_id)
    if replayed is not None:
        return replayed
    change = validate_budget(body)
    _require_running_window(ctx, stock)
    send_rule = stock.body["stock_send_rule"]
    if change.current != send_rule.get(change.field, 0):
        raise invalid_request(
            CURRENT_VALUE_WRONG, {"field": change.current_pointer, "location": "body"}
        )
    if change.field == "max_coupons_by_day" and change.target > send_rule["max_coupons"]:
        raise param_error(
            "/target_max_coupons_by_day",
            "单天发放上限个数不能大于批次最大发放个数",
            value=change.target,
        )
    send_rule[change.field] = change.target
    response = {"max_coupons": send_rule["max_coupons"]}
    if "max_coupons_by_day" in send_rule:
        response["max_coupons_by_day"] = send_rule["max_coupons_by_day"]
    ctx.remember(
        "busifavor.budget", change.request_no, stock.stock_id, response, extra=stock.stock_id
    )
    ctx.commit()
    return Reply(200, response)


HANDLERS: dict[str, Callable[[RequestContext], Reply]] = {
    "busifavor.create": create,
    "busifavor.detail": detail,
    "busifavor.modify": modify,
    "busifavor.budget": budget,
}
