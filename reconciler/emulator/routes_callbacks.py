"""Notify URLs: POST/GET /v3/marketing/favor/callbacks and /v3/marketing/busifavor/callbacks.

The URL must be https with no query string, and `mchid` must be the caller (only the merchant
itself sets its URL). favor takes `switch`, which must be true (false is not supported).
busifavor needs the 营销事件推送 permission (`marketing_event_denied` lists merchants without
it: 403 NO_AUTH). A new URL replaces the old; GET answers `notify_url` only once one is set.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from reconciler.emulator.context import Reply, RequestContext
from reconciler.emulator.failures import ApiFailure, param_error
from reconciler.emulator.timefmt import format_time

NOT_CALLER = "mchid与调用商户号不一致"
NO_MARKETING_EVENT = "商户未开通营销事件推送权限"
MAX_URL = 256


def _check_mchid(ctx: RequestContext, mchid: object, where: str) -> str:
    if not isinstance(mchid, str) or not mchid:
        raise param_error(where, "mchid为必填参数")
    if mchid != ctx.mchid:
        raise ApiFailure(403, "NO_AUTH", NOT_CALLER)
    return mchid


def _permission(ctx: RequestContext, kind: str) -> None:
    if kind == "busifavor" and ctx.mchid in ctx.settings.marketing_event_denied:
        raise ApiFailure(403, "NO_AUTH", NO_MARKETING_EVENT)


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise param_error("/notify_url", "notify_url为必填参数,长度不超过256")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise param_error("/notify_url", "notify_url必须为https地址", value=url)
    if "?" in url:
        raise param_error("/notify_url", "notify_url不能携带参数", value=url)
    return url


def _set(kind: str) -> Callable[[RequestContext], Reply]:
    def handler(ctx: RequestContext) -> Reply:
        body = ctx.json_body()
        if not isinstance(body, dict):
            raise param_error("", "请求体应为JSON对象")
        mchid = _check_mchid(ctx, body.get("mchid"), "/mchid")
        _permission(ctx, kind)
        url = _check_url(body.get("notify_url"))
        allowed = {"mchid", "notify_url"} | ({"switch"} if kind == "favor" else set())
        unknown = sorted(set(body) - allowed)
        if unknown and ctx.settings.reject_unknown_fields:
            raise param_error(f"/{unknown[0]}", "未知字段")
        if kind == "favor" and body.get("switch") is not True:
            raise param_error("/switch", "switch仅支持true")
        ctx.store.callbacks[f"{kind}:{mchid}"] = url
        ctx.commit()
        answer = {"update_time": format_time(ctx.now), "notify_url": url}
        if kind == "busifavor":
            answer["mchid"] = mchid
        return Reply(200, answer)

    return handler


def _get(kind: str) -> Callable[[RequestContext], Reply]:
    def handler(ctx: RequestContext) -> Reply:
        mchid = _check_mchid(ctx, ctx.query().get("mchid"), "mchid")
        _permission(ctx, kind)
        answer = {"mchid": mchid}
        url = ctx.store.callbacks.get(f"{kind}:{mchid}")
        if url is not None:
            answer["notify_url"] = url
        return Reply(200, answer)

    return handler


HANDLERS: dict[str, Callable[[RequestContext], Reply]] = {
    "favor.callback_set": _set("favor"),
    "favor.callback_get": _get("favor"),
    "busifavor.callback_set": _set("busifavor"),
    "busifavor.callback_get": _get("busifavor"),
}
