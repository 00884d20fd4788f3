"""apply's own lines in Chinese (`--lang zh`): each stock's result, the progress and rate-limit
lines, the summary, and the problems of a broken reconciler.yaml; English stays as it was."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.applier import Outcome, Report, Result
from reconciler.commands.plan_apply import _summarise, _throttled
from reconciler.commands.progress import result_lines, result_text, waiting_text
from reconciler.engine import Waiting
from reconciler.i18n import MESSAGES, t
from reconciler.limits import Limit
from tests.e2e_support import LocalEmulator, Workspace, copy_stocks, make_workspace

ENGLISH = re.compile(r"[A-Za-z]{2,}[,:]? [A-Za-z]{2,}")
"""Two English words in a row: a sentence, where ids, field names and numbers are not."""


def english_in(text: str) -> re.Match[str] | None:
    """An English sentence in `text`, leaving out stock ids and `commands` to run."""
    words = re.sub(r"`[^`]*`|[a-z0-9]+(?:-[a-z0-9]+)+", "", text)
    return ENGLISH.search(words)


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


def test_apply_in_chinese_prints_no_english_sentence(ws: Workspace, local: LocalEmulator) -> None:
    run = ws.cli("apply", "--yes", "--lang", "zh")
    assert run.exit_code == 0, str(run)
    lines = run.output.splitlines()
    per_stock = [line for line in lines if line.startswith("[")]
    assert len(per_stock) == 3 and any("已激活" in line for line in per_stock), run.output
    assert "执行完成：3 成功。" in lines
    for line in lines:
        assert not english_in(line), line
    again = ws.cli("apply", "--yes", "--lang", "zh")
    assert again.stdout.endswith("\n没有需要执行的变更。\n"), str(again)


def test_apply_in_english_is_unchanged(ws: Workspace, local: LocalEmulator) -> None:
    run = ws.cli("apply", "--yes", "--lang", "en")
    assert run.exit_code == 0, str(run)
    assert re.search(
        r"^\[\d/3\] ✓ spring-sale-10-off-100: created stock_id \d+ \(批次号\); activated \(start\)$",
        run.stdout,
        re.MULTILINE,
    ), run.stdout
    assert "Apply finished: 3 succeeded." in run.stdout


def _filled(text: str) -> tuple[str, dict[str, str]]:
    names = re.findall(r"\{(\w+)\}", text)
    values = {n: f"V{i}x" for i, n in enumerate(dict.fromkeys(names))}
    return text.format(**values), values


@pytest.mark.parametrize("key", sorted(k for k in MESSAGES if k.startswith("result.")))
def test_every_result_wording_reads_in_chinese_with_its_values(key: str) -> None:
    english, values = _filled(MESSAGES[key][0])
    assert result_text("zh", english) == t("zh", key, **values)
    assert result_text("en", english) == english


def test_a_result_of_several_steps_and_wechat_pay_s_own_words() -> None:
    said = (
        "created stock_id 123 (批次号); not activated: 400 PARAM_ERROR: bad; worse; "
        "the stock stays created (unactivated) and the next apply activates it"
    )
    assert result_text("zh", said) == (
        "已创建，批次号 123；未激活：400 PARAM_ERROR: bad; worse；"
        "批次保持已创建（未激活），下次 apply 会激活它"
    )
    # A part no entry knows (WeChat Pay's words) is shown as it came.
    assert result_text("zh", "paused; 批次不存在") == "已暂停；批次不存在"
    r = Result(
        "a-stock",
        "1900000001",
        Outcome.UNRESOLVED,
        "WeChat Pay says the out_request_no was already used (x) and the stock it created cannot be looked up",
        suggestion="find the stock_id in 商户平台, then: reconciler state import a-stock <stock_id>",
    )
    assert result_lines(r, 1, 2, "zh") == [
        "[1/2] ? a-stock: 微信支付称该 out_request_no 已被使用（x），且查不到它创建的批次",
        "      下一步：在商户平台找到批次号，然后运行：reconciler state import a-stock <stock_id>",
    ]
    assert result_lines(r, 1, 2)[1] == (
        "      next: find the stock_id in 商户平台, then: reconciler state import a-stock <stock_id>"
    )


def test_rate_limit_waits_and_429s_in_both_languages(capsys: pytest.CaptureFixture[str]) -> None:
    waiting = [Waiting("1900000001", "favor_create", 16, Limit(60, 60))]
    assert waiting_text(waiting) == (
        "waiting for the rate limit: favor_create 60/min, merchant 1900000001 (16 calls)"
    )
    assert (
        waiting_text(waiting, "zh") == "等待限频：favor_create 60/min，商户 1900000001（16 个请求）"
    )
    _throttled({("1900000001", "favor_create"): 2}, "zh")
    _throttled({("1900000001", "favor_create"): 2})
    zh, en = capsys.readouterr().err.splitlines()
    assert zh.startswith("微信支付返回 429（请求过多）2 次") and not english_in(zh)
    assert en == (
        "WeChat Pay answered 429 (too many requests) 2 time(s), each retried after a back-off: "
        "1900000001 favor_create × 2. Raise api.rate_limit_margin in reconciler.yaml if this repeats."
    )


def test_a_failed_apply_summary_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report(
        [
            Result("one", "1", Outcome.FAILED, "favor_budget refused: 400 INVALID_REQUEST"),
            *(
                Result(f"s{i}", "1", Outcome.SKIPPED, "interrupted before it started")
                for i in range(12)
            ),
        ]
    )
    _summarise(report, "zh")
    said = capsys.readouterr()
    assert said.out == "执行完成：1 失败，12 跳过。\n"
    assert not english_in(said.out + said.err), said
    assert "  失败：one：favor_budget 被拒绝：400 INVALID_REQUEST" in said.err
    assert "s9 等，另有 2 个" in said.err


def test_a_broken_project_file_in_chinese_at_its_line(ws: Workspace) -> None:
    text = ws.project_file.read_text(encoding="utf-8")
    ws.project_file.write_text(
        text + '    sub_merchants: ["1900100001", "1900100001"]\n', encoding="utf-8"
    )
    line = len(text.splitlines()) + 1
    zh = ws.cli("plan", "--refresh", "false", "--lang", "zh")
    assert zh.exit_code == 1, str(zh)
    found = re.search(
        r"reconciler\.yaml:(\d+):\d+: 错误: .*sub_merchants 中 1900100001 出现了不止一次", zh.output
    )
    assert found, zh.output
    en = ws.cli("apply", "--yes", "--lang", "en")
    assert "sub_merchants lists 1900100001 more than once" in en.output, str(en)
    assert "错误" not in en.output
    assert int(found.group(1)) <= line
