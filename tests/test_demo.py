"""`reconciler demo`: the whole loop on the examples, your own stocks under the real rules, and
a project kept with --keep."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.cli_invoke import invoke
from tests.conftest import ROOT, dump, example


def test_the_demo_runs_the_examples_end_to_end() -> None:
    run = invoke(["demo", "--stocks", str(ROOT / "stocks"), "--shift-clock"])
    assert run.exit_code == 0, run.output
    assert "3 stocks exist in the emulator, 3 stock files" in run.stdout
    assert "activated (start)" in run.stdout and "paused" in run.stdout
    # What WeChat Pay holds at the end: one line per stock, in one case.
    assert re.search(r"\n  spring-sale-10-off-100: favor \d+, paused\n", run.stdout), run.stdout
    assert re.search(r"\n  member-day-latte-8-off: busifavor \d+, running\n", run.stdout)
    assert "files in" not in run.stdout  # the folder is deleted on exit: not named


def _stocks_beginning(tmp_path: Path, begin: str, end: str) -> Path:
    stocks = tmp_path / "mine"
    stocks.mkdir()
    data: dict[str, Any] = example("favor")
    data["spec"]["available_begin_time"] = begin
    data["spec"]["available_end_time"] = end
    (stocks / "late.yaml").write_text(dump(data), encoding="utf-8")
    return stocks


def test_own_stocks_are_planned_with_the_real_clock(tmp_path: Path) -> None:
    # Began a month before "now" (RECONCILER_NOW): a real plan says blocked, and so does the demo.
    stocks = _stocks_beginning(tmp_path, "2027-01-01T00:00:00+08:00", "2027-01-31T23:59:59+08:00")
    env = {"RECONCILER_NOW": "2027-02-01T00:00:00+08:00"}
    real = invoke(["demo", "--stocks", str(stocks)], env=env)
    assert real.exit_code == 1, real.output
    assert "blocked" in real.stdout and "in the past" in real.stdout
    shifted = invoke(["demo", "--stocks", str(stocks), "--shift-clock"], env=env)
    assert shifted.exit_code == 0, shifted.output
    assert "1 stocks exist in the emulator" in shifted.stdout


def test_keep_keeps_the_project(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    run = invoke(["demo", "--stocks", str(ROOT / "stocks"), "--shift-clock", "--keep", str(kept)])
    assert run.exit_code == 0, run.output
    assert (kept / "reconciler.yaml").is_file() and (kept / "stocks").is_dir()
    assert f"files in {kept.resolve()}" in run.stdout
    again = invoke(["demo", "--keep", str(kept)])
    assert again.exit_code == 1 and "not empty" in again.stderr
    shutil.rmtree(kept)


@pytest.mark.parametrize("flag", ["--shift-clock", "--real-clock"])
def test_the_clock_flags_are_documented(flag: str) -> None:
    assert flag in invoke(["demo", "--help"]).stdout
