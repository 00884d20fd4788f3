"""Notify URLs as desired state: reconciler.yaml validation at line:col, the plan's verdicts
(set, in sync, drift, settle, permission), apply against the fake, and the emulator's two
endpoints with their validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.applier import Outcome
from reconciler.callbacks import Unreadable, change_id, key, plan_callbacks
from reconciler.callbacks_apply import read
from reconciler.config import load_project
from reconciler.emulator import Emulator, EmulatorSettings
from reconciler.engine.workspace import make_client
from reconciler.operation import OpType
from reconciler.plan import Action, Change
from reconciler.planner import PlanInputs, make_plan
from reconciler.runtime import Runtime
from reconciler.state.model import State
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.errors import ApiResponseError
from tests.e2e_support import MCHID, make_workspace, register_merchants, shared_keys
from tests.fake_api import lost_answer
from tests.test_applier import NOW, M, World
from tests.test_config import GOOD, write
from tests.test_planner import LINEAGE

URL = "https://shop.example.com/wechatpay/favor"
OTHER = "https://elsewhere.example.com/notify"
K = key(M, "favor")


# --- reconciler.yaml ---------------------------------------------------------------------------


def with_callbacks(lines: str) -> str:
    return GOOD + "    callbacks:\n" + lines


def test_callbacks_are_read_per_merchant_and_kind(tmp_path: Path) -> None:
    text = with_callbacks(f"      favor: {URL}\n      busifavor: {OTHER}\n")
    project, diagnostics = load_project(write(tmp_path, text))
    assert diagnostics == [] and project is not None
    assert project.callback_urls() == {K: URL, key(M, "busifavor"): OTHER}


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://shop.example.com/notify", "must be an https URL"),
        ("https://shop.example.com/notify?shop=1", "no query string"),
        ("https:///notify", "has no host"),
        ("https://shop.example.com/" + "a" * 300, "at most 256"),
    ],
)
def test_a_bad_callback_url_is_an_error_at_its_line(tmp_path: Path, url: str, needle: str) -> None:
    project, diagnostics = load_project(
        write(tmp_path, with_callbacks(f"      busifavor: {url}\n"))
    )
    assert project is None
    d = diagnostics[0]
    assert (d.file, d.line, d.field) == ("reconciler.yaml", 14, "merchants[0].callbacks.busifavor")
    assert d.col > 1 and needle in d.message


def test_an_unknown_kind_under_callbacks_is_an_error(tmp_path: Path) -> None:
    project, diagnostics = load_project(write(tmp_path, with_callbacks(f"      favour: {URL}\n")))
    assert project is None and diagnostics[0].field == "merchants[0].callbacks.favour"


# --- the plan ----------------------------------------------------------------------------------


def state_with(url: str | None = None, pending: str | None = None) -> State:
    state = State.new(LINEAGE)
    if url is None and pending is None:
        return state
    if url is not None:
        state = state.set_callback(K, url=url, pending=None)
    return state.set_callback(K, pending=pending)


def verdict(state: State, observed: Any, desired: str = URL) -> Change:
    seen = None if observed is ... else {K: observed}
    (change,) = plan_callbacks({K: desired}, state, seen)
    return change


def test_a_new_url_is_set_and_shown_as_old_to_new() -> None:
    change = verdict(state_with(), None)
    assert change.action is Action.UPDATE and change.id == change_id(M, "favor")
    assert change.setting == "callback" and "callback favor: (none) → " + URL in change.reason
    (op,) = change.operations
    assert op.type is OpType.CALLBACK
    assert op.body == {"mchid": M, "notify_url": URL, "switch": True}
    busi = plan_callbacks({key(M, "busifavor"): URL}, State.new(LINEAGE), {})[0]
    assert busi.operations[0].body == {"mchid": M, "notify_url": URL}


def test_a_changed_url_is_an_update_from_what_wechat_pay_shows() -> None:
    change = verdict(state_with(OTHER), OTHER)
    assert change.action is Action.UPDATE
    assert (change.fields[0].before, change.fields[0].after) == (OTHER, URL)


def test_in_sync_is_a_no_op_and_changed_elsewhere_is_drift() -> None:
    assert verdict(state_with(URL), URL).action is Action.NOOP
    drift = verdict(state_with(URL), OTHER)
    assert drift.action is Action.DRIFT and not drift.operations
    assert (drift.fields[0].before, drift.fields[0].after) == (URL, OTHER)


def test_a_set_in_doubt_that_landed_is_settled_by_reading_it_back() -> None:
    change = verdict(state_with(pending=URL), URL)
    assert change.action is Action.RECOVER and change.operations
    assert verdict(state_with(URL), ...).action is Action.NOOP  # not refreshed


def test_no_permission_names_the_permission() -> None:
    message = "merchant 1900000001 may not set the busifavor ... 营销事件推送"
    k = key(M, "busifavor")
    (change,) = plan_callbacks({k: URL}, State.new(LINEAGE), {k: Unreadable(message, True)})
    assert change.action is Action.BLOCKED and change.is_error
    assert "营销事件推送" in change.suggestion


def test_the_plan_orders_callbacks_among_the_stocks_by_id() -> None:
    plan = make_plan(
        PlanInputs(desired=[], state=State.new(LINEAGE), observed={}, now=NOW, callbacks={K: URL})
    )
    assert [c.id for c in plan.changes] == [change_id(M, "favor")]
    assert plan.has_changes


# --- apply against the fake --------------------------------------------------------------------


def callback_plan(w: World, observed: dict[str, Any] | None = None) -> Any:
    w.state = w.store.load(create_if_missing=True)
    return make_plan(
        PlanInputs(
            desired=[], state=w.state, observed={}, now=NOW, callbacks={K: URL},
            observed_callbacks=observed,
        )
    )  # fmt: skip


def test_apply_sets_the_url_and_records_it(tmp_path: Path) -> None:
    w = World(tmp_path)
    (result,) = w.apply(callback_plan(w, {K: None})).results
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert w.api.callbacks == {"favor": URL} and w.api.count("favor_callback") == 1
    assert w.state.callbacks[K].url == URL and w.state.callbacks[K].pending is None
    assert not callback_plan(w, {K: URL}).has_changes


def test_a_lost_answer_is_settled_without_a_second_send(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.api.fail("favor_callback", lost_answer(), when="after")
    (result,) = w.apply(callback_plan(w, {K: None})).results
    assert result.outcome is Outcome.UNRESOLVED
    assert w.state.callbacks[K].pending == URL
    plan = callback_plan(w, {K: w.api.callbacks.get("favor")})
    assert plan.changes[0].action is Action.RECOVER
    (result,) = w.apply(plan).results
    assert result.outcome is Outcome.SUCCEEDED and "nothing sent" in result.message
    assert w.api.count("favor_callback") == 1
    assert w.state.callbacks[K].url == URL and w.state.callbacks[K].pending is None


def test_no_permission_on_set_is_a_clear_message(tmp_path: Path) -> None:
    w = World(tmp_path)
    denied = ApiResponseError(
        status=403, method="POST", path="/x", code="NO_AUTH", message="无权限"
    )
    w.api.fail("busifavor_callback", denied)
    k = key(M, "busifavor")
    plan = make_plan(
        PlanInputs(
            desired=[], state=w.state, observed={}, now=NOW, callbacks={k: URL},
            observed_callbacks={k: None},
        )
    )  # fmt: skip
    (result,) = w.apply(plan).results
    assert result.outcome is Outcome.FAILED
    assert "营销事件推送 (marketing-event push) permission" in result.message
    assert "APIv3 key" in result.message
    assert w.state.callbacks[k].pending is None


# --- the emulator ------------------------------------------------------------------------------


DENIED = "1900000002"


class Emulated:
    """The emulator in this process, and a client of each merchant reaching it."""

    def __init__(self, root: Path) -> None:
        self.ws = make_workspace(root, mchids=(MCHID, DENIED))
        self.emu = Emulator(
            EmulatorSettings(marketing_event_denied=frozenset({DENIED})),
            clock=self.ws.clock.time,
            keys=shared_keys(),
        )
        register_merchants(self.emu, self.ws.mchids)
        self.ws.write_project()
        project, _ = load_project(self.ws.project_file)
        assert project is not None
        self.project = project

    def client(self, mchid: str) -> WeChatPayClient:
        runtime = Runtime(self.ws.root, {}, self.ws.clock.clock(), self.emu.transport())
        return make_client(self.project, runtime, self.project.credentials(mchid, {}))


@pytest.fixture
def emulated(tmp_path: Path) -> Emulated:
    return Emulated(tmp_path / "project")


def test_the_emulator_sets_and_reads_both_callbacks(emulated: Emulated) -> None:
    c = emulated.client(MCHID)
    assert c.get_callback("favor", MCHID) is None
    c.set_callback("favor", {"mchid": MCHID, "notify_url": URL, "switch": True})
    c.set_callback("busifavor", {"mchid": MCHID, "notify_url": OTHER})
    assert c.get_callback("favor", MCHID) == URL
    assert c.get_callback("busifavor", MCHID) == OTHER


@pytest.mark.parametrize(
    ("kind", "body", "code"),
    [
        ("favor", {"mchid": MCHID, "notify_url": "http://a.example.com/n", "switch": True}, "PARAM_ERROR"),
        ("favor", {"mchid": MCHID, "notify_url": "https://a.example.com/n?x=1", "switch": True}, "PARAM_ERROR"),
        ("favor", {"mchid": MCHID, "notify_url": URL, "switch": False}, "PARAM_ERROR"),
        ("favor", {"mchid": "1900000002", "notify_url": URL, "switch": True}, "NO_AUTH"),
        ("busifavor", {"mchid": MCHID, "notify_url": "ftp://a.example.com/n"}, "PARAM_ERROR"),
    ],
)  # fmt: skip
def test_the_emulator_refuses_what_wechat_pay_refuses(
    emulated: Emulated, kind: str, body: dict[str, Any], code: str
) -> None:
    c = emulated.client(MCHID)
    with pytest.raises(ApiResponseError) as caught:
        c.set_callback(kind, body)
    assert caught.value.code == code


def test_without_the_marketing_event_permission_the_refresh_names_it(
    emulated: Emulated,
) -> None:
    c = emulated.client(DENIED)
    seen = read(c, "busifavor", DENIED)
    assert isinstance(seen, Unreadable) and seen.permission
    assert "营销事件推送" in seen.message and "NO_AUTH" in seen.message
    assert read(c, "favor", DENIED) is None


def test_a_request_log_entry_names_the_endpoint(emulated: Emulated) -> None:
    c = emulated.client(MCHID)
    c.set_callback("busifavor", {"mchid": MCHID, "notify_url": URL})
    assert [e.endpoint for e in emulated.emu.request_log] == ["busifavor.callback_set"]
