"""The planner and a 代金券's lifecycle: every (file status, observed status) pair, creates that
go live in the same apply, the money an activation locks, and available_items in place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.ids import body_digest, update_request_no
from reconciler.plan import Action, OpType
from tests.test_planner import _favor_detail, applied_state, loaded, only, plan

M = "1900000001"
ID = "spring-sale-10-off-100"
MAX_AMOUNT = 20_000_000

S, P, R, T = OpType.START, OpType.PAUSE, OpType.RESTART, OpType.STOP
PAIRS: list[tuple[str, str, Action, tuple[OpType, ...]]] = [
    # file status, observed status, action, calls
    ("running", "unactivated", Action.UPDATE, (S,)),
    ("running", "audit", Action.NOOP, ()),
    ("running", "running", Action.NOOP, ()),
    ("running", "paused", Action.UPDATE, (R,)),
    ("running", "stoped", Action.IMMUTABLE, ()),
    ("paused", "unactivated", Action.UPDATE, (S, P)),
    ("paused", "audit", Action.NOOP, ()),
    ("paused", "running", Action.UPDATE, (P,)),
    ("paused", "paused", Action.NOOP, ()),
    ("paused", "stoped", Action.IMMUTABLE, ()),
    ("created", "unactivated", Action.NOOP, ()),
    ("created", "audit", Action.NOOP, ()),
    ("created", "running", Action.NOOP, ()),
    ("created", "paused", Action.NOOP, ()),
    ("created", "stoped", Action.NOOP, ()),
    ("stopped", "unactivated", Action.UPDATE, (T,)),
    ("stopped", "audit", Action.NOOP, ()),
    ("stopped", "running", Action.IMMUTABLE, ()),
    ("stopped", "paused", Action.IMMUTABLE, ()),
    ("stopped", "stoped", Action.NOOP, ()),
]


def favor(status: str = "running", mutate: Any = None) -> Any:
    def change(d: dict[str, Any]) -> None:
        d["status"] = status
        if mutate is not None:
            mutate(d)

    return loaded("favor", change)


def observed(stock: Any, status: str, **more: Any) -> dict[str, Any]:
    body = applied_state(stock).stock(ID).sent_body or {}
    detail = {**_favor_detail(body), "status": status, **more}
    use: dict[str, Any] = body["coupon_use_rule"]
    for key in ("trade_type", "combine_use"):  # as sent: this file's values, not the helper's
        detail["stock_use_rule"].pop(key)
        if key in use:
            detail["stock_use_rule"][key] = use[key]
    return {ID: detail}


@pytest.mark.parametrize(("want", "seen", "action", "calls"), PAIRS)
def test_every_status_pair(want: str, seen: str, action: Action, calls: tuple[OpType, ...]) -> None:
    stock = favor(want)
    change = only(plan([stock], applied_state(stock), observed(stock, seen)))
    assert change.action is action, change.reason
    assert tuple(o.type for o in change.operations) == calls
    for op in change.operations:
        assert op.stock_id == "10000000" and op.body == {"stock_creator_mchid": M}
        number = update_request_no(M, "favor", ID, op.type.value, body_digest(op.body))
        assert op.request_no == number
    if calls:
        (status,) = [f for f in change.fields if f.path == "status"]
        assert (status.before, status.after) == (seen, want)
        assert (status.note == "irreversible") == (calls == (T,))
    if action is Action.IMMUTABLE:
        assert change.is_error and "status" in change.reason and change.suggestion


def test_stop_is_marked_irreversible() -> None:
    stock = favor("stopped")
    change = only(plan([stock], applied_state(stock), observed(stock, "unactivated")))
    assert "IRREVERSIBLE" in change.reason


def test_no_lifecycle_call_for_a_stock_whose_validity_ended() -> None:
    stock = favor("running")
    late = datetime(2027, 4, 2, tzinfo=UTC)
    change = only(plan([stock], applied_state(stock), observed(stock, "unactivated"), now=late))
    assert change.action is Action.NOOP and not change.operations


def test_a_status_change_is_never_drift() -> None:
    stock = favor("created")
    change = only(plan([stock], applied_state(stock), observed(stock, "paused")))
    assert change.action is Action.NOOP
    assert change.facts["status"] == "paused"


@pytest.mark.parametrize(
    ("status", "calls"),
    [
        ("running", (OpType.CREATE, S)),
        ("paused", (OpType.CREATE, S, P)),
        ("created", (OpType.CREATE,)),
    ],
)
def test_a_create_goes_live_in_the_same_apply(status: str, calls: tuple[OpType, ...]) -> None:
    change = only(plan([favor(status)]))
    assert change.action is Action.CREATE
    assert tuple(o.type for o in change.operations) == calls
    assert all(o.stock_id is None for o in change.operations)
    activates = S in calls
    assert change.locked_fen == (MAX_AMOUNT if activates else None)
    assert ("activate (start)" in change.reason) == activates


def test_a_create_with_status_stopped_is_blocked() -> None:
    change = only(plan([favor("stopped")]))
    assert change.action is Action.BLOCKED and not change.operations


def test_money_locked_at_activation_is_apart_from_ceilings() -> None:
    prepaid = favor("running")
    free = loaded("favor", lambda d: d["spec"].update(no_cash=True), id="free-ride")
    busi = loaded("busifavor")
    p = plan([prepaid, free, busi])
    by_id = {c.id: c for c in p.changes}
    assert by_id[ID].locked_fen == MAX_AMOUNT and by_id[ID].ceiling_fen is None
    assert by_id["free-ride"].locked_fen is None and by_id["free-ride"].ceiling_fen == MAX_AMOUNT
    assert by_id[busi.stock.id].locked_fen is None
    assert by_id[busi.stock.id].ceiling_fen == 800 * 50_000
    (totals,) = p.totals
    assert totals.activation_locked_fen == MAX_AMOUNT
    assert totals.ceiling_fen == MAX_AMOUNT + 800 * 50_000
    doc = p.to_data()
    assert doc["totals"][0]["activation_locked_fen"] == MAX_AMOUNT
    assert [o["type"] for o in doc["changes"][2]["operations"]] == ["create", "start"]


def test_an_activation_of_an_existing_stock_shows_the_money_it_locks() -> None:
    stock = favor("running")
    p = plan([stock], applied_state(stock), observed(stock, "unactivated"))
    assert only(p).locked_fen == MAX_AMOUNT
    assert p.totals[0].activation_locked_fen == MAX_AMOUNT and p.totals[0].updates == 1


def test_a_pending_start_that_wechat_pay_shows_done_is_settled() -> None:
    stock = favor("running")
    state = applied_state(stock)
    start = update_request_no(M, "favor", ID, "start", body_digest({"stock_creator_mchid": M}))
    state = state.set_pending(
        ID, OpType.START, start, "sha256:x", datetime(2027, 1, 15, tzinfo=UTC)
    )
    change = only(plan([stock], state, observed(stock, "running")))
    assert change.action is Action.RECOVER
    assert [(o.type, o.request_no) for o in change.operations] == [(OpType.START, start)]


# --- available_items ---------------------------------------------------------------------------


def goods(items: list[str] | None) -> Any:
    def change(d: dict[str, Any]) -> None:
        if items is None:
            d["spec"]["coupon_use_rule"].pop("available_items", None)
        else:
            d["spec"]["coupon_use_rule"]["available_items"] = items

    return change


def test_available_items_change_in_place_through_modify_goods_id() -> None:
    before = loaded("favor", goods(["sku-1", "sku-2"]))
    after = loaded("favor", goods(["sku-2", "sku-3"]))
    state = applied_state(before)
    change = only(plan([after], state, observed(before, "running")))
    assert change.action is Action.UPDATE, change.reason
    (op,) = change.operations
    assert op.type is OpType.MODIFY_GOODS_ID
    assert op.body == {
        "stock_creator_mchid": M,
        "add_goods_id_list": "sku-3",
        "delete_goods_id_list": "sku-1",
    }
    assert op.after["coupon_use_rule"]["available_items"] == ["sku-2", "sku-3"]
    assert [f.path for f in change.fields] == ["spec.coupon_use_rule.available_items"]


@pytest.mark.parametrize(("old", "new"), [(["sku-1"], None), (None, ["sku-1"])])
def test_available_items_cannot_be_emptied_or_given_later(
    old: list[str] | None, new: list[str] | None
) -> None:
    before = loaded("favor", goods(old))
    state = applied_state(before)
    change = only(plan([loaded("favor", goods(new))], state, observed(before, "running")))
    assert change.action is Action.IMMUTABLE
    assert "available_items" in change.reason
