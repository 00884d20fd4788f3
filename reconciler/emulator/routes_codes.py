"""商家券 code pools: upload (POST .../stocks/{stock_id}/couponcodes) and list (GET).

The upload takes `{coupon_code_list: [1-200 codes], upload_request_no}`; each code has 1-32
of the documented characters. It answers with the codes taken (`success_codes`), those the pool
already held (`already_exist_codes`), those repeated within the call (`duplicate_codes`) and
the refused ones (`fail_codes`). A repeated upload_request_no follows `out_request_no_reuse`
(UNCONFIRMED for this call, as for the others). Right after the create, for
`code_upload_delay_seconds`, the call answers 400 STATEMENT_CREATING.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from reconciler.emulator.context import Reply, RequestContext
from reconciler.emulator.failures import NO_PERMISSION, ApiFailure, invalid_request, param_error
from reconciler.emulator.store import StoredStock
from reconciler.emulator.timefmt import format_time

MAX_CODES = 200
MAX_LIST = 100
_CODE = re.compile(r"[0-9A-Za-z \-_\\/=|]{1,32}")
_NUMBER = re.compile(r"[A-Za-z0-9|_*-]{1,128}")
STATEMENT_CREATING = "批次正在创建中,请稍后再试"
NOT_UPLOAD_MODE = "该批次不是商户上传code模式(MERCHANT_UPLOAD)"
SCOPE = "busifavor.upload_codes"


def _pool(ctx: RequestContext) -> StoredStock:
    stock = ctx.stock("busifavor")
    if stock.creator_mchid != ctx.mchid:
        raise ApiFailure(403, "NO_AUTH", NO_PERMISSION)
    if stock.body.get("coupon_code_mode") != "MERCHANT_UPLOAD":
        raise invalid_request(NOT_UPLOAD_MODE)
    return stock


def upload(ctx: RequestContext) -> Reply:
    stock = _pool(ctx)
    body = ctx.json_body()
    if not isinstance(body, dict):
        raise param_error("", "请求体应为JSON对象")
    number = body.get("upload_request_no")
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise param_error("/upload_request_no", "upload_request_no格式错误", value=number)
    codes = body.get("coupon_code_list")
    if not isinstance(codes, list) or not 1 <= len(codes) <= MAX_CODES:
        raise param_error("/coupon_code_list", f"coupon_code_list应包含1-{MAX_CODES}个code")
    for i, code in enumerate(codes):
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise param_error(f"/coupon_code_list/{i}", "code格式错误", value=code)
    unknown = sorted(set(body) - {"coupon_code_list", "upload_request_no"})
    if unknown and ctx.settings.reject_unknown_fields:
        raise param_error(f"/{unknown[0]}", "未知字段")
    replayed = ctx.replay(SCOPE, number, extra=stock.stock_id)
    if replayed is not None:
        return replayed
    if ctx.now - stock.created_at < ctx.settings.code_upload_delay_seconds:
        raise ApiFailure(400, "STATEMENT_CREATING", STATEMENT_CREATING)
    success: list[str] = []
    existing: list[str] = []
    duplicate: list[str] = []
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            duplicate.append(code)
            continue
        seen.add(code)
        if code in stock.codes:
            existing.append(code)
            if stock.codes[code] != number:
                stock.codes_sent_again += 1
            continue
        stock.codes[code] = number
        success.append(code)
    response: dict[str, Any] = {
        "stock_id": stock.stock_id,
        "total_count": len(codes),
        "success_count": len(success),
        "success_codes": success,
        "success_time": format_time(ctx.now),
        "fail_count": 0,
        "fail_codes": [],
        "already_exist_codes": existing,
        "duplicate_codes": duplicate,
    }
    ctx.remember(SCOPE, number, stock.stock_id, response, extra=stock.stock_id)
    ctx.commit()
    return Reply(200, response)


def listing(ctx: RequestContext) -> Reply:
    stock = _pool(ctx)
    query = ctx.query()
    try:
        offset = int(query.get("offset", "0"))
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise param_error("offset", "offset和limit应为整数", location="query") from None
    if offset < 0 or not 1 <= limit <= MAX_LIST:
        raise param_error("limit", f"limit应为1-{MAX_LIST}", location="query")
    codes = list(stock.codes)
    page = [{"code": c, "code_status": "AVAILABLE"} for c in codes[offset : offset + limit]]
    return Reply(200, {"data": page, "total_count": len(codes), "offset": offset, "limit": limit})


HANDLERS: dict[str, Callable[[RequestContext], Reply]] = {
    "busifavor.upload_codes": upload,
    "busifavor.codes": listing,
}
