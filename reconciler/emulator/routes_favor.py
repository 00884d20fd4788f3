"""代金券 (favor) endpoints: create, detail, list, the start/pause/restart/stop transitions,
modify-goods-id and the items and merchants lists.

A start models what developers report (reference §7.1): within `activation_delay_seconds` of
the create it answers "卡包信息尚未注册完成"; a 预充值 stock draws its max_amount from the
merchant's balance (403 NOT_ENOUGH when short); a merchant with `max_running_stocks` running
stocks gets 403 RULE_LIMIT. The codes of the first and last are UNCONFIRMED.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from reconciler.emulator.context import Reply, RequestContext
from reconciler.emulator.detail_fields import favor_max_amount_by_day
from reconciler.emulator.failures import (
    BAD_MERCHANT,
    NO_PERMISSION,
    ApiFailure,
    invalid_request,
    param_error,
)
from reconciler.emulator.store import StoredStock
from reconciler.emulator.timefmt import TimeStyle, format_time, parse_time, render_time
from reconciler.emulator.validate_favor import validate_favor_create

STATUSES = frozenset({"unactivated", "audit", "running", "stoped", "paused"})
MAX_PAGE = 10
ENDED_OR_INACTIVE = "活动已结束或未激活"
BAD_STATE = "非法的批次状态"
NOT_REGISTERED = "卡包信息尚未注册完成,请稍后再试"
NO_BALANCE = "激活失败:账户余额不足,请充值"
TOO_MANY_RUNNING = "商户运行中的批次数量已达上限"
KEEP_ONE = "至少保留一个可用商品"
MAX_ITEMS_PAGE = 100
MAX_MERCHANTS_PAGE = 50


def create(ctx: RequestContext) -> Reply:
    body = ctx.json_body()
    number = body.get("out_request_no") if isinstance(body, dict) else None
    replayed = ctx.replay("favor.create", number)
    if replayed is not None:
        return replayed
    provider = ctx.store.provider_of(ctx.mchid)
    if provider is not None:
        # Sub-merchants cannot create 代金券 themselves (reference §7.5).
        raise ApiFailure(
            403, "NO_AUTH", f"{NO_PERMISSION}: 子商户不能创建代金券,请由服务商{provider}创建"
        )
    root = validate_favor_create(
        body,
        caller=ctx.mchid,
        now=ctx.now,
        strict=ctx.settings.reject_unknown_fields,
        sub_merchants=ctx.store.subs_of(ctx.mchid),
    )
    stock_id = ctx.store.allocate_stock_id()
    create_time = format_time(ctx.now)
    ctx.store.stocks[stock_id] = StoredStock(
        kind="favor",
        stock_id=stock_id,
        creator_mchid=ctx.mchid,
        out_request_no=root.data["out_request_no"],
        created_at=ctx.now,
        create_time=create_time,
        status="unactivated",
        body=copy.deepcopy(root.data),
    )
    response = {"stock_id": stock_id, "create_time": create_time}
    ctx.remember("favor.create", root.data["out_request_no"], stock_id, response)
    ctx.commit()
    return Reply(200, response)


def favor_view(stock: StoredStock, style: TimeStyle) -> dict[str, Any]:
    """The detail shape (reference §1.2): the use rules regrouped, create-only fields dropped;
    which fields are present follows the SDK model (detail_fields)."""
    body = stock.body
    sent_rule = body["stock_use_rule"]
    coupon_rule = body["coupon_use_rule"]
    rule: dict[str, Any] = {
        "max_coupons": sent_rule["max_coupons"],
        "max_amount": sent_rule["max_amount"],
        "max_amount_by_day": favor_max_amount_by_day(sent_rule),
        "max_coupons_per_user": sent_rule["max_coupons_per_user"],
    }
    rule["fixed_normal_coupon"] = dict(coupon_rule["fixed_normal_coupon"])
    rule["coupon_type"] = "NORMAL"
    for key in ("goods_tag", "trade_type", "combine_use"):
        if coupon_rule.get(key) is not None:
            rule[key] = copy.deepcopy(coupon_rule[key])
    view: dict[str, Any] = {
        "stock_id": stock.stock_id,
        "stock_creator_mchid": stock.creator_mchid,
        "stock_name": body["stock_name"],
        "status": stock.status,
        "create_time": render_time(stock.create_time, style),
        "description": (body.get("pattern_info") or {}).get("description", ""),
        "stock_use_rule": rule,
        "available_begin_time": render_time(body["available_begin_time"], style),
        "available_end_time": render_time(body["available_end_time"], style),
        "distributed_coupons": 0,
        "no_cash": body["no_cash"],
        "singleitem": bool(coupon_rule.get("available_items")),
        "stock_type": "NORMAL",
    }
    for key in ("start_time", "stop_time"):
        if key in stock.events:
            view[key] = render_time(stock.events[key], style)
    return view


def _creator_stock(ctx: RequestContext, creator: str | None, location: str) -> StoredStock:
    field = "stock_creator_mchid" if location == "query" else "/stock_creator_mchid"
    if not isinstance(creator, str) or not creator:
        raise param_error(field, "商户号必填", location=location)
    stock = ctx.stock("favor")
    if creator != ctx.mchid or stock.creator_mchid != creator:
        raise invalid_request(BAD_MERCHANT)
    return stock


def detail(ctx: RequestContext) -> Reply:
    stock = _creator_stock(ctx, ctx.query().get("stock_creator_mchid"), "query")
    return Reply(200, favor_view(stock, ctx.settings.detail_time_format))


def _query_int(query: dict[str, str], name: str, lo: int, hi: int | None, message: str) -> int:
    text = query.get(name)
    if text is None or text == "":
        raise param_error(name, f"{name}必填", location="query")
    if not (text.isascii() and text.isdigit()):
        raise param_error(name, f"{name}必须为整数", location="query", value=text)
    value = int(text)
    if value < lo or (hi is not None and value > hi):
        raise param_error(name, message, location="query", value=value)
    return value


def list_stocks(ctx: RequestContext) -> Reply:
    query = ctx.query()
    creator = query.get("stock_creator_mchid")
    if not creator:
        raise param_error("stock_creator_mchid", "商户号必填", location="query")
    if creator != ctx.mchid:
        raise invalid_request(BAD_MERCHANT)
    offset = _query_int(query, "offset", 0, None, "offset不能小于0")
    limit = _query_int(query, "limit", 1, MAX_PAGE, "页大小超过阈值")
    bounds = []
    for name in ("create_start_time", "create_end_time"):
        text = query.get(name)
        moment = None if text is None else parse_time(text)
        if text is not None and moment is None:
            raise param_error(name, "输入时间格式错误", location="query", value=text)
        bounds.append(None if moment is None else moment.timestamp())
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise param_error("status", BAD_STATE, location="query", value=status)
    start_bound, end_bound = bounds
    matches = [
        s
        for s in sorted(ctx.store.stocks.values(), key=lambda s: int(s.stock_id))
        if s.kind == "favor"
        and s.creator_mchid == creator
        and (start_bound is None or s.created_at >= start_bound)
        and (end_bound is None or s.created_at <= end_bound)
        and (status is None or s.status == status)
    ]
    first = offset * limit if ctx.settings.list_offset == "page" else offset
    style = ctx.settings.detail_time_format
    data = [favor_view(s, style) for s in matches[first : first + limit]]
    return Reply(200, {"total_count": len(matches), "limit": limit, "offset": offset, "data": data})


def _transition(
    event: str, allowed: frozenset[str], target: str, repeat_ok: str | None
) -> Callable[[RequestContext], Reply]:
    """A state change; `repeat_ok` is the state in which a repeat returns the first answer."""

    def handler(ctx: RequestContext) -> Reply:
        body = ctx.json_body()
        creator = body.get("stock_creator_mchid") if isinstance(body, dict) else None
        stock = _creator_stock(ctx, creator, "body")
        if stock.status == repeat_ok and event in stock.events:
            return Reply(200, {event: stock.events[event], "stock_id": stock.stock_id})
        if stock.status not in allowed:
            message = ENDED_OR_INACTIVE if stock.status == "unactivated" else BAD_STATE
            raise invalid_request(message)
        end = parse_time(stock.body["available_end_time"])
        if event != "stop_time" and end is not None and ctx.now >= end.timestamp():
            raise invalid_request(ENDED_OR_INACTIVE)
        if event == "start_time":
            _activate(ctx, stock)
        stock.status = target
        stock.events[event] = format_time(ctx.now)
        ctx.commit()
        return Reply(200, {event: stock.events[event], "stock_id": stock.stock_id})

    return handler


def _activate(ctx: RequestContext, stock: StoredStock) -> None:
    """The start's own checks, in the order a merchant meets them; draws the balance."""
    if ctx.now < stock.created_at + ctx.settings.activation_delay_seconds:
        raise invalid_request(NOT_REGISTERED)
    running = sum(
        1
        for s in ctx.store.stocks.values()
        if s.kind == "favor" and s.creator_mchid == stock.creator_mchid and s.status == "running"
    )
    if running >= ctx.settings.max_running_stocks:
        raise ApiFailure(403, "RULE_LIMIT", TOO_MANY_RUNNING)
    merchant = ctx.store.merchants[stock.creator_mchid]
    need = 0 if stock.body.get("no_cash") else int(stock.body["stock_use_rule"]["max_amount"])
    if merchant.balance_fen is not None:
        if merchant.balance_fen < need:
            raise ApiFailure(403, "NOT_ENOUGH", NO_BALANCE)
        merchant.balance_fen -= need
    merchant.locked_fen += need


