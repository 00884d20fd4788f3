"""The trust holes of issue 10, through the CLI: each reproduced as a user would meet it.

In process (`Workspace.cli`) against an emulator on a loopback port: a deleted state with its
backup beside it, `state rm` followed by a plan, a malformed RECONCILER_NOW, a full disk, and an
unexpected error. Each must end in one clear line, nothing sent, nothing lost.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.state.store import parse_state
from tests.cli_invoke import invoke
from tests.e2e_support import LocalEmulator, Workspace, copy_stocks, make_workspace

BUSI = "member-day-latte-8-off"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = make_workspace(tmp_path / "project")
    copy_stocks(w.stocks_dir)
    return w


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    with LocalEmulator(ws) as running:
        yield running


def applied(ws: Workspace, local: LocalEmulator) -> int:
    run = ws.cli("apply", "--yes")
    assert run.exit_code == 0, str(run)
    return len(local.stocks)


def test_a_deleted_state_beside_its_backup_is_refused_everywhere(
    ws: Workspace, local: LocalEmulator
) -> None:
    remote = applied(ws, local)
    ws.cli("apply", "--yes")  # a second save, so the backup holds this lineage too
    backup = ws.state_path.with_name("state.json.backup")
    lineage = parse_state(backup.read_bytes()).lineage
    ws.state_path.unlink()
    for args in (("plan",), ("apply", "--yes"), ("state", "list"), ("state", "rm", BUSI)):
        run = ws.cli(*args)
        assert run.exit_code == 1, str(run)
        assert "state.json.backup" in run.stderr and "cp " in run.stderr, str(run)
        assert "Traceback" not in run.stderr + run.stdout
    assert len(local.stocks) == remote
    assert parse_state(backup.read_bytes()).lineage == lineage
    shutil.copy(backup, ws.state_path)
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_init_state_starts_a_new_state_on_purpose_and_keeps_the_old_backup(
    ws: Workspace, local: LocalEmulator
) -> None:
    remote = applied(ws, local)
    ws.cli("apply", "--yes")
    old = parse_state(ws.state_path.with_name("state.json.backup").read_bytes()).lineage
    ws.state_path.unlink()
    run = ws.cli("apply", "--yes", "--init-state")
    # The derived numbers are resent: WeChat Pay (idempotent here) answers with the same stocks.
    assert run.exit_code == 0, str(run)
    assert len(local.stocks) == remote
    kept = [parse_state(p.read_bytes()).lineage for p in ws.root.glob("state.json.backup*")]
    assert old in kept


def test_state_rm_then_plan_names_the_stock_instead_of_creating_a_second(
    ws: Workspace, local: LocalEmulator
) -> None:
    remote = applied(ws, local)
    stock_id = ws.stock_ids()[BUSI]
    assert ws.cli("state", "rm", BUSI).exit_code == 0
    plan = ws.cli("plan")
    assert plan.exit_code == 1, str(plan)
    assert "untracked" in plan.stdout and f"state import {BUSI} {stock_id}" in plan.stdout
    apply = ws.cli("apply", "--yes")
    assert apply.exit_code == 1 and len(local.stocks) == remote, str(apply)
    assert ws.cli("state", "import", BUSI, str(stock_id)).exit_code == 0
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [("apply", "--yes"), ("plan",), ("state", "list"), ("emulator", "--port", "0")],
)
def test_a_malformed_reconciler_now_is_one_line(ws: Workspace, args: tuple[str, ...]) -> None:
    argv = list(args) if args[0] == "emulator" else [*args, "--project", str(ws.project_file)]
    run = invoke(argv, env={"RECONCILER_NOW": "next tuesday"})
    assert run.exit_code == 1, run.output
    assert "RECONCILER_NOW" in run.stderr and "Traceback" not in run.output
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_full_disk_while_saving_the_plan_is_one_line_and_keeps_the_old_file(
    ws: Workspace, local: LocalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = ws.root / "plan.json"
    out.write_text("previous plan", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("reconciler.fsutil.os.fsync", full)
    run = ws.cli("plan", "--out", str(out))
    assert run.exit_code == 1, str(run)
    assert "No space left on device" in run.stderr and "Traceback" not in run.stderr
    assert out.read_text(encoding="utf-8") == "previous plan"
    assert not list(ws.root.glob(".plan.json.*"))


def test_an_unexpected_error_is_one_line_and_exit_3(
    ws: Workspace, local: LocalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("reconciler.engine.planning.make_plan", boom)
    run = ws.cli("plan")
    assert run.exit_code == 3, str(run)
    assert "unexpected KeyError" in run.stderr and "--debug" in run.stderr
    assert "Traceback" not in run.stderr
    debug = invoke(["--debug", "plan", "--project", str(ws.project_file)], env=ws.clock.env())
    assert debug.exit_code == 3 and "Traceback" in debug.stderr
