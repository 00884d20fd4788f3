"""The pure planner: desired stocks + state + observed details + clock -> plan."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.desired import DesiredStock
from reconciler.ids import body_digest, out_request_no
from reconciler.kinds import kind_of
from reconciler.loader import load_stock_file
from reconciler.plan import Action, OpType, Plan
from reconciler.planner import PlanInputs, make_plan
from reconciler.state.model import State, StockState
from tests.conftest import dump, example

NOW = datetime(2027, 1, 15, 2, 0, tzinfo=UTC)
LINEAGE = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"


def loaded(kind: str, mutate: Any = None, id: str | None = None) -> DesiredStock:
    data = example(kind)
    if id is not None:
        data["id"] = id
    if mutate is not None:
        mutate(data)
    stock, diagnostics = load_stock_file(dump(data).encode(), f"stocks/{data['id']}.yaml")
    assert stock is not None, diagnostics
    return stock


def applied_state(*stocks: DesiredStock, stock_ids: dict[str, str] | None = None) -> State:
    """A state where each stock was created from its current file."""
    state = State.new(LINEAGE)
    for i, ls in enumerate(stocks):
        s = ls.stock
        entry = StockState.new(s.id, s.kind, s.merchant)
        state = state.with_stock(entry)
        state = state.record_sent(s.id, kind_of(s.kind).create_body(s, entry.out_request_no), NOW)
        state = state.record_created(s.id, (stock_ids or {}).get(s.id, f"1000000{i}"), NOW)
    return state


def plan(
    desired: list[DesiredStock],
    state: State | None = None,
    observed: dict[str, Any] | None = None,
    now: datetime = NOW,
) -> Plan:
    return make_plan(
        PlanInputs(
            desired=desired, state=state or State.new(LINEAGE), observed=observed or {}, now=now
        )
    )


def only(p: Plan) -> Any:
    assert len(p.changes) == 1, p.changes
    return p.changes[0]


def test_create_carries_the_exact_body_number_and_budget() -> None:
    favor = loaded("favor")
    change = only(plan([favor]))
    assert change.action is Action.CREATE
    op = change.operations[0]
    assert op.type is OpType.CREATE and op.generation == 0 and op.after == op.body
    assert op.request_no == out_request_no("1900000001", "favor", "spring-sale-10-off-100")
    assert op.body["out_request_no"] == op.request_no
    assert op.body["stock_use_rule"]["max_amount"] == 20_000_000
    assert "comment" in op.body and "ext_info" not in op.body
    assert change.budget_fen == 20_000_000
    assert "¥200,000.00" in change.reason


def test_busifavor_normal_budget_is_discount_times_coupons() -> None:
    change = only(plan([loaded("busifavor")]))
    assert change.budget_fen == 800 * 50_000


def test_create_blocked_when_begin_has_passed_but_existing_stock_is_fine() -> None:
    favor = loaded("favor")
    late = datetime(2027, 3, 2, tzinfo=UTC)
    blocked = only(plan([favor], now=late))
    assert blocked.action is Action.BLOCKED and blocked.is_error
    assert "in the past" in blocked.reason
    assert not blocked.operations
    existing = only(plan([favor], applied_state(favor), now=late))
    assert existing.action is Action.NOOP


def test_create_blocked_more_than_365_days_ahead() -> None:
    change = only(plan([loaded("favor")], now=datetime(2026, 2, 1, tzinfo=UTC)))
    assert change.action is Action.BLOCKED and "365 days" in change.reason


def line_of_key(kind: str, key: str, mutate: Any = None) -> int:
    """The line of the first `key:` in the stock file `loaded(kind, mutate)` reads."""
    data = example(kind)
    if mutate is not None:
        mutate(data)
    lines = dump(data).splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.lstrip().startswith(f"{key}:"))


def test_a_begin_in_the_past_suggests_later_times_at_the_begin_line() -> None:
    change = only(plan([loaded("favor")], now=datetime(2027, 3, 2, tzinfo=UTC)))
    assert change.action is Action.BLOCKED
    assert change.suggestion.startswith(
        "move available_begin_time (and the end time with it) later"
    )
    assert change.line == line_of_key("favor", "available_begin_time") != loaded("favor").line


def test_a_begin_too_far_ahead_suggests_earlier_times_with_the_days_counted() -> None:
    change = only(plan([loaded("favor")], now=datetime(2026, 2, 1, tzinfo=UTC)))
    assert change.action is Action.BLOCKED
    assert "is 393 days ahead" in change.reason
    assert "earlier" in change.suggestion and "forward" not in change.suggestion
    assert change.line == line_of_key("favor", "available_begin_time")
    busi = only(plan([loaded("busifavor")], now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert busi.action is Action.BLOCKED and "earlier" in busi.suggestion
    assert busi.line == line_of_key("busifavor", "available_begin_time")


def test_an_immutable_change_points_at_the_changed_field() -> None:
    before = loaded("favor")

    def more_per_user(d: dict[str, Any]) -> None:
        d["spec"]["stock_use_rule"].update(max_coupons_per_user=3)

    change = only(plan([loaded("favor", more_per_user)], applied_state(before)))
    assert change.action is Action.IMMUTABLE
    assert change.line == line_of_key("favor", "max_coupons_per_user", more_per_user)
    busi = only(plan([loaded("busifavor", id=before.stock.id)], applied_state(before)))
    assert busi.action is Action.IMMUTABLE and busi.line == line_of_key("busifavor", "kind")


def test_in_sync_is_noop_with_facts() -> None:
    favor = loaded("favor")
    state = applied_state(favor)
    observed = {
        "spring-sale-10-off-100": {
            "stock_name": "春季满100减10",
            "status": "running",
            "distributed_coupons": 7,
        }
    }
    change = only(plan([favor], state, observed))
    assert change.action is Action.NOOP
    assert change.facts == {"status": "running", "distributed_coupons": 7}


def _favor_detail(body: dict[str, Any]) -> dict[str, Any]:
    """What the favor detail endpoint shows for a create body (its own shape)."""
    rule = body["coupon_use_rule"]
    return {
        "stock_id": "10000000",
        "stock_name": body["stock_name"],
        "status": "running",
        "description": body["pattern_info"]["description"],
        "available_begin_time": "2027-02-28T16:00:00.000Z",  # same instant, other spelling
        "available_end_time": body["available_end_time"],
        "stock_use_rule": {
            **body["stock_use_rule"],
            "fixed_normal_coupon": rule["fixed_normal_coupon"],
            "trade_type": "MICROAPP",
            "combine_use": False,
        },
        "no_cash": body["no_cash"],
        "stock_type": "NORMAL",
        "distributed_coupons": 0,
    }


def test_favor_drift_through_the_detail_shape() -> None:
    favor = loaded("favor", lambda d: d["spec"]["coupon_use_rule"].update(trade_type=["MICROAPP"]))
    state = applied_state(favor)
    detail = _favor_detail(state.stock(favor.stock.id).sent_body or {})
    assert (
        only(plan([favor], state, {favor.stock.id: detail})).action is Action.NOOP
    )  # instants, bare string as a set
    drifted = copy.deepcopy(detail)
    drifted["stock_use_rule"]["max_coupons_per_user"] = 5
    drifted["description"] = "改过了"
    drifted["distributed_coupons"] = 99  # moves on its own: a fact, not drift
    change = only(plan([favor], state, {favor.stock.id: drifted}))
    assert change.action is Action.DRIFT and not change.operations
    assert {(f.path, f.before, f.after) for f in change.fields} == {
        ("spec.stock_use_rule.max_coupons_per_user", 5, 2),
        ("spec.pattern_info.description", "改过了", "满100元可用，每人限领2张，不与其他优惠同享。"),
    }
    assert change.facts["distributed_coupons"] == 99


def test_favor_change_after_creation_is_immutable_error() -> None:
    before = loaded("favor")
    after = loaded("favor", lambda d: d["spec"]["stock_use_rule"].update(max_coupons_per_user=3))
    change = only(plan([after], applied_state(before)))
    assert change.action is Action.IMMUTABLE and change.is_error
    assert "cannot be modified" in change.reason and "budget would double" in change.reason
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.stock_use_rule.max_coupons_per_user", 2, 3)
    ]


def test_busifavor_modify_and_budget_updates() -> None:
    before = loaded("busifavor")

    def edit(d: dict[str, Any]) -> None:
        d["spec"]["comment"] = "new note"
        d["spec"]["stock_send_rule"]["max_coupons"] = 60_000
        d["spec"]["stock_send_rule"]["prevent_api_abuse"] = False

    after = loaded("busifavor", edit)
    state = applied_state(before)
    observed = {
        before.stock.id: {"stock_send_rule": {"max_coupons": 50_000}, "stock_state": "RUNNING"}
    }
    change = only(plan([after], state, observed))
    assert change.action is Action.UPDATE
    modify, budget = change.operations
    assert modify.type is OpType.MODIFY and modify.stock_id == "10000000"
    assert modify.body["comment"] == "new note"
    assert modify.body["stock_send_rule"] == {"prevent_api_abuse": False}
    assert modify.body["out_request_no"] == modify.request_no
    assert budget.body == {
        "target_max_coupons": 60_000,
        "current_max_coupons": 50_000,
        "modify_budget_request_no": budget.request_no,
    }
    again = only(plan([after], state, observed))
    assert [o.request_no for o in again.operations] == [
        modify.request_no,
        budget.request_no,
    ]  # deterministic


def test_busifavor_immutable_fields() -> None:
    before = loaded("busifavor")
    after = loaded(
        "busifavor",
        lambda d: d["spec"]["coupon_use_rule"]["fixed_normal_coupon"].update(discount_amount=900),
    )
    change = only(plan([after], applied_state(before)))
    assert change.action is Action.IMMUTABLE
    assert (
        change.fields[0].money
        and change.fields[0].path == "spec.coupon_use_rule.fixed_normal_coupon.discount_amount"
    )


def test_update_after_validity_end_is_blocked() -> None:
    before = loaded("busifavor")
    after = loaded("busifavor", lambda d: d["spec"].update(comment="later"))
    change = only(plan([after], applied_state(before), now=datetime(2027, 6, 1, tzinfo=UTC)))
    assert change.action is Action.BLOCKED and "ended" in change.reason


def test_orphan_is_reported_never_acted_on() -> None:
    favor = loaded("favor")
    change = only(plan([], applied_state(favor)))
    assert change.action is Action.ORPHAN and not change.operations and not change.is_error
    assert "cannot be deleted" in change.reason


def test_renamed_id_is_refused_with_state_mv() -> None:
    old = loaded("favor")
    new = loaded("favor", id="spring-sale-renamed")
    p = plan([new], applied_state(old))
    by_id = {c.id: c for c in p.changes}
    assert by_id["spring-sale-renamed"].action is Action.RENAME
    assert (
        by_id["spring-sale-renamed"].suggestion
        == "reconciler state mv spring-sale-10-off-100 spring-sale-renamed"
    )
    assert by_id["spring-sale-10-off-100"].action is Action.ORPHAN
    assert p.has_errors


def test_interrupted_create_is_recovered_with_the_recorded_body() -> None:
    favor = loaded("favor")
    entry = StockState.new(favor.stock.id, "favor", "1900000001")
    sent = kind_of("favor").create_body(favor.stock, entry.out_request_no)
    state = State.new(LINEAGE).with_stock(entry).record_sent(favor.stock.id, sent, NOW)
    edited = loaded("favor", lambda d: d["spec"].update(comment="edited after the crash"))
    change = only(plan([edited], state))
    assert change.action is Action.RECOVER
    assert change.operations[0].body == sent  # never a new body under the same number
    assert "recorded body is resent unchanged" in change.reason


def test_busifavor_number_reused_without_stock_is_unresolved_with_import() -> None:
    busi = loaded("busifavor")
    entry = StockState.new(busi.stock.id, "busifavor", "1900000001")
    state = (
        State.new(LINEAGE)
        .with_stock(entry)
        .record_sent(
            busi.stock.id, kind_of("busifavor").create_body(busi.stock, entry.out_request_no), NOW
        )
    )
    state = state.mark_outcome(busi.stock.id, "already_exists")
    change = only(plan([busi], state))
    assert change.action is Action.UNRESOLVED and change.is_error
    assert change.suggestion.endswith(f"reconciler state import {busi.stock.id} <stock_id>")


def test_kind_change_is_immutable() -> None:
    favor = loaded("favor")
    state = applied_state(favor)
    busi = loaded("busifavor", id=favor.stock.id)
    change = only(plan([busi], state))
    assert change.action is Action.IMMUTABLE and "kind and merchant cannot change" in change.reason


def test_a_create_after_state_rm_is_an_error_naming_the_remote_stock() -> None:
    favor = loaded("favor")
    state = applied_state(favor).without_stock(favor.stock.id)
    change = only(plan([favor], state))
    assert change.action is Action.UNTRACKED and change.is_error
    assert change.stock_id == "10000000" and not change.operations
    assert "second stock" in change.reason and "10000000" in change.reason
    assert f"reconciler state import {favor.stock.id} 10000000" in change.suggestion
    assert "generation: 1" in change.suggestion


def test_a_raised_generation_asks_for_a_further_stock_on_purpose() -> None:
    favor = loaded("favor")
    state = applied_state(favor).without_stock(favor.stock.id)
    again = loaded("favor", lambda d: d.update(generation=1))
    change = only(plan([again], state))
    assert change.action is Action.CREATE
    op = change.operations[0]
    assert op.generation == 1
    assert op.request_no == out_request_no("1900000001", "favor", favor.stock.id, 1)
    assert not state.request_no_in_use(op.request_no)
    assert "on purpose" in change.reason and "10000000" in change.reason
    assert change.budget_fen == 20_000_000  # the money counts again


def test_a_renamed_stock_does_not_block_a_new_file_with_the_old_id() -> None:
    favor = loaded("favor")
    state = applied_state(favor).renamed(favor.stock.id, "spring-renamed")
    moved = loaded("favor", id="spring-renamed")
    fresh = loaded("favor", lambda d: d["spec"].update(comment="新的一期"))
    p = plan([moved, fresh], state)
    change = next(c for c in p.changes if c.id == favor.stock.id)
    assert change.action is Action.CREATE
    assert change.operations[0].generation == 1  # generation 0's number is the renamed stock's


def test_an_update_to_a_stock_read_back_with_another_identity_is_a_mismatch() -> None:
    busi = loaded("busifavor")
    state = applied_state(busi)
    detail = {**(state.stock(busi.stock.id).sent_body or {}), "stock_name": "别人的批次"}
    edited = loaded("busifavor", lambda d: d["spec"].update(comment="new note"))
    change = only(plan([edited], state, {busi.stock.id: detail}))
    assert change.action is Action.MISMATCH and change.is_error and not change.operations
    assert [f.path for f in change.fields] == ["spec.stock_name"]
    # With nothing to send, the same difference is reported as drift.
    unchanged = only(plan([busi], state, {busi.stock.id: detail}))
    assert unchanged.action is Action.DRIFT


def test_per_merchant_totals_count_recovers_apart_from_creates() -> None:
    favor = loaded("favor")
    busi = loaded("busifavor")
    entry = StockState.new(favor.stock.id, "favor", favor.stock.merchant)
    body = kind_of("favor").create_body(favor.stock, entry.out_request_no)
    state = State.new(LINEAGE).with_stock(entry).record_sent(favor.stock.id, body, NOW)
    p = plan([favor, busi], state)
    assert p.counts()["create"] == 1 and p.counts()["recover"] == 1
    (totals,) = p.totals
    assert (totals.creates, totals.recovers, totals.updates) == (1, 1, 0)
    assert totals.create_budget_fen == 20_000_000 + 800 * 50_000


@pytest.mark.parametrize(("count", "seconds"), [(1, 0.0), (61, 60.0), (121, 120.0)])
def test_estimated_time_follows_the_favor_create_limit(count: int, seconds: float) -> None:
    stocks = [
        loaded(
            "favor",
            lambda d, i=i: d.update(status="created") or d["spec"].update(comment=f"c{i}"),
            id=f"s-{i:03d}",
        )
        for i in range(count)
    ]
    p = plan(stocks)
    (totals,) = p.totals
    assert totals.creates == count and totals.create_budget_fen == 20_000_000 * count
    assert totals.estimated_seconds == pytest.approx(seconds, abs=1.0)


def test_plan_is_stable_and_round_trips() -> None:
    stocks = [loaded("busifavor"), loaded("favor")]
    a, b = plan(stocks), plan(list(reversed(stocks)))
    assert [c.id for c in a.changes] == sorted(c.id for c in a.changes)
    assert a.checksum() == b.checksum()
    assert Plan.from_data(a.to_data()) == a
    assert body_digest(a.changes[0].operations[0].body).startswith("sha256:")