def _goods_list(value: object, name: str) -> list[str]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise param_error(f"/{name}", f"{name}必须为字符串")
    return [g for g in value.split(",") if g]


def modify_goods_id(ctx: RequestContext) -> Reply:
    """POST .../modify-goods-id: the lists as comma-separated strings in the JSON body. The
    doc spells the deletion `Delete_goods_id_list` (UNCONFIRMED); both spellings are read."""
    body = ctx.json_body()
    if not isinstance(body, dict):
        raise param_error("", "请求体必须为JSON对象")
    stock = _creator_stock(ctx, body.get("stock_creator_mchid"), "body")
    unknown = set(body) - {
        "stock_creator_mchid",
        "add_goods_id_list",
        "delete_goods_id_list",
        "Delete_goods_id_list",
    }
    if unknown:
        raise param_error(f"/{sorted(unknown)[0]}", "未知字段")
    add = _goods_list(body.get("add_goods_id_list"), "add_goods_id_list")
    drop = _goods_list(
        body.get("delete_goods_id_list", body.get("Delete_goods_id_list")), "delete_goods_id_list"
    )
    if not add and not drop:
        raise param_error("/add_goods_id_list", "新增和删除商品不能同时为空")
    rule = stock.body["coupon_use_rule"]
    goods = list(rule.get("available_items") or [])
    if not goods:
        raise invalid_request("非单品批次不支持修改商品")
    if any(g in goods for g in add) or any(g not in goods for g in drop):
        raise invalid_request("商品已存在或不存在")
    kept = [g for g in goods if g not in drop] + add
    if not kept:
        raise invalid_request(KEEP_ONE)
    if len(kept) > 50:
        raise invalid_request("可用商品最多50个")
    rule["available_items"] = kept
    ctx.commit()
    return Reply(200, {"stock_id": stock.stock_id})


