"""Plans made by the real planner from the example stocks, for the renderer goldens.

`mixed_plan()`: creates of both kinds, a 商家券 budget increase (50,000 → 60,000 coupons at ¥8:
+¥80,000), a 代金券 lifecycle change (pause), an immutable error and drift. `plan_150()`: 150
stocks (creates of both kinds, budget increases, stocks in sync) for the comment's size limit.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from reconciler.desired import DesiredStock
from reconciler.plan import Plan
from reconciler.planner import PlanInputs, make_plan
from reconciler.state.model import State
from tests.test_planner import LINEAGE, _favor_detail, applied_state, loaded

NOW = datetime(2027, 1, 15, 2, 0, tzinfo=UTC)


def _plan(desired: list[DesiredStock], state: State, observed: dict[str, Any]) -> Plan:
    return make_plan(
        PlanInputs(
            desired=desired,
            state=state,
            observed=observed,
            now=NOW,
            desired_digest="sha256:" + "0" * 64,
            tool_version="0.1.0",
        )
    )


def _favor_observed(state: State, id: str, **more: Any) -> dict[str, Any]:
    body = state.stock(id).sent_body or {}
    detail = _favor_detail(dict(body))
    use = body["coupon_use_rule"]
    assert isinstance(use, dict)
    for key in ("trade_type", "combine_use"):  # as sent: this file's values
        detail["stock_use_rule"].pop(key)
        if key in use:
            detail["stock_use_rule"][key] = use[key]
    return {**detail, **more}


def _busifavor_observed(state: State, id: str, **more: Any) -> dict[str, Any]:
    body = copy.deepcopy(dict(state.stock(id).sent_body or {}))
    body.pop("out_request_no", None)
    return {**body, "stock_state": "RUNNING", **more}


def _coupons(n: int) -> Any:
    def edit(d: dict[str, Any]) -> None:
        d["spec"]["stock_send_rule"]["max_coupons"] = n

    return edit


def _status(status: str) -> Any:
    def edit(d: dict[str, Any]) -> None:
        d["status"] = status

    return edit


def _favor_more_coupons(d: dict[str, Any]) -> None:
    d["spec"]["stock_use_rule"]["max_coupons"] = 30000
    d["spec"]["stock_use_rule"]["max_amount"] = 30000000


def mixed_plan() -> Plan:
    latte = loaded("busifavor", id="member-day-latte-8-off")
    latte_more = loaded("busifavor", _coupons(60_000), id="member-day-latte-8-off")
    paused = loaded("favor", _status("paused"), id="autumn-sale-5-off")
    running = loaded("favor", id="autumn-sale-5-off")
    fixed = loaded("favor", id="winter-sale-20-off")
    fixed_more = loaded("favor", _favor_more_coupons, id="winter-sale-20-off")
    drifted = loaded("favor", id="summer-sale-8-off")
    state = applied_state(latte, running, fixed, drifted)
    observed = {
        "member-day-latte-8-off": _busifavor_observed(
            state,
            "member-day-latte-8-off",
            send_count_information={"total_send_num": 3120, "total_send_amount": 2496000},
        ),
        "autumn-sale-5-off": _favor_observed(
            state, "autumn-sale-5-off", status="running", distributed_coupons=812
        ),
        "winter-sale-20-off": _favor_observed(state, "winter-sale-20-off", distributed_coupons=0),
        "summer-sale-8-off": {
            **_favor_observed(state, "summer-sale-8-off", distributed_coupons=41),
            "stock_use_rule": {
                **_favor_observed(state, "summer-sale-8-off")["stock_use_rule"],
                "max_coupons_per_user": 5,
            },
        },
    }
    desired = [
        loaded("favor", id="spring-sale-10-off-100"),
        loaded("busifavor", id="weekend-pastry-exchange-new", mutate=_pastry),
        loaded("busifavor", id="member-day-mocha-5-off", mutate=_mocha),
        latte_more,
        paused,
        fixed_more,
        drifted,
    ]
    return _plan(desired, state, observed)


def _pastry(d: dict[str, Any]) -> None:
    """The repository's 商家券 exchange example, under another id."""
    from ruamel.yaml import YAML

    from tests.conftest import ROOT

    path = ROOT / "stocks" / "busifavor" / "weekend-pastry-exchange.yaml"
    d["spec"] = dict(YAML(typ="safe").load(path.read_text(encoding="utf-8")))["spec"]


def _mocha(d: dict[str, Any]) -> None:
    d["spec"]["stock_name"] = "会员日摩卡减5元"
    d["spec"]["coupon_use_rule"]["fixed_normal_coupon"]["discount_amount"] = 500


def _as(base: DesiredStock, id: str, coupons: int | None = None) -> DesiredStock:
    """`base` under another id (and another max_coupons): a file loaded once, copied."""
    stock = base.stock.model_copy(update={"id": id})
    if coupons is not None:
        spec = stock.spec
        rule = spec.stock_send_rule.model_copy(update={"max_coupons": coupons})  # type: ignore[union-attr]
        stock = stock.model_copy(update={"spec": spec.model_copy(update={"stock_send_rule": rule})})
    return replace(base, stock=stock, file=f"stocks/{id}.yaml")


@cache
def plan_150() -> Plan:
    """150 stocks: 30 代金券 and 20 商家券 creates, 80 商家券 budget increases, 20 in sync."""
    favor, busifavor = loaded("favor"), loaded("busifavor")
    desired = [_as(favor, f"city-{i:03d}-10-off-100") for i in range(30)]
    desired += [_as(busifavor, f"store-{i:03d}-latte-8-off") for i in range(20)]
    applied = [_as(busifavor, f"member-{i:03d}-latte-8-off") for i in range(80)]
    desired += [
        _as(busifavor, s.stock.id, 50_000 + 1000 * (i % 5 + 1)) for i, s in enumerate(applied)
    ]
    quiet = [_as(busifavor, f"quiet-{i:03d}-latte-8-off") for i in range(20)]
    desired += quiet
    state = applied_state(*applied, *quiet)
    observed = {s.stock.id: _busifavor_observed(state, s.stock.id) for s in applied + quiet}
    return _plan(desired, state, observed)


__all__ = ["LINEAGE", "mixed_plan", "plan_150"]
