"""plan and apply end to end against the WeChat Pay emulator.

The CLI runs in this process (`Workspace.cli`, through `reconciler.cli.main`) against an
emulator reached through its in-memory transport, except for the first test, which runs both
the emulator (`reconciler emulator`) and every command as subprocesses over loopback HTTP, as
a user would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorSettings
from reconciler.errors import StateError
from reconciler.ids import out_request_no
from reconciler.state.store import StateStore
from reconciler.wechatpay.client import WeChatPayClient
from tests.e2e_support import (
    MCHID,
    EmulatorProcess,
    LocalEmulator,
    Workspace,
    assert_one_remote_per_id,
    copy_stocks,
    edit_stock,
    emulator_stocks,
    make_workspace,
    project_client,
    remote_by_request_no,
    write_generated_stocks,
)

FAVOR_ID = "spring-sale-10-off-100"
LATTE_ID = "member-day-latte-8-off"
PASTRY_ID = "weekend-pastry-exchange"
ALL_IDS = sorted([FAVOR_ID, LATTE_ID, PASTRY_ID])


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = make_workspace(tmp_path / "project")
    copy_stocks(workspace.stocks_dir)
    return workspace


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    with LocalEmulator(ws) as running:
        yield running


def actions(run_json: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["action"] for c in run_json["changes"]}


def change_of(run_json: dict[str, Any], stock: str) -> dict[str, Any]:
    found = [c for c in run_json["changes"] if c["id"] == stock]
    assert len(found) == 1, run_json["changes"]
    return dict(found[0])


def applied(ws: Workspace) -> None:
    run = ws.cli("apply", "--yes")
    assert run.exit_code == 0, str(run)


# --- 1. the loop, as a user runs it -------------------------------------------------------------


def test_plan_apply_plan_as_subprocesses(ws: Workspace) -> None:
    with EmulatorProcess(ws, cli=True) as emulator:
        ws.write_project(emulator.base_url)

        first = ws.run("plan", "--detailed-exitcode")
        assert first.exit_code == 2, str(first)
        for stock in ALL_IDS:
            assert f"+ create     {stock}" in first.stdout, str(first)

        apply = ws.run("apply", "--yes")
        assert apply.exit_code == 0, str(apply)
        assert "Apply finished: 3 succeeded." in apply.stdout, str(apply)
        ids = ws.stock_ids()
        assert sorted(ids) == ALL_IDS and all(ids.values()), ids
        assert_one_remote_per_id(ws.state(), emulator.stocks(), ALL_IDS)

        again = ws.run("plan", "--detailed-exitcode")
        assert again.exit_code == 0, str(again)
        assert "No changes. 3 stocks in sync." in again.stdout, str(again)

        second = ws.run("apply", "--yes")
        assert second.exit_code == 0, str(second)
        assert "No changes to apply." in second.stdout, str(second)
        assert_one_remote_per_id(ws.state(), emulator.stocks(), ALL_IDS)
        assert ws.stock_ids() == ids


def test_apply_without_yes_off_a_terminal_refuses(ws: Workspace, local: LocalEmulator) -> None:
    run = ws.cli("apply")
    assert run.exit_code == 1, str(run)
    assert "pass --yes" in run.stderr, str(run)
    assert local.stocks == {}


# --- deleted state ------------------------------------------------------------------------------


def lose_state(ws: Workspace) -> None:
    """The state is lost with every trace (a CI run without its artifact): only then does a
    run start a new state by itself. With its backup still there, every command refuses."""
    ws.state_path.unlink()
    ws.state_path.with_name(ws.state_path.name + ".backup").unlink(missing_ok=True)


@pytest.mark.parametrize("reuse", ["idempotent", "reject"])
def test_deleted_state_is_rebuilt_without_a_duplicate_favor(ws: Workspace, reuse: str) -> None:
    for path in (ws.stocks_dir / "busifavor").glob("*.yaml"):
        path.unlink()
    with LocalEmulator(ws, EmulatorSettings(out_request_no_reuse=reuse)) as local:  # type: ignore[arg-type]
        applied(ws)
        original = ws.stock_ids()[FAVOR_ID]
        lose_state(ws)

        plan = ws.cli("plan", "--format", "json")
        assert actions(plan.json()) == {FAVOR_ID: "create"}, str(plan)
        rebuilt = ws.cli("apply", "--yes")
        assert rebuilt.exit_code == 0, str(rebuilt)
        assert f"created stock_id {original}" in rebuilt.stdout, str(rebuilt)

        assert ws.stock_ids() == {FAVOR_ID: original}
        assert_one_remote_per_id(ws.state(), emulator_stocks(local.emu), [FAVOR_ID])
        assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_deleted_state_is_rebuilt_for_busifavor_when_numbers_are_idempotent(
    ws: Workspace, local: LocalEmulator
) -> None:
    applied(ws)
    before = ws.stock_ids()
    lose_state(ws)
    rebuilt = ws.cli("apply", "--yes")
    assert rebuilt.exit_code == 0, str(rebuilt)
    assert ws.stock_ids() == before
    assert_one_remote_per_id(ws.state(), emulator_stocks(local.emu), ALL_IDS)


def test_deleted_state_busifavor_reject_is_unresolved_until_imported(ws: Workspace) -> None:
    with LocalEmulator(ws, EmulatorSettings(out_request_no_reuse="reject")) as local:
        applied(ws)
        before = ws.stock_ids()
        lose_state(ws)

        apply = ws.cli("apply", "--yes")
        assert apply.exit_code == 1, str(apply)
        for stock in (LATTE_ID, PASTRY_ID):
            assert f"reconciler state import {stock} <stock_id>" in apply.stdout, str(apply)
        assert ws.stock_ids()[FAVOR_ID] == before[FAVOR_ID]  # favor found through the list

        plan = ws.cli("plan", "--format", "json")
        assert plan.exit_code == 1, str(plan)
        for stock in (LATTE_ID, PASTRY_ID):
            change = change_of(plan.json(), stock)
            assert change["action"] == "unresolved", change
            assert f"reconciler state import {stock} <stock_id>" in change["suggestion"]
        text = ws.cli("plan")
        assert f"reconciler state import {LATTE_ID} <stock_id>" in text.stdout, str(text)

        imported = ws.cli("state", "import", LATTE_ID, str(before[LATTE_ID]))
        assert imported.exit_code == 0, str(imported)
        mistyped = ws.cli("state", "import", PASTRY_ID, str(before[LATTE_ID]))
        assert mistyped.exit_code == 1, str(mistyped)
        assert f"already in the state as {LATTE_ID!r}" in mistyped.stderr, str(mistyped)
        imported = ws.cli("state", "import", PASTRY_ID, str(before[PASTRY_ID]))
        assert imported.exit_code == 0, str(imported)
        assert ws.stock_ids() == before
        final = ws.cli("plan", "--detailed-exitcode")
        assert final.exit_code == 0, str(final)
        assert_one_remote_per_id(ws.state(), emulator_stocks(local.emu), ALL_IDS)


# --- 2. saved plans, locks, a corrupt state -----------------------------------------------------


def test_saved_plan_is_applied_exactly(ws: Workspace, local: LocalEmulator) -> None:
    saved = ws.root / "p.json"
    plan = ws.cli("plan", "--out", str(saved))
    assert plan.exit_code == 0, str(plan)
    ops = [op for c in json.loads(saved.read_text())["changes"] for op in c["operations"]]
    assert sorted(op["type"] for op in ops) == ["create", "create", "create", "start"]
    numbers = {op["request_no"] for op in ops if op["type"] == "create"}
    assert len(numbers) == 3

    local.emu.clear_request_log()
    run = ws.cli("apply", str(saved))
    assert run.exit_code == 0, str(run)
    creates = [e for e in local.emu.request_log if e.endpoint and e.endpoint.endswith(".create")]
    assert len(creates) == 3
    assert local.stocks[str(ws.stock_ids()[FAVOR_ID])].status == "running"
    assert set(remote_by_request_no(emulator_stocks(local.emu))) == numbers
    assert_one_remote_per_id(ws.state(), emulator_stocks(local.emu), ALL_IDS)

    again = ws.cli("apply", str(saved))
    assert again.exit_code == 1, str(again)
    assert "stale plan" in again.stderr, str(again)
    assert len(local.stocks) == 3


def test_saved_plan_refused_when_the_state_moved(ws: Workspace, local: LocalEmulator) -> None:
    pastry = ws.stock_file(PASTRY_ID)
    parked = ws.root / "parked.yaml"
    pastry.rename(parked)
    applied(ws)
    parked.rename(pastry)
    saved = ws.root / "p.json"
    assert ws.cli("plan", "--out", str(saved)).exit_code == 0
    serial = ws.state().serial

    ws.cli("state", "mv", FAVOR_ID, "spring-sale-moved")  # another run writes the state
    stale = ws.cli("apply", str(saved))
    assert stale.exit_code == 1, str(stale)
    assert f"the state moved from serial {serial} to {serial + 1}" in stale.stderr, str(stale)
    assert "Make a new plan" in stale.stderr
    assert len(local.stocks) == 2


def test_saved_plan_refused_when_a_stock_file_changed(ws: Workspace, local: LocalEmulator) -> None:
    saved = ws.root / "p.json"
    assert ws.cli("plan", "--out", str(saved)).exit_code == 0
    edit_stock(ws.stock_file(LATTE_ID), lambda d: d["spec"].update(comment="edited after plan"))
    stale = ws.cli("apply", str(saved))
    assert stale.exit_code == 1, str(stale)
    assert "the stock files changed since the plan was made" in stale.stderr, str(stale)
    assert local.stocks == {}


def test_saved_plan_refused_when_too_old(ws: Workspace, local: LocalEmulator) -> None:
    saved = ws.root / "p.json"
    assert ws.cli("plan", "--out", str(saved)).exit_code == 0
    ws.clock.offset += timedelta(minutes=61).total_seconds()
    stale = ws.cli("apply", str(saved))
    assert stale.exit_code == 1, str(stale)
    assert "the plan is older than 60 minutes" in stale.stderr, str(stale)
    assert local.stocks == {}


def test_saved_plan_refused_when_edited(ws: Workspace, local: LocalEmulator) -> None:
    saved = ws.root / "p.json"
    assert ws.cli("plan", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    for change in doc["changes"]:
        for op in change["operations"]:
            if op["type"] == "create":
                op["body"]["stock_name"] = "春季满100减20"
    saved.write_text(json.dumps(doc), encoding="utf-8")
    edited = ws.cli("apply", str(saved))
    assert edited.exit_code == 1, str(edited)
    assert "checksum does not match" in edited.stderr, str(edited)
    assert local.stocks == {}


def test_held_lock_names_the_holder_and_unlock_breaks_it(
    ws: Workspace, local: LocalEmulator
) -> None:
    store = StateStore(ws.state_path, ws.clock.clock())
    broken = pytest.raises(StateError, match="the lock on the state was broken")
    with broken, store.lock("apply --yes", holder="alice@ci-runner:4242") as held:
        locked = ws.cli("apply", "--yes")
        assert locked.exit_code == 1, str(locked)
        assert "locked by alice@ci-runner:4242, running `apply --yes`" in locked.stderr
        assert f"reconciler state unlock {held.lock_id}" in locked.stderr, str(locked)
        assert local.stocks == {}

        unlock = ws.cli("state", "unlock", held.lock_id)
        assert unlock.exit_code == 0, str(unlock)
        assert "alice@ci-runner:4242" in unlock.stdout
        applied(ws)
    assert len(local.stocks) == 3


def test_corrupt_state_is_an_error_with_a_way_out(ws: Workspace, local: LocalEmulator) -> None:
    applied(ws)
    serial = ws.state().serial
    good = ws.state_path.read_bytes()
    ws.state_path.write_bytes(good[: len(good) // 2])

    for command in (("plan",), ("apply", "--yes")):
        run = ws.cli(*command)
        assert run.exit_code == 1, str(run)
        assert "is truncated" in run.stderr, str(run)
        assert f"cp {ws.state_path}.backup {ws.state_path}" in run.stderr, str(run)
    assert ws.state_path.read_bytes() == good[: len(good) // 2]  # never overwritten
    assert len(local.stocks) == 3

    ws.state_path.write_bytes((ws.root / "state.json.backup").read_bytes())
    # Saves within a run go to the journal; at the end the backup becomes a copy of the result.
    assert ws.state().serial == serial
    after = ws.cli("plan", "--detailed-exitcode")
    assert after.exit_code == 0, str(after)
    assert len(local.stocks) == 3


# --- 3. updates, immutable fields, drift, orphans, renames --------------------------------------


def test_busifavor_updates_are_planned_sent_and_settled(
    ws: Workspace, local: LocalEmulator
) -> None:
    applied(ws)
    stock_id = ws.stock_ids()[LATTE_ID]
    assert stock_id is not None

    def change(data: dict[str, Any]) -> None:
        data["spec"]["comment"] = "member day May"
        data["spec"]["goods_name"] = "门店美式"
        data["spec"]["stock_send_rule"]["max_coupons"] = 60000

    edit_stock(ws.stock_file(LATTE_ID), change)
    plan = ws.cli("plan", "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 2, str(plan)
    assert actions(plan.json()) == {LATTE_ID: "update", PASTRY_ID: "no-op", FAVOR_ID: "no-op"}
    update = change_of(plan.json(), LATTE_ID)
    ops = {f"busifavor_{op['type']}": op for op in update["operations"]}
    assert set(ops) == {"busifavor_modify", "busifavor_budget"}
    assert ops["busifavor_modify"]["body"] == {
        "comment": "member day May",
        "goods_name": "门店美式",
        "out_request_no": ops["busifavor_modify"]["request_no"],
    }
    assert ops["busifavor_budget"]["body"] == {
        "target_max_coupons": 60000,
        "current_max_coupons": 50000,
        "modify_budget_request_no": ops["busifavor_budget"]["request_no"],
    }
    text = ws.cli("plan")
    for op in ops.values():
        assert op["request_no"] in text.stdout, str(text)

    run = ws.cli("apply", "--yes")
    assert run.exit_code == 0, str(run)
    body = local.stocks[stock_id].body
    assert body["comment"] == "member day May"
    assert body["goods_name"] == "门店美式"
    assert body["stock_send_rule"]["max_coupons"] == 60000

    again = ws.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, str(again)
    assert "No changes." in again.stdout, str(again)
    assert len(local.stocks) == 3


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("stock_send_rule", "max_coupons"), 60000),
        (("stock_send_rule", "max_coupons_by_day"), 6000),
        (("display_pattern_info", "description"), "工作日到店使用"),
        (("goods_name",), "门店美式"),
    ],
)
def test_a_single_update_right_after_create(
    ws: Workspace, local: LocalEmulator, path: tuple[str, ...], value: Any
) -> None:
    applied(ws)
    stock_id = ws.stock_ids()[LATTE_ID]
    assert stock_id is not None

    def change(data: dict[str, Any]) -> None:
        node = data["spec"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    edit_stock(ws.stock_file(LATTE_ID), change)
    run = ws.cli("apply", "--yes")
    assert run.exit_code == 0, str(run)
    node = local.stocks[stock_id].body
    for key in path:
        node = node[key]
    assert node == value
    again = ws.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, str(again)
    assert ws.state().stock(LATTE_ID).pending is None


def test_budgets_raised_on_many_stocks_at_once(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "project")
    ids = write_generated_stocks(ws.stocks_dir, 6, ["busifavor"])
    with LocalEmulator(ws) as local:
        applied(ws)
        for stock in ids:
            edit_stock(
                ws.stock_file(stock),
                lambda d: d["spec"]["stock_send_rule"].update(max_coupons=60000),
            )
        applied(ws)  # concurrent updates, each saving the whole state
        state = ws.state()  # parses: every recorded create body still matches its digest
        assert all(s.pending is None for s in state.stocks.values())
        assert {s.body["stock_send_rule"]["max_coupons"] for s in local.stocks.values()} == {60000}
        again = ws.cli("plan", "--detailed-exitcode")
        assert again.exit_code == 0, str(again)


def _favor_more_coupons(data: dict[str, Any]) -> None:
    rule = data["spec"]["stock_use_rule"]
    rule["max_coupons"] = 30000
    rule["max_amount"] = 30000000


def _busifavor_discount(data: dict[str, Any]) -> None:
    rule = data["spec"]["coupon_use_rule"]
    del rule["fixed_normal_coupon"]
    rule["discount_coupon"] = {"discount_percent": 88, "transaction_minimum": 3000}
    data["spec"]["stock_type"] = "DISCOUNT"


@pytest.mark.parametrize(
    ("stock", "edit", "field"),
    [
        (FAVOR_ID, _favor_more_coupons, "spec.stock_use_rule.max_coupons"),
        (LATTE_ID, _busifavor_discount, "spec.stock_type"),
    ],
)
def test_immutable_change_fails_plan_and_apply(
    ws: Workspace, local: LocalEmulator, stock: str, edit: Any, field: str
) -> None:
    applied(ws)
    bodies = {sid: s.body for sid, s in local.stocks.items()}
    edit_stock(ws.stock_file(stock), edit)

    plan = ws.cli("plan", "--format", "json")
    assert plan.exit_code == 1, str(plan)
    change = change_of(plan.json(), stock)
    assert change["action"] == "immutable", change
    assert field in [f["path"] for f in change["fields"]]
    text = ws.cli("plan")
    assert text.exit_code == 1 and "✗ immutable" in text.stdout, str(text)

    apply = ws.cli("apply", "--yes")
    assert apply.exit_code == 1, str(apply)
    assert "the plan has errors" in apply.stderr, str(apply)
    assert {sid: s.body for sid, s in local.stocks.items()} == bodies


def _client(ws: Workspace, local: LocalEmulator) -> WeChatPayClient:
    return project_client(ws, local)


def test_drift_is_shown_and_never_acted_on(ws: Workspace) -> None:
    with LocalEmulator(ws, persist=True) as local:
        check_drift(ws, local)


def check_drift(ws: Workspace, local: LocalEmulator) -> None:
    applied(ws)
    ids = ws.stock_ids()
    latte, favor = ids[LATTE_ID], ids[FAVOR_ID]
    assert latte is not None and favor is not None
    # Someone changes the busifavor comment through the API (another tool, same merchant) ...
    with _client(ws, local) as client:
        client.busifavor_modify(latte, {"comment": "changed by hand", "out_request_no": "hand-1"})

    # ... and the favor name in the merchant platform (the emulator's data, edited offline).
    def rename_favor(data: dict[str, Any]) -> None:
        for s in data["stocks"]:
            if s["stock_id"] == favor:
                s["body"]["stock_name"] = "手工改名"

    local.restart(rename_favor)

    plan = ws.cli("plan", "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 0, plan  # drift is reported, not a change to apply
    doc = plan.json()
    assert actions(doc) == {LATTE_ID: "drift", FAVOR_ID: "drift", PASTRY_ID: "no-op"}
    latte_fields = {f["path"]: f for f in change_of(doc, LATTE_ID)["fields"]}
    assert latte_fields["spec.comment"]["before"] == "changed by hand"
    assert latte_fields["spec.comment"]["after"] == "member day Apr 2027"
    favor_fields = {f["path"] for f in change_of(doc, FAVOR_ID)["fields"]}
    assert favor_fields == {"spec.stock_name"}

    local.emu.clear_request_log()
    apply = ws.cli("apply", "--yes")
    assert apply.exit_code == 0, str(apply)
    assert "No changes to apply." in apply.stdout
    sent = [e.endpoint for e in local.emu.request_log]
    assert set(sent) <= {"favor.detail", "busifavor.detail"}, sent
    assert local.stocks[latte].body["comment"] == "changed by hand"
    assert local.stocks[favor].body["stock_name"] == "手工改名"


def test_orphan_is_reported_and_left_alone(ws: Workspace, local: LocalEmulator) -> None:
    applied(ws)
    ids = ws.stock_ids()
    ws.stock_file(PASTRY_ID).unlink()
    plan = ws.cli("plan", "--format", "json", "--detailed-exitcode")
    assert plan.exit_code == 0, str(plan)
    orphan = change_of(plan.json(), PASTRY_ID)
    assert orphan["action"] == "orphan" and orphan["stock_id"] == ids[PASTRY_ID], orphan

    local.emu.clear_request_log()
    apply = ws.cli("apply", "--yes")
    assert apply.exit_code == 0, str(apply)
    assert "No changes to apply." in apply.stdout
    assert all(
        not (e.endpoint or "").endswith((".create", ".modify", ".budget"))
        for e in local.emu.request_log
    )
    assert ws.stock_ids() == ids
    assert len(local.stocks) == 3


def test_renamed_id_needs_state_mv(ws: Workspace, local: LocalEmulator) -> None:
    applied(ws)
    ids = ws.stock_ids()
    new = "spring-sale-renamed"
    edit_stock(ws.stock_file(FAVOR_ID), lambda d: d.update(id=new))

    plan = ws.cli("plan", "--format", "json")
    assert plan.exit_code == 1, str(plan)
    rename = change_of(plan.json(), new)
    assert rename["action"] == "rename", rename
    assert rename["suggestion"] == f"reconciler state mv {FAVOR_ID} {new}"
    apply = ws.cli("apply", "--yes")
    assert apply.exit_code == 1, str(apply)
    assert len(local.stocks) == 3

    mv = ws.cli("state", "mv", FAVOR_ID, new)
    assert mv.exit_code == 0, str(mv)
    after = ws.cli("plan", "--detailed-exitcode")
    assert after.exit_code == 0, str(after)
    assert ws.stock_ids()[new] == ids[FAVOR_ID]
    # the stock keeps the number it was created with
    assert ws.state().stocks[new].out_request_no == out_request_no(MCHID, "favor", FAVOR_ID, 0)


def test_plan_without_refresh_needs_no_credentials(ws: Workspace, local: LocalEmulator) -> None:
    applied(ws)
    edit_stock(ws.stock_file(LATTE_ID), lambda d: d["spec"].update(comment="from a fork"))
    for key in (ws.root / "keys").iterdir():
        key.unlink()
    plan = ws.cli("plan", "--refresh", "false", "--detailed-exitcode")
    assert plan.exit_code == 2, str(plan)
    assert "~ update     member-day-latte-8-off" in plan.stdout, str(plan)
    refreshed = ws.cli("plan")
    assert refreshed.exit_code == 1, str(refreshed)
    assert "cannot read the merchant private key file" in refreshed.stderr, str(refreshed)


def test_apply_waits_for_a_lock_with_lock_wait(ws: Workspace, local: LocalEmulator) -> None:
    store = StateStore(ws.state_path, ws.clock.clock())
    held = store.lock("apply", holder="bob@ci-runner:7")
    held.__enter__()
    releaser = threading.Timer(0.3, held.__exit__, (None, None, None))
    releaser.start()
    try:
        run = ws.cli("apply", "--yes", "--lock-wait", "20")
    finally:
        releaser.join()
    assert run.exit_code == 0, str(run)
    assert len(local.stocks) == 3


def test_deleted_state_favor_created_long_ago_needs_import_in_reject_mode(
    ws: Workspace,
) -> None:
    """The list look-up searches around the time of the create it settles; a stock made long
    before (the state lost since) is not found, and the way out is the import command."""
    for path in (ws.stocks_dir / "busifavor").glob("*.yaml"):
        path.unlink()
    with LocalEmulator(ws, EmulatorSettings(out_request_no_reuse="reject")) as local:
        applied(ws)
        original = ws.stock_ids()[FAVOR_ID]
        lose_state(ws)
        ws.clock.offset += timedelta(days=2).total_seconds()

        apply = ws.cli("apply", "--yes")
        assert apply.exit_code == 1, str(apply)
        assert f"reconciler state import {FAVOR_ID} <stock_id>" in apply.stdout, str(apply)
        imported = ws.cli("state", "import", FAVOR_ID, str(original))
        assert imported.exit_code == 0, str(imported)
        final = ws.cli("plan", "--detailed-exitcode")
        assert final.exit_code == 0, str(final)
        assert_one_remote_per_id(ws.state(), emulator_stocks(local.emu), [FAVOR_ID])
