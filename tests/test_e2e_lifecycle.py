"""A 代金券 that goes live, end to end: the CLI in this process against the emulator on a
loopback port, with a real (short) registration delay, a merchant balance and goods lists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorSettings
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    Run,
    Workspace,
    copy_stocks,
    dump_yaml,
    edit_stock,
    generated_stock,
    make_workspace,
)

FAVOR_ID = "spring-sale-10-off-100"
MAX_AMOUNT = 20_000_000
DELAY = 1.5
"""The emulator's registration delay here (60 s by default in `reconciler emulator`)."""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = make_workspace(tmp_path / "project")
    copy_stocks(workspace.stocks_dir, ["favor"])
    return workspace


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    settings = EmulatorSettings(activation_delay_seconds=DELAY)
    with LocalEmulator(ws, settings) as running:
        activation(ws)
        yield running


def activation(ws: Workspace) -> None:
    """The project waits out the emulator's delay, then retries every 0.3 s."""
    ws.write_project(
        activation_delay_seconds=DELAY, activation_retry_seconds=0.3, activation_max_attempts=4
    )


def status(local: LocalEmulator, ws: Workspace, stock: str = FAVOR_ID) -> str:
    stock_id = ws.stock_ids()[stock]
    assert stock_id is not None
    return str(local.stocks[stock_id].status)


def recorded(ws: Workspace, stock: str = FAVOR_ID) -> Any:
    return (ws.state().stock(stock).observed or {}).get("status")


def set_status(ws: Workspace, value: str, stock: str = FAVOR_ID) -> None:
    edit_stock(ws.stock_file(stock), lambda d: d.update(status=value))


def ok(run: Run, code: int = 0) -> Run:
    assert run.exit_code == code, str(run)
    return run


def in_sync(ws: Workspace) -> None:
    ok(ws.cli("plan", "--detailed-exitcode"))


def test_a_new_favor_stock_is_running_after_one_apply(ws: Workspace, local: LocalEmulator) -> None:
    plan = ok(ws.cli("plan", "--format", "json")).json()
    (change,) = plan["changes"]
    assert [o["type"] for o in change["operations"]] == ["create", "start"]
    assert change["locked_fen"] == MAX_AMOUNT
    assert plan["totals"][0]["activation_locked_fen"] == MAX_AMOUNT
    text = ok(ws.cli("plan")).stdout
    assert "activate (start)" in text and "locked from the balance at activation" in text

    run = ok(ws.cli("apply", "--yes"))
    assert "activated (start)" in run.stdout
    assert status(local, ws) == "running" == recorded(ws)
    # The first start came too soon and was answered 卡包信息尚未注册完成; one stock, one
    # activation, its budget locked once.
    starts = [e for e in local.emu.request_log if e.endpoint == "favor.start"]
    assert starts[0].status == 400 and starts[-1].status == 200
    assert len(local.stocks) == 1 and local.emu.balance(MCHID) == (None, MAX_AMOUNT)
    in_sync(ws)


def test_editing_status_paused_plans_and_applies_a_pause(
    ws: Workspace, local: LocalEmulator
) -> None:
    ok(ws.cli("apply", "--yes"))
    set_status(ws, "paused")
    plan = ok(ws.cli("plan", "--format", "json", "--detailed-exitcode"), 2).json()
    (change,) = plan["changes"]
    assert change["action"] == "update"
    assert [o["type"] for o in change["operations"]] == ["pause"]
    assert change["fields"] == [
        {"path": "status", "before": "running", "after": "paused", "money": False, "note": ""}
    ]
    assert change["locked_fen"] is None and plan["totals"][0]["activation_locked_fen"] == 0
    ok(ws.cli("apply", "--yes"))
    assert status(local, ws) == "paused" == recorded(ws)
    in_sync(ws)
    set_status(ws, "running")
    ok(ws.cli("apply", "--yes"))
    assert status(local, ws) == "running" == recorded(ws)
    assert local.emu.balance(MCHID) == (None, MAX_AMOUNT)  # restarting locks nothing again
    in_sync(ws)


def test_status_created_never_activates(ws: Workspace, local: LocalEmulator) -> None:
    set_status(ws, "created")
    plan = ok(ws.cli("plan", "--format", "json")).json()
    assert [o["type"] for o in plan["changes"][0]["operations"]] == ["create"]
    ok(ws.cli("apply", "--yes"))
    in_sync(ws)
    assert status(local, ws) == "unactivated"
    assert not [e for e in local.emu.request_log if e.endpoint == "favor.start"]


def test_a_short_balance_leaves_the_stock_created_and_the_next_apply_activates_it(
    ws: Workspace, local: LocalEmulator
) -> None:
    local.emu.set_balance(MCHID, MAX_AMOUNT - 1)
    run = ok(ws.cli("apply", "--yes"), 1)
    assert "not activated" in run.output and "NOT_ENOUGH" in run.output
    assert "next apply activates it" in run.output
    assert status(local, ws) == "unactivated" == recorded(ws)
    plan = ok(ws.cli("plan", "--format", "json")).json()
    assert [o["type"] for o in plan["changes"][0]["operations"]] == ["start"]

    local.emu.set_balance(MCHID, MAX_AMOUNT + 5)  # topped up
    ok(ws.cli("apply", "--yes"))
    assert status(local, ws) == "running" == recorded(ws)
    assert local.emu.balance(MCHID) == (5, MAX_AMOUNT)
    assert len(local.stocks) == 1
    in_sync(ws)


def test_a_change_of_available_items_is_applied_in_place(
    ws: Workspace, local: LocalEmulator
) -> None:
    data = generated_stock("favor", 7)
    data["spec"]["coupon_use_rule"]["available_items"] = ["sku-1", "sku-2"]
    path = ws.stocks_dir / "favor" / "goods.yaml"
    path.write_text(dump_yaml(data), encoding="utf-8")
    ok(ws.cli("apply", "--yes"))
    stock_id = ws.stock_ids()[data["id"]]

    edit_stock(
        path, lambda d: d["spec"]["coupon_use_rule"].update(available_items=["sku-2", "sku-3"])
    )
    plan = ok(ws.cli("plan", "--format", "json")).json()
    change = next(c for c in plan["changes"] if c["id"] == data["id"])
    assert change["action"] == "update"
    (op,) = change["operations"]
    assert op["type"] == "modify_goods_id"
    assert op["body"] == {
        "stock_creator_mchid": MCHID,
        "add_goods_id_list": "sku-3",
        "delete_goods_id_list": "sku-1",
    }
    ok(ws.cli("apply", "--yes"))
    assert ws.stock_ids()[data["id"]] == stock_id and len(local.stocks) == 2
    assert stock_id is not None
    body = local.stocks[stock_id].body
    assert body["coupon_use_rule"]["available_items"] == ["sku-2", "sku-3"]
    in_sync(ws)

    edit_stock(path, lambda d: d["spec"]["coupon_use_rule"].pop("available_items"))
    refused = ok(ws.cli("plan"), 1)
    assert "immutable" in refused.stdout and "available_items" in refused.stdout
