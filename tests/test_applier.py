"""The applier's outcomes, table by table, against the in-memory fake of the stock API.

Each case: a plan made by the real planner, one scripted failure (or none), one apply. Then the
result, what WeChat Pay holds (how many stocks, which calls) and what the state records. The
applier sends what the plan says and records what it says; it never re-derives anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.applier import Applier, Outcome, Report
from reconciler.desired import DesiredStock
from reconciler.errors import ApiError
from reconciler.ids import out_request_no
from reconciler.operation import OpType
from reconciler.plan import Action, Plan
from reconciler.planner import PlanInputs, make_plan
from reconciler.runtime import Clock
from reconciler.state.model import State
from reconciler.state.store import StateStore
from tests.fake_api import (
    FakeStockApi,
    already_exists,
    lost_answer,
    refused,
    refused_connection,
    server_error,
)
from tests.test_planner import LINEAGE, loaded

NOW = datetime(2027, 2, 1, 1, 0, tzinfo=UTC)
M = "1900000001"


class World:
    """One merchant at WeChat Pay (the fake), one state file, and the stock files."""

    def __init__(self, root: Path, reuse: str = "idempotent") -> None:
        self.api = FakeStockApi(M, reuse=reuse)  # type: ignore[arg-type]
        self.store = StateStore(root / "state.json", Clock(source=lambda: NOW.timestamp()))
        self.state = self.store.load(create_if_missing=True)

    def plan(self, *desired: DesiredStock) -> Plan:
        self.state = self.store.load(create_if_missing=True)
        return make_plan(PlanInputs(desired=list(desired), state=self.state, observed={}, now=NOW))

    def apply(self, plan: Plan, stop: threading.Event | None = None) -> Report:
        applier = Applier(self.store, self.state, {M: self.api}, lambda: NOW, stop=stop)
        report = applier.apply(plan)
        self.state = self.store.load(create_if_missing=True)
        return report


def only(report: Report) -> Any:
    assert len(report.results) == 1, report.results
    return report.results[0]


def FAVOR() -> DesiredStock:
    return loaded("favor")


def BUSI() -> DesiredStock:
    return loaded("busifavor")


# --- creates -----------------------------------------------------------------------------------


def test_a_create_records_number_body_generation_and_stock_id(tmp_path: Path) -> None:
    w = World(tmp_path)
    plan = w.plan(FAVOR())
    op = plan.changes[0].operations[0]
    result = only(w.apply(plan))
    assert result.outcome is Outcome.SUCCEEDED and "批次号" in result.message
    st = w.state.stock("spring-sale-10-off-100")
    assert st.stock_id == result.stock_id and st.stock_id in w.api.stocks
    assert st.sent_body == op.body and st.out_request_no == op.request_no
    assert st.generation == op.generation == 0
    assert st.pending is None and st.observed is not None
    assert w.api.count("favor_create") == 1


def test_a_create_takes_the_generation_from_the_plan_without_searching(tmp_path: Path) -> None:
    w = World(tmp_path)
    plan = w.plan(loaded("favor", lambda d: d.update(generation=7)))
    op = plan.changes[0].operations[0]
    assert op.generation == 7
    assert op.request_no == out_request_no(M, "favor", "spring-sale-10-off-100", 7)
    assert only(w.apply(plan)).outcome is Outcome.SUCCEEDED
    assert w.state.stock("spring-sale-10-off-100").generation == 7


def test_a_plan_whose_number_is_not_the_derived_one_sends_nothing(tmp_path: Path) -> None:
    w = World(tmp_path)
    plan = w.plan(FAVOR())
    change = plan.changes[0]
    forged = replace(change.operations[0], generation=3)
    plan = replace(plan, changes=(replace(change, operations=(forged,)),))
    result = only(w.apply(plan))
    assert result.outcome is Outcome.FAILED and "not the one reconciler derives" in result.message
    assert w.api.calls == [] and w.state.stocks == {}


CreateCase = tuple[str, str, str, Callable[[], ApiError], str, Outcome, int, str | None]
CREATE_CASES: list[CreateCase] = [
    # kind, reuse, failing call, error, when, outcome, remote stocks, pending outcome left
    ("favor", "idempotent", "favor_create", lost_answer, "after", Outcome.SUCCEEDED, 1, None),
    ("favor", "idempotent", "favor_create", server_error, "after", Outcome.SUCCEEDED, 1, None),
    ("favor", "idempotent", "favor_create", lost_answer, "before", Outcome.UNRESOLVED, 0, "unknown"),
    ("favor", "idempotent", "favor_create", already_exists, "before", Outcome.UNRESOLVED, 0, "already_exists"),
    ("favor", "idempotent", "favor_create", refused, "before", Outcome.FAILED, 0, None),
    ("favor", "idempotent", "favor_create", refused_connection, "before", Outcome.FAILED, 0, None),
    ("busifavor", "idempotent", "busifavor_create", lost_answer, "after", Outcome.UNRESOLVED, 1, "unknown"),
    ("busifavor", "idempotent", "busifavor_create", server_error, "before", Outcome.UNRESOLVED, 0, "unknown"),
    ("busifavor", "idempotent", "busifavor_create", already_exists, "before", Outcome.UNRESOLVED, 0, "already_exists"),
    ("busifavor", "idempotent", "busifavor_create", refused, "before", Outcome.FAILED, 0, None),
    ("busifavor", "idempotent", "busifavor_create", refused_connection, "before", Outcome.FAILED, 0, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "reuse", "call", "error", "when", "outcome", "remote", "pending"), CREATE_CASES
)
def test_a_create_under_one_failure(
    tmp_path: Path,
    kind: str,
    reuse: str,
    call: str,
    error: Callable[[], ApiError],
    when: str,
    outcome: Outcome,
    remote: int,
    pending: str | None,
) -> None:
    w = World(tmp_path, reuse)
    w.api.fail(call, error(), when)  # type: ignore[arg-type]
    stock = loaded(kind)
    result = only(w.apply(w.plan(stock)))
    assert result.outcome is outcome, result
    assert len(w.api.stocks) == remote
    assert w.api.count(call) == 1
    entry = w.state.stocks.get(stock.stock.id)
    if outcome is Outcome.SUCCEEDED:
        assert entry is not None and entry.stock_id in w.api.stocks and entry.pending is None
    elif outcome is Outcome.FAILED:
        # Refused outright: nothing was created, so the body is forgotten and may be corrected.
        assert entry is not None and entry.sent_body is None and entry.pending is None
    else:
        assert entry is not None and entry.stock_id is None and entry.sent_body is not None
        assert entry.pending is not None and entry.pending.outcome == pending
        assert result.suggestion


@pytest.mark.parametrize("kind", ["favor", "busifavor"])
def test_a_create_in_doubt_is_settled_by_the_next_apply_with_one_remote_stock(
    tmp_path: Path, kind: str
) -> None:
    w = World(tmp_path)
    stock = loaded(kind)
    w.api.fail(f"{kind}_create", lost_answer(), "after")
    w.api.fail("favor_list", server_error("GET"))  # the favor look-up fails too, this time
    first = only(w.apply(w.plan(stock)))
    assert first.outcome is Outcome.UNRESOLVED
    again = w.plan(stock)
    assert again.changes[0].action is Action.RECOVER
    sent = w.state.stock(stock.stock.id).sent_body
    assert again.changes[0].operations[0].body == sent
    second = only(w.apply(again))
    assert second.outcome is Outcome.SUCCEEDED
    assert len(w.api.stocks) == 1
    assert w.state.stock(stock.stock.id).stock_id in w.api.stocks


def test_a_busifavor_create_in_doubt_refused_on_reuse_asks_for_an_import(tmp_path: Path) -> None:
    w = World(tmp_path, reuse="reject")
    stock = BUSI()
    w.api.fail("busifavor_create", lost_answer(), "after")
    w.apply(w.plan(stock))
    result = only(w.apply(w.plan(stock)))
    assert result.outcome is Outcome.UNRESOLVED
    assert (
        "state import busifavor-member-day-latte" in result.suggestion
        or "state import" in result.suggestion
    )
    assert w.state.stock(stock.stock.id).pending.outcome == "already_exists"  # type: ignore[union-attr]
    after = w.plan(stock)
    assert after.changes[0].action is Action.UNRESOLVED
    assert len(w.api.stocks) == 1


def test_a_favor_found_by_look_up_is_not_taken_when_another_id_may_own_it(tmp_path: Path) -> None:
    w = World(tmp_path)
    one = FAVOR()
    twin = loaded("favor", id="spring-sale-twin")
    w.api.fail("favor_create", lost_answer(), "after", times=2)
    # Both creates happen before either look-up (otherwise each finds only its own stock).
    barrier, first_list = threading.Barrier(2, timeout=10), w.api.favor_list
    waited: set[int] = set()

    def listed(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()
        return first_list(*args, **kwargs)

    w.api.favor_list = listed  # type: ignore[method-assign]
    report = w.apply(w.plan(one, twin))
    assert len(w.api.stocks) == 2
    outcomes = sorted(r.outcome.value for r in report.results)
    # Both stocks match both creates on every listed field: neither may take either.
    assert outcomes == ["unresolved", "unresolved"]
    assert all(s.stock_id is None for s in w.state.stocks.values())


# --- updates -----------------------------------------------------------------------------------


def _created_busifavor(w: World) -> DesiredStock:
    stock = BUSI()
    assert only(w.apply(w.plan(stock))).outcome is Outcome.SUCCEEDED
    return stock


def _edited(d: dict[str, Any]) -> None:
    d["spec"]["comment"] = "新备注"
    d["spec"]["stock_send_rule"]["max_coupons"] = 60_000


def test_an_update_sends_the_planned_bodies_and_records_the_body_afterwards(tmp_path: Path) -> None:
    w = World(tmp_path)
    _created_busifavor(w)
    plan = w.plan(loaded("busifavor", _edited))
    change = plan.changes[0]
    assert [o.type for o in change.operations] == [OpType.MODIFY, OpType.BUDGET]
    result = only(w.apply(plan))
    assert result.outcome is Outcome.SUCCEEDED
    st = w.state.stock(change.id)
    assert st.applied_body == change.operations[-1].after
    assert st.applied_body is not None
    assert st.applied_body["comment"] == "新备注"
    rule = st.applied_body["stock_send_rule"]
    assert isinstance(rule, dict) and rule["max_coupons"] == 60_000
    remote = w.api.stocks[st.stock_id or ""]
    assert remote["comment"] == "新备注" and remote["stock_send_rule"]["max_coupons"] == 60_000
    assert w.plan(loaded("busifavor", _edited)).changes[0].action is Action.NOOP


def test_an_update_whose_answer_was_lost_is_settled_by_its_own_number(tmp_path: Path) -> None:
    w = World(tmp_path)
    _created_busifavor(w)
    w.api.fail("busifavor_modify", lost_answer("PATCH"), "after")
    first = only(w.apply(w.plan(loaded("busifavor", _edited))))
    assert first.outcome is Outcome.UNRESOLVED
    st = w.state.stock("member-day-latte-8-off")
    assert st.pending is not None and st.pending.action is OpType.MODIFY
    assert st.pending.outcome == "unknown"
    again = w.plan(loaded("busifavor", _edited))
    assert again.changes[0].action is Action.RECOVER
    second = only(w.apply(again))
    assert second.outcome is Outcome.SUCCEEDED
    assert w.api.count("busifavor_modify") == 2  # the resend, answered "already used"
    assert w.state.stock("member-day-latte-8-off").pending is None


def test_an_update_refused_outright_changes_nothing_recorded(tmp_path: Path) -> None:
    w = World(tmp_path)
    _created_busifavor(w)
    before = w.state.stock("member-day-latte-8-off").sent_body
    w.api.fail("busifavor_modify", refused())
    result = only(w.apply(w.plan(loaded("busifavor", _edited))))
    assert result.outcome is Outcome.FAILED
    st = w.state.stock("member-day-latte-8-off")
    assert st.pending is None and (st.applied_body or st.sent_body) == before
    assert w.api.count("busifavor_budget") == 0


def test_nothing_starts_after_stop(tmp_path: Path) -> None:
    w = World(tmp_path)
    stop = threading.Event()
    stop.set()
    result = only(w.apply(w.plan(FAVOR()), stop=stop))
    assert result.outcome is Outcome.SKIPPED
    assert w.api.calls == []


def test_the_state_after_a_run_is_one_lineage(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.apply(w.plan(FAVOR(), BUSI()))
    state: State = w.store.load()
    assert state.lineage == w.state.lineage and state.serial >= 2
    assert state.lineage != LINEAGE  # a real state, not the planner tests' fixed one


def test_no_update_is_sent_to_a_stock_that_is_not_the_one_recorded(tmp_path: Path) -> None:
    w = World(tmp_path)
    _created_busifavor(w)
    plan = w.plan(loaded("busifavor", _edited))
    # Someone else's stock now answers under the recorded stock_id (a state edited by hand).
    remote = w.api.stocks[w.state.stock("member-day-latte-8-off").stock_id or ""]
    remote["stock_name"] = "别人的批次"
    result = only(w.apply(plan))
    assert result.outcome is Outcome.FAILED
    assert "not the one recorded" in result.message and "stock_name" in result.message
    assert w.api.count("busifavor_modify") == 0 and w.api.count("busifavor_budget") == 0
    assert remote["stock_send_rule"]["max_coupons"] == 50_000