def items(ctx: RequestContext) -> Reply:
    """GET .../items: the stock's goods ids (an item offset; the shape is UNCONFIRMED)."""
    query = ctx.query()
    stock = _creator_stock(ctx, query.get("stock_creator_mchid"), "query")
    offset = _query_int(query, "offset", 0, 500, "offset超过阈值")
    limit = _query_int(query, "limit", 1, MAX_ITEMS_PAGE, "页大小超过阈值")
    goods = list(stock.body["coupon_use_rule"].get("available_items") or [])
    data = goods[offset : offset + limit]
    return Reply(
        200,
        {
            "total_count": len(goods),
            "data": data,
            "offset": offset,
            "limit": limit,
            "stock_id": stock.stock_id,
        },
    )


def merchants(ctx: RequestContext) -> Reply:
    """GET .../merchants: the stock's available_merchants (an item offset; the shape of an
    entry is UNCONFIRMED: bare mchids here)."""
    query = ctx.query()
    stock = _creator_stock(ctx, query.get("stock_creator_mchid"), "query")
    offset = _query_int(query, "offset", 0, 1000, "offset超过阈值")
    limit = _query_int(query, "limit", 1, MAX_MERCHANTS_PAGE, "页大小超过阈值")
    listed = list(stock.body["coupon_use_rule"].get("available_merchants") or [])
    return Reply(
        200,
        {
            "total_count": len(listed),
            "data": listed[offset : offset + limit],
            "offset": offset,
            "limit": limit,
            "stock_id": stock.stock_id,
        },
    )


# Preconditions (GO): start needs a created stock, pause an active one, restart a paused one,
# stop one not yet activated. Start is documented as re-entrant ("接口支持幂等重入").
start = _transition("start_time", frozenset({"unactivated"}), "running", repeat_ok="running")
pause = _transition("pause_time", frozenset({"running"}), "paused", repeat_ok=None)
restart = _transition("restart_time", frozenset({"paused"}), "running", repeat_ok=None)
stop = _transition("stop_time", frozenset({"unactivated"}), "stoped", repeat_ok=None)

HANDLERS: dict[str, Callable[[RequestContext], Reply]] = {
    "favor.create": create,
    "favor.detail": detail,
    "favor.list": list_stocks,
    "favor.start": start,
    "favor.pause": pause,
    "favor.restart": restart,
    "favor.stop": stop,
    "favor.modify_goods_id": modify_goods_id,
    "favor.items": items,
    "favor.merchants": merchants,
}
