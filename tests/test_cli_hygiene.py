"""The CLI's manners: whole help lines, `--refresh` as documented, colour only where wanted,
apply's output sized for CI logs, progress while waiting, shell completion."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.applier import Outcome, Result
from reconciler.commands.progress import Progress, waiting_text
from reconciler.engine import Waiting
from reconciler.limits import Limit
from tests.cli_invoke import invoke
from tests.e2e_support import LocalEmulator, Workspace, copy_stocks, make_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = make_workspace(tmp_path / "project")
    copy_stocks(w.stocks_dir)
    w.write_project()
    return w


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    with LocalEmulator(ws) as running:
        yield running


@pytest.mark.parametrize("group", [[], ["state"], ["emulator"]])
def test_help_listings_are_whole_sentences(group: list[str]) -> None:
    out = invoke([*group, "--help"]).stdout
    commands = out.split("Commands:")[1]
    assert "..." not in commands, commands
    assert all(line.rstrip().endswith(".") for line in commands.strip().splitlines()), commands


def test_refresh_takes_true_all_false_and_is_echoed_as_given(ws: Workspace) -> None:
    run = ws.cli("plan", "--refresh", "false")
    assert run.exit_code == 0, str(run)
    assert "refresh: false" in run.stdout
    for undocumented in ("none", "changing"):
        bad = ws.cli("plan", "--refresh", undocumented)
        assert bad.exit_code == 2 and "true" in bad.stderr, str(bad)


def test_apply_yes_off_a_terminal_prints_the_summary_not_the_plan(
    ws: Workspace, local: LocalEmulator
) -> None:
    run = ws.cli("apply", "--yes")
    assert run.exit_code == 0, str(run)
    assert run.stdout.startswith("Plan: 3 to create")
    assert "spec.stock_name" not in run.stdout  # the create bodies stay in the reviewed plan
    assert "stock_id" in run.stdout and "(批次号)" in run.stdout


def test_show_plan_prints_the_whole_plan(ws: Workspace, local: LocalEmulator) -> None:
    run = ws.cli("apply", "--yes", "--show-plan")
    assert run.exit_code == 0, str(run)
    assert "spec.stock_name" in run.stdout


def _plan_on_a_terminal(ws: Workspace, env: dict[str, str], *flags: str) -> str:
    """`reconciler plan` with stdout on a pseudo-terminal; returns what it printed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout is the terminal
        os.execve(
            sys.executable,
            [sys.executable, "-m", "reconciler", *flags, "plan", "--refresh", "false",
             "--project", str(ws.project_file)],
            env,
        )  # fmt: skip
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_colour_on_a_terminal_unless_no_color(ws: Workspace) -> None:
    env = {**ws.env()}
    env.pop("NO_COLOR", None)
    assert "\x1b[" in _plan_on_a_terminal(ws, env)
    assert "\x1b[" not in _plan_on_a_terminal(ws, {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in _plan_on_a_terminal(ws, env, "--no-color")


def _result(i: int) -> Result:
    return Result(f"s-{i}", "1900000001", Outcome.SUCCEEDED, "created stock_id 1 (批次号)", "1")


def test_ci_progress_prints_a_line_per_stock_and_what_calls_wait_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    waiting = [Waiting("1900000001", "favor_create", 16, Limit(60, 60.0))]
    progress = Progress(live=False, interval=0.05)
    progress.start(3, lambda: waiting)
    progress.result(_result(1), 3)
    time.sleep(0.2)
    progress.stop()
    out = capsys.readouterr().out
    assert "[1/3] ✓ s-1: created stock_id 1 (批次号)" in out
    assert "1/3 done" in out
    assert "waiting for the rate limit: favor_create 60/min, merchant 1900000001 (16 calls)" in out


def test_ci_progress_is_quiet_while_nothing_waits(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(live=False, interval=0.05)
    progress.start(1, list)
    time.sleep(0.15)
    progress.stop()
    assert capsys.readouterr().out == ""


def test_the_live_bar_stops_cleanly_from_another_thread() -> None:
    progress = Progress(live=True, interval=0.05)
    progress.start(2, list)
    worker = threading.Thread(target=progress.result, args=(_result(1), 2))
    worker.start()
    worker.join()
    progress.stop()
    assert progress.done == 1


def test_waiting_text_names_each_limit() -> None:
    text = waiting_text([Waiting("1900000002", "busifavor_create", 1, Limit(1000, 60.0))])
    assert (
        text
        == "waiting for the rate limit: busifavor_create 1000/min, merchant 1900000002 (1 call)"
    )


def test_shell_completion_script_is_served() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler"],
        env={**os.environ, "_RECONCILER_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "complete" in out.stdout and "_RECONCILER_COMPLETE" in out.stdout, out
