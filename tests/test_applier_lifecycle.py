"""The applier and a 代金券's lifecycle, table by table, against the in-memory fake.

Each case: a plan made by the real planner (from the stock details as WeChat Pay shows them),
one scripted failure, one apply; then the result, what WeChat Pay holds (status, how many
activations) and what the state records; then the next plan and apply, which must converge.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.applier import Activation, Applier, Outcome, Report
from reconciler.desired import DesiredStock
from reconciler.errors import ApiError
from reconciler.plan import Action, Plan
from reconciler.planner import PlanInputs, make_plan
from tests.fake_api import lost_answer, refused, refused_connection, server_error
from tests.test_applier import NOW, World, only
from tests.test_planner import loaded

M = "1900000001"
ID = "spring-sale-10-off-100"
FAST = Activation(delay_seconds=0, retry_seconds=0, max_attempts=3)


def not_registered() -> ApiError:
    return refused("INVALID_REQUEST", "卡包信息尚未注册完成,请稍后再试")


def not_enough() -> ApiError:
    return refused("NOT_ENOUGH", "激活失败:账户余额不足,请充值")


def favor(status: str = "running", id: str = ID) -> DesiredStock:
    return loaded("favor", lambda d: d.update(status=status), id=id)


def plan(w: World, *desired: DesiredStock) -> Plan:
    """A plan from the details WeChat Pay shows now (the default refresh)."""
    w.state = w.store.load(create_if_missing=True)
    observed = {
        s.id: w.api.favor_detail(s.stock_id, M) for s in w.state.stocks.values() if s.stock_id
    }
    w.api.calls.clear()
    return make_plan(PlanInputs(desired=list(desired), state=w.state, observed=observed, now=NOW))


def apply(
    w: World, p: Plan, activation: Activation = FAST, stop: threading.Event | None = None
) -> Report:
    applier = Applier(w.store, w.state, {M: w.api}, lambda: NOW, activation=activation, stop=stop)
    report = applier.apply(p)
    w.state = w.store.load(create_if_missing=True)
    return report


def remote(w: World, id: str = ID) -> str:
    return w.api.status[w.state.stock(id).stock_id or ""]


def recorded(w: World, id: str = ID) -> str | None:
    observed = w.state.stock(id).observed or {}
    status = observed.get("status")
    return status if isinstance(status, str) else None


def converge(w: World, stock: DesiredStock) -> Report:
    report = apply(w, plan(w, stock))
    again = plan(w, stock)
    assert not again.has_changes, [c.reason for c in again.changes]
    return report


# --- activation after a create -----------------------------------------------------------------

StartCase = tuple[Callable[[], ApiError], str, int, Outcome, str, int]
START_CASES: list[StartCase] = [
    # error, when, times, outcome, remote status after the first apply, starts sent
    (not_registered, "before", 2, Outcome.SUCCEEDED, "running", 3),
    (server_error, "before", 1, Outcome.SUCCEEDED, "running", 2),
    (lost_answer, "after", 1, Outcome.SUCCEEDED, "running", 2),
    (lost_answer, "before", 1, Outcome.SUCCEEDED, "running", 2),
    (not_registered, "before", 5, Outcome.FAILED, "unactivated", 3),
    (not_enough, "before", 1, Outcome.FAILED, "unactivated", 1),
    (lambda: refused("RULE_LIMIT", "商户运行中的批次数量已达上限"), "before", 1, Outcome.FAILED, "unactivated", 1),
]  # fmt: skip


@pytest.mark.parametrize(("error", "when", "times", "outcome", "status", "starts"), START_CASES)
def test_an_activation_after_a_create_under_one_failure(
    tmp_path: Path,
    error: Callable[[], ApiError],
    when: str,
    times: int,
    outcome: Outcome,
    status: str,
    starts: int,
) -> None:
    w = World(tmp_path)
    w.api.fail("favor_start", error(), when, times)  # type: ignore[arg-type]
    result = only(apply(w, plan(w, favor())))
    assert result.outcome is outcome, result
    st = w.state.stock(ID)
    assert result.stock_id == st.stock_id and st.stock_id in w.api.stocks
    assert f"created stock_id {st.stock_id}" in result.message
    assert w.api.count("favor_create") == 1 and w.api.count("favor_start") == starts
    assert remote(w) == status == recorded(w)
    assert st.pending is None
    if outcome is Outcome.FAILED:
        assert "not activated" in result.message and "next apply activates it" in result.message
        assert error().message in result.message  # type: ignore[attr-defined]
    # The next apply activates what is left; never a second stock, never a second activation.
    w.api.failures.clear()
    next_plan = plan(w, favor())
    if outcome is Outcome.FAILED:
        assert next_plan.changes[0].action is Action.UPDATE
    converge(w, favor())
    assert len(w.api.stocks) == 1 and w.api.activations == {st.stock_id: 1}
    assert remote(w) == "running" == recorded(w)


@pytest.mark.parametrize("readable", [True, False])
def test_a_start_whose_answer_was_lost_then_unreachable_is_never_reported_unactivated(
    tmp_path: Path, readable: bool
) -> None:
    """The first start lands but its answer is lost (WeChat Pay went away mid-answer); every
    resend then finds no server, until the attempts run out. The stock is running and its
    budget locked: apply must not drop the intent and call it "not activated", else the state
    keeps `unactivated` and the next plan, seeing it running, has nothing to correct it."""
    w = World(tmp_path)
    w.api.fail("favor_start", lost_answer(), "after")
    w.api.fail("favor_start", refused_connection(), "before", times=2)
    if not readable:  # still away when apply reads the stock back
        w.api.fail("favor_detail", refused_connection("GET"), "before", times=2)
    result = only(apply(w, plan(w, favor())))
    st = w.state.stock(ID)
    assert w.api.count("favor_start") == FAST.max_attempts and remote(w) == "running"
    if readable:
        # Read back: running, so activated after all, and recorded as such.
        assert result.outcome is Outcome.SUCCEEDED, result
        assert st.pending is None and recorded(w) == "running"
    else:
        # Cannot tell: the intent stays in doubt for the next apply to read back.
        assert result.outcome is Outcome.UNRESOLVED, result
        assert result.suggestion == "reconciler apply"
        assert st.pending is not None and st.pending.outcome == "unknown"
        assert plan(w, favor()).changes[0].action is Action.RECOVER
        assert only(converge(w, favor())).outcome is Outcome.SUCCEEDED
        assert w.api.count("favor_start") == 0  # settled by reading it back
    assert w.state.stock(ID).pending is None
    assert remote(w) == "running" == recorded(w)
    assert w.api.activations == {st.stock_id: 1}
    assert not plan(w, favor()).has_changes


def test_status_created_never_activates(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert only(converge(w, favor("created"))).outcome is Outcome.SUCCEEDED
    assert w.api.count("favor_start") == 0 and remote(w) == "unactivated"


def test_an_activation_waiting_for_registration_does_not_hold_up_other_stocks(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.api.fail("favor_start", not_registered(), times=1)
    p = plan(w, favor(), favor(id="second-stock"))
    applier = Applier(
        w.store,
        w.state,
        {M: w.api},
        lambda: NOW,
        concurrency=1,
        activation=Activation(delay_seconds=0, retry_seconds=0.3, max_attempts=3),
    )
    report = applier.apply(p)
    assert [r.outcome for r in report.results] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]
    calls = [c for c, _ in w.api.calls if c in ("favor_create", "favor_start")]
    # One worker: the second stock is created and activated while the first one waits.
    assert calls == [
        "favor_create",
        "favor_start",
        "favor_create",
        "favor_start",
        "favor_start",
    ], calls


def test_ctrl_c_while_an_activation_waits_leaves_it_for_the_next_apply(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.api.fail("favor_start", not_registered(), times=1)
    stop = threading.Event()
    slow = Activation(delay_seconds=0, retry_seconds=30, max_attempts=3)
    p = plan(w, favor())
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        result = only(apply(w, p, slow, stop))
    finally:
        timer.cancel()
    assert result.outcome is Outcome.SKIPPED and "next apply activates it" in result.message
    assert w.state.stock(ID).stock_id is not None and remote(w) == "unactivated"
    converge(w, favor())
    assert remote(w) == "running"


# --- pause, restart, stop of an existing stock -------------------------------------------------

Transition = tuple[str, str, str, str]
TRANSITIONS: list[Transition] = [
    # remote status before, file status, call, remote status after
    ("running", "paused", "favor_pause", "paused"),
    ("paused", "running", "favor_restart", "running"),
    ("unactivated", "stopped", "favor_stop", "stoped"),
]
FAILURES: list[tuple[Callable[[], ApiError], str, Outcome]] = [
    (lambda: lost_answer(), "after", Outcome.UNRESOLVED),
    (lambda: lost_answer(), "before", Outcome.UNRESOLVED),
    (lambda: server_error(), "after", Outcome.UNRESOLVED),
    (lambda: refused("INVALID_REQUEST", "非法的批次状态"), "before", Outcome.FAILED),
]


def existing(w: World, status: str) -> None:
    """A stock created with `status: created`, then moved to `status` at WeChat Pay."""
    assert only(converge(w, favor("created"))).outcome is Outcome.SUCCEEDED
    w.api.status[w.state.stock(ID).stock_id or ""] = status


@pytest.mark.parametrize(("before", "want", "call", "after"), TRANSITIONS)
def test_a_transition_succeeds_and_records_the_status_read_back(
    tmp_path: Path, before: str, want: str, call: str, after: str
) -> None:
    w = World(tmp_path)
    existing(w, before)
    result = only(apply(w, plan(w, favor(want))))
    assert result.outcome is Outcome.SUCCEEDED
    assert w.api.count(call) == 1
    assert remote(w) == after == recorded(w)
    assert not plan(w, favor(want)).has_changes
    assert w.state.stock(ID).pending is None


@pytest.mark.parametrize(("before", "want", "call", "after"), TRANSITIONS)
@pytest.mark.parametrize(("error", "when", "outcome"), FAILURES)
def test_a_transition_under_one_failure_converges_with_one_effect(
    tmp_path: Path,
    before: str,
    want: str,
    call: str,
    after: str,
    error: Callable[[], ApiError],
    when: str,
    outcome: Outcome,
) -> None:
    w = World(tmp_path)
    existing(w, before)
    w.api.fail(call, error(), when)  # type: ignore[arg-type]
    result = only(apply(w, plan(w, favor(want))))
    assert result.outcome is outcome, result
    st = w.state.stock(ID)
    if outcome is Outcome.UNRESOLVED:
        assert st.pending is not None and st.pending.outcome == "unknown"
        assert result.suggestion == "reconciler apply"
        # The next plan settles it: resent if it did not happen, read back if it did.
        again = plan(w, favor(want))
        assert again.changes[0].action is Action.RECOVER
        report = apply(w, again)
        assert only(report).outcome is Outcome.SUCCEEDED, report
        assert w.api.count(call) == (0 if when == "after" else 1)
    else:
        assert st.pending is None and remote(w) == before
        converge(w, favor(want))
    assert remote(w) == after == recorded(w)
    assert w.state.stock(ID).pending is None
    assert not plan(w, favor(want)).has_changes


def test_a_stopped_stock_is_never_started_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    existing(w, "unactivated")
    converge(w, favor("stopped"))
    change = plan(w, favor("running")).changes[0]
    assert change.action is Action.IMMUTABLE and not change.operations


# --- available_items ---------------------------------------------------------------------------


def with_goods(items: list[str], status: str = "created") -> DesiredStock:
    def change(d: dict[str, Any]) -> None:
        d["status"] = status
        d["spec"]["coupon_use_rule"]["available_items"] = items

    return loaded("favor", change)


def test_available_items_change_in_place_and_are_read_back(tmp_path: Path) -> None:
    w = World(tmp_path)
    converge(w, with_goods(["sku-1", "sku-2"]))
    result = only(converge(w, with_goods(["sku-2", "sku-3"])))
    assert result.outcome is Outcome.SUCCEEDED
    stock_id = w.state.stock(ID).stock_id or ""
    assert w.api.stocks[stock_id]["coupon_use_rule"]["available_items"] == ["sku-2", "sku-3"]
    applied: dict[str, Any] = w.state.stock(ID).applied_body or {}
    assert applied["coupon_use_rule"]["available_items"] == ["sku-2", "sku-3"]
    assert len(w.api.stocks) == 1


def test_a_goods_change_whose_answer_was_lost_is_settled_by_reading_the_items(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    converge(w, with_goods(["sku-1"]))
    w.api.fail("favor_modify_goods_id", lost_answer(), "after")
    first = only(apply(w, plan(w, with_goods(["sku-1", "sku-9"]))))
    assert first.outcome is Outcome.UNRESOLVED
    # The resend is refused (sku-9 is there already); the items list shows it landed.
    assert only(converge(w, with_goods(["sku-1", "sku-9"]))).outcome is Outcome.SUCCEEDED
    assert w.state.stock(ID).pending is None


def test_a_goods_change_that_does_not_show_in_the_items_is_not_recorded(tmp_path: Path) -> None:
    w = World(tmp_path)
    converge(w, with_goods(["sku-1"]))
    w.api.favor_modify_goods_id = lambda stock_id, body: {}  # type: ignore[method-assign]
    result = only(apply(w, plan(w, with_goods(["sku-1", "sku-9"]))))
    assert result.outcome is Outcome.FAILED and "reading it back" in result.message
    applied: dict[str, Any] = w.state.stock(ID).applied_body or w.state.stock(ID).sent_body or {}
    assert applied["coupon_use_rule"]["available_items"] == ["sku-1"]
