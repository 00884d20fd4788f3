"""`--lang` and the Markdown outputs through the CLI: plan, apply and validate speak Chinese
when asked (`--lang zh`, `language: zh` in reconciler.yaml, or a zh_* locale), JSON keeps its
English keys, and `plan` writes the comment (folded, linking the run) and the full plan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_invoke import invoke
from tests.e2e_support import LocalEmulator, Workspace, copy_stocks, make_workspace

RUN = "https://github.com/acme/coupon-stocks/actions/runs/7"


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


def test_plan_in_chinese_and_english(ws: Workspace) -> None:
    zh = ws.cli("plan", "--refresh", "false", "--lang", "zh")
    assert zh.exit_code == 0, str(zh)
    assert zh.stdout.startswith(
        "计划：新建 3，变更 0，继续 0\n批次：新建 3 个 · 变更 0 个 · 不变 0 个\n"
    )
    assert "激活时锁定（预充值 代金券）：商户 1900000001 余额中 ¥200,000" in zh.stdout
    assert "+ 新建  spring-sale-10-off-100" in zh.stdout
    en = ws.cli("plan", "--refresh", "false", "--lang", "en", "--format", "markdown")
    assert "## reconciler plan" in en.stdout and "- Stocks: 3 to create" in en.stdout
    doc = json.loads(
        ws.cli("plan", "--refresh", "false", "--lang", "zh", "--format", "json").stdout
    )
    assert doc["headline"]["create"] == 3 and "changes" in doc  # English keys either way


def test_the_project_language_is_the_default_and_the_option_wins(ws: Workspace) -> None:
    text = ws.project_file.read_text(encoding="utf-8")
    ws.project_file.write_text(text + "language: zh\n", encoding="utf-8")
    assert ws.cli("plan", "--refresh", "false").stdout.startswith("计划：")
    assert ws.cli("plan", "--refresh", "false", "--lang", "en").stdout.startswith("Plan:")


def test_plan_writes_the_comment_and_the_full_plan(ws: Workspace, tmp_path: Path) -> None:
    run = ws.cli(
        "plan", "--refresh", "false", "--lang", "zh",
        "--markdown-out", str(tmp_path / "comment.md"),
        "--summary-out", str(tmp_path / "full.md"), "--plan-url", RUN,
    )  # fmt: skip
    assert run.exit_code == 0, str(run)
    comment = (tmp_path / "comment.md").read_text(encoding="utf-8")
    full = (tmp_path / "full.md").read_text(encoding="utf-8")
    assert f"完整计划：[任务摘要与计划附件]({RUN})。" in comment
    assert full.startswith("<!-- reconciler:plan -->\n## reconciler 计划\n")
    assert full.count("<details><summary>") == 3 + 1


def test_validate_in_chinese(ws: Workspace, tmp_path: Path) -> None:
    bad = ws.stocks_dir / "favor" / "spring-sale-10-off-100.yaml"
    bad.write_text(
        bad.read_text(encoding="utf-8").replace(
            "stock_name: 春季满100减10", "stock_name: 春季_满100减10"
        ),
        encoding="utf-8",
    )
    run = invoke(["validate", str(ws.stocks_dir), "--lang", "zh"])
    assert run.exit_code == 1, run.output
    assert ": 错误: spec.stock_name（批次名称）: " in run.stdout
    assert "已检查 3 个文件，2 个批次有效，1 个错误，0 个警告" in run.stdout
    github = invoke(["validate", str(ws.stocks_dir), "--lang", "zh", "--format", "github"])
    assert "title=reconciler%3A spec.stock_name（批次名称）" in github.stdout


def test_apply_in_chinese(ws: Workspace, local: LocalEmulator) -> None:
    run = ws.cli("apply", "--yes", "--lang", "zh")
    assert run.exit_code == 0, str(run)
    assert run.stdout.startswith("计划：新建 3")
    assert "执行完成：3 成功。" in run.stdout


def test_a_bad_plan_url_is_a_clear_usage_error(ws: Workspace) -> None:
    run = ws.cli("plan", "--refresh", "false", "--plan-url", "javascript:alert(1)")
    assert run.exit_code == 2, str(run)
    assert "is not a plain http(s) URL" in run.stderr
