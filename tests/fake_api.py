"""An in-memory fake of the stock API (the `StockApi` Protocol the kinds call).

It keeps stocks by id, answers creates idempotently by out_request_no (or refuses reuse, like
the emulator's `reject` mode), lists favor stocks, moves favor stocks through their lifecycle
(start is re-entrant; `activations` counts real activations), changes their goods, and fails
on demand: each scripted failure
says which call fails, how (before or after the change took effect) and with what error.
Fast: no HTTP, no signing, no threads of its own.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from reconciler.errors import ApiError
from reconciler.kinds import StockApi
from reconciler.operation import CreateResult
from reconciler.wechatpay.errors import ApiResponseError, TransportError

CREATE_TIME = "2027-02-01T09:00:00+08:00"

When = Literal["before", "after"]
"""`before`: the call fails and nothing happened; `after`: it took effect, the answer is lost."""


def lost_answer(method: str = "POST", path: str = "/v3/marketing") -> ApiError:
    return TransportError(
        method=method, path=path, reason="connection reset", attempts=5, sent=True
    )


def refused_connection(method: str = "POST", path: str = "/v3/marketing") -> ApiError:
    """The request never left: the connection was refused (no server at the address)."""
    return TransportError(
        method=method, path=path, reason="connection refused", attempts=5, sent=False
    )


def server_error(method: str = "POST", path: str = "/v3/marketing") -> ApiError:
    return ApiResponseError(
        status=500, method=method, path=path, code="SYSTEM_ERROR", message="系统错误"
    )


def refused(code: str = "PARAM_ERROR", message: str = "参数错误") -> ApiError:
    return ApiResponseError(
        status=400, method="POST", path="/v3/marketing", code=code, message=message
    )


def already_exists() -> ApiError:
    return ApiResponseError(
        status=400,
        method="POST",
        path="/v3/marketing",
        code="RESOURCE_ALREADY_EXISTS",
        message="批次已存在",
    )


@dataclass
class Failure:
    call: str
    error: ApiError
    when: When = "before"
    times: int = 1


@dataclass
class FakeStockApi(StockApi):
    """One merchant's view of WeChat Pay, in memory."""

    merchant: str
    reuse: Literal["idempotent", "reject"] = "idempotent"
    stocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    by_number: dict[str, str] = field(default_factory=dict)
    numbers_used: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    activations: dict[str, int] = field(default_factory=dict)
    uploads: dict[str, int] = field(default_factory=dict)
    """How many times each image content (sha256) reached the upload."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10000001))
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    """商家券 pools: stock_id -> code -> the upload_request_no that uploaded it."""
    code_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Answers by upload_request_no (a repeated number gets its answer again, or is refused
    in `reject` mode)."""
    codes_sent_again: int = 0
    """Codes that arrived under a second upload_request_no: uploaded twice."""
    refuse_codes: dict[str, str] = field(default_factory=dict)
    """Codes an upload refuses (in `fail_codes`), with the message."""
    callbacks: dict[str, str] = field(default_factory=dict)
    """Notify URLs by kind (this fake is one merchant)."""

    def fail(self, call: str, error: ApiError, when: When = "before", times: int = 1) -> None:
        self.failures.append(Failure(call, error, when, times))

    def _failure(self, call: str) -> Failure | None:
        for f in self.failures:
            if f.call == call and f.times > 0:
                f.times -= 1
                return f
        return None

    def _run(self, call: str, key: str, action: Any) -> Any:
        self.calls.append((call, key))
        failure = self._failure(call)
        if failure is not None and failure.when == "before":
            raise failure.error
        result = action()
        if failure is not None:
            raise failure.error
        return result

    # --- creates ---------------------------------------------------------------------------

    def _create(self, kind: str, body: Mapping[str, Any]) -> CreateResult:
        number = str(body["out_request_no"])

        def act() -> CreateResult:
            if number in self.by_number:
                if self.reuse == "reject":
                    raise already_exists()
                return CreateResult(self.by_number[number], CREATE_TIME)
            stock_id = str(next(self._ids))
            self.stocks[stock_id] = {**copy.deepcopy(dict(body)), "create_time": CREATE_TIME}
            self.kinds[stock_id] = kind
            self.status[stock_id] = "unactivated"
            self.by_number[number] = stock_id
            return CreateResult(stock_id, CREATE_TIME)

        result: CreateResult = self._run(f"{kind}_create", number, act)
        return result

    def favor_create(self, body: Mapping[str, Any]) -> CreateResult:
        return self._create("favor", body)

    def busifavor_create(self, body: Mapping[str, Any]) -> CreateResult:
        return self._create("busifavor", body)

    # --- reads -----------------------------------------------------------------------------

    def _favor_view(self, stock_id: str) -> dict[str, Any]:
        """The detail's shape: coupon rules under stock_use_rule, description on top."""
        body = self.stocks[stock_id]
        rules = dict(body.get("stock_use_rule", {}))
        use = body.get("coupon_use_rule", {})
        for key in ("fixed_normal_coupon", "goods_tag", "trade_type", "combine_use"):
            if key in use:
                rules[key] = use[key]
        view: dict[str, Any] = {
            k: body[k]
            for k in (
                "stock_name",
                "available_begin_time",
                "available_end_time",
                "no_cash",
                "stock_type",
                "create_time",
            )
            if k in body
        }
        view.update(stock_id=stock_id, stock_use_rule=rules, status=self.status[stock_id])
        if "pattern_info" in body:
            view["description"] = body["pattern_info"].get("description")
        return view

    def favor_detail(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            if stock_id not in self.stocks:
                raise ApiResponseError(
                    status=404, method="GET", path=stock_id, code="NOT_FOUND", message="批次不存在"
                )
            return self._favor_view(stock_id)

        result: dict[str, Any] = self._run("favor_detail", stock_id, act)
        return result

    def favor_list(
        self,
        stock_creator_mchid: str,
        offset: int,
        limit: int,
        create_start_time: str | datetime | None = None,
        create_end_time: str | datetime | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            favors = sorted(s for s, k in self.kinds.items() if k == "favor")
            page = favors[offset * limit : (offset + 1) * limit]
            return {
                "data": [self._favor_view(s) for s in page],
                "total_count": len(favors),
                "offset": offset,
                "limit": limit,
            }

        result: dict[str, Any] = self._run("favor_list", str(offset), act)
        return result

    def busifavor_detail(self, stock_id: str) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            if stock_id not in self.stocks:
                raise ApiResponseError(
                    status=404, method="GET", path=stock_id, code="NOT_FOUND", message="批次不存在"
                )
            body = {k: v for k, v in self.stocks[stock_id].items() if k != "out_request_no"}
            return {**copy.deepcopy(body), "stock_id": stock_id, "stock_state": "ONGOING"} | (
                self._code_count(stock_id)
            )

        result: dict[str, Any] = self._run("busifavor_detail", stock_id, act)
        return result

    # --- updates ---------------------------------------------------------------------------

    def busifavor_modify(self, stock_id: str, body: Mapping[str, Any]) -> None:
        number = str(body["out_request_no"])

        def act() -> None:
            if number in self.numbers_used:
                raise already_exists()
            self.numbers_used.add(number)
            stock = self.stocks[stock_id]
            for key, value in body.items():
                if key == "out_request_no":
                    continue
                if isinstance(value, Mapping) and isinstance(stock.get(key), dict):
                    stock[key] = {**stock[key], **copy.deepcopy(dict(value))}
                else:
                    stock[key] = copy.deepcopy(value)

        self._run("busifavor_modify", number, act)

    def busifavor_budget(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        number = str(body["modify_budget_request_no"])

        def act() -> dict[str, Any]:
            if number in self.numbers_used:
                raise already_exists()
            self.numbers_used.add(number)
            rule = self.stocks[stock_id]["stock_send_rule"]
            for name in ("max_coupons", "max_coupons_by_day"):
                if f"target_{name}" in body:
                    rule[name] = body[f"target_{name}"]
            return {"max_coupons": rule.get("max_coupons")}

        result: dict[str, Any] = self._run("busifavor_budget", number, act)
        return result

    # --- favor lifecycle and goods ----------------------------------------------------------

    def _transition(self, call: str, stock_id: str, allowed: set[str], target: str) -> Any:
        def act() -> dict[str, Any]:
            now = self.status[stock_id]
            if call == "favor_start" and now == "running":
                return {"stock_id": stock_id}  # 幂等重入
            if now not in allowed:
                raise refused("INVALID_REQUEST", "非法的批次状态")
            self.status[stock_id] = target
            if call == "favor_start":
                self.activations[stock_id] = self.activations.get(stock_id, 0) + 1
            return {"stock_id": stock_id}

        return self._run(call, stock_id, act)

    def favor_start(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        result: dict[str, Any] = self._transition(
            "favor_start", stock_id, {"unactivated"}, "running"
        )
        return result

    def favor_pause(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        result: dict[str, Any] = self._transition("favor_pause", stock_id, {"running"}, "paused")
        return result

    def favor_restart(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        result: dict[str, Any] = self._transition("favor_restart", stock_id, {"paused"}, "running")
        return result

    def favor_stop(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]:
        result: dict[str, Any] = self._transition("favor_stop", stock_id, {"unactivated"}, "stoped")
        return result

    def _goods(self, stock_id: str) -> list[str]:
        use = self.stocks[stock_id].setdefault("coupon_use_rule", {})
        goods: list[str] = use.setdefault("available_items", [])
        return goods

    def favor_modify_goods_id(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            goods = self._goods(stock_id)
            add = [g for g in str(body.get("add_goods_id_list") or "").split(",") if g]
            drop = [g for g in str(body.get("delete_goods_id_list") or "").split(",") if g]
            if any(g in goods for g in add) or any(g not in goods for g in drop):
                raise refused("INVALID_REQUEST", "商品已存在或不存在")
            kept = [g for g in goods if g not in drop] + add
            if not kept:
                raise refused("INVALID_REQUEST", "至少保留一个商品")
            goods[:] = kept
            return {}

        result: dict[str, Any] = self._run("favor_modify_goods_id", stock_id, act)
        return result

    def favor_items(
        self, stock_id: str, stock_creator_mchid: str, offset: int, limit: int
    ) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            goods = self._goods(stock_id)
            return {"data": goods[offset : offset + limit], "total_count": len(goods)}

        result: dict[str, Any] = self._run("favor_items", stock_id, act)
        return result

    # --- images ----------------------------------------------------------------------------

    def media_upload(self, filename: str, content: bytes) -> str:
        """Answers a URL per content, as WeChat Pay's is permanent; `uploads` counts sends."""

        def act() -> str:
            digest = hashlib.sha256(content).hexdigest()
            self.uploads[digest] = self.uploads.get(digest, 0) + 1
            return f"https://wxpaylogo.qpic.cn/fake/{digest[:32]}"

        url: str = self._run("media_upload", filename, act)
        return url

    def favor_merchants(
        self, stock_id: str, stock_creator_mchid: str, offset: int, limit: int
    ) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            use = self.stocks[stock_id].get("coupon_use_rule") or {}
            merchants = list(use.get("available_merchants") or [])
            return {"data": merchants[offset : offset + limit], "total_count": len(merchants)}

        result: dict[str, Any] = self._run("favor_merchants", stock_id, act)
        return result

    # --- code pools and callbacks (reconciler.codes_apply, reconciler.callbacks_apply) ------

    def _code_count(self, stock_id: str) -> dict[str, Any]:
        if self.stocks[stock_id].get("coupon_code_mode") != "MERCHANT_UPLOAD":
            return {}
        n = len(self.codes.get(stock_id, {}))
        return {"coupon_code_count": {"total_count": n, "available_count": n}}

    def upload_codes(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        number = str(body["upload_request_no"])

        def act() -> dict[str, Any]:
            if number in self.code_answers:
                if self.reuse == "reject":
                    raise already_exists()
                return copy.deepcopy(self.code_answers[number])
            pool = self.codes.setdefault(stock_id, {})
            success, existing, failed = [], [], []
            for code in body["coupon_code_list"]:
                if code in self.refuse_codes:
                    failed.append(
                        {
                            "coupon_code": code,
                            "code": "INVALID_CODE",
                            "message": self.refuse_codes[code],
                        }
                    )
                elif code in pool:
                    existing.append(code)
                    self.codes_sent_again += pool[code] != number
                else:
                    pool[code] = number
                    success.append(code)
            answer = {
                "stock_id": stock_id,
                "success_codes": success,
                "already_exist_codes": existing,
                "fail_codes": failed,
            }
            self.code_answers[number] = answer
            return copy.deepcopy(answer)

        result: dict[str, Any] = self._run("busifavor_upload_codes", number, act)
        return result

    def list_codes(self, stock_id: str, offset: int, limit: int) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            codes = list(self.codes.get(stock_id, {}))
            page = [{"code": c} for c in codes[offset : offset + limit]]
            return {"data": page, "total_count": len(codes), "offset": offset, "limit": limit}

        result: dict[str, Any] = self._run("busifavor_codes", stock_id, act)
        return result

    def get_callback(self, kind: str, mchid: str) -> str | None:
        result: str | None = self._run(
            f"{kind}_callback_get", mchid, lambda: self.callbacks.get(kind)
        )
        return result

    def set_callback(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            self.callbacks[kind] = str(body["notify_url"])
            return {"notify_url": body["notify_url"]}

        result: dict[str, Any] = self._run(f"{kind}_callback", str(body["notify_url"]), act)
        return result

    # --- for assertions --------------------------------------------------------------------

    def count(self, call: str) -> int:
        return sum(1 for c, _ in self.calls if c == call)
