"""Validation messages in both languages: every id a check uses has an English and a Chinese
wording with the same parameters, the nasty corpus reads in Chinese under `--lang zh`, and a
few translations are pinned."""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.codes import parse_codes
from reconciler.diagnostic_messages import CATALOGUE, Msg, msg
from reconciler.diagnostics import Diagnostic, Severity
from reconciler.engine.workspace import validate
from reconciler.i18n import diagnostic_message
from reconciler.loader import load_stock_file
from reconciler.spec.findings import finding
from reconciler.spec.images import COUPON_IMAGE, LOGO, ImageFacts, check_image
from reconciler.spec.stock import PATTERN_HELP
from tests.cli_invoke import invoke
from tests.e2e_support import copy_stocks, edit_stock, make_workspace

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
NASTY_STOCKS = Path(__file__).resolve().parent / "nasty" / "stocks"

VERBATIM = {"problem", "reason", "error"}
"""Parameters that carry another program's own words (the YAML parser's complaint, the OS
error, Python's date error): shown as they are, in either language."""

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_TOKEN = re.compile(r"\S*[_./:\\\d@<>\[\]{}=+~]\S*")  # field paths, files, numbers, code
_WORD = r"(?:[A-Za-z]{2,}(?:-[A-Za-z]+)*|a)\b"  # not the `a-z` of a character range
_ENGLISH = re.compile(rf"\b{_WORD}(?:[ ,;()]+{_WORD}){{2,}}")


def _plain(message: str) -> str:
    """`message` without quoted values and code-like tokens (paths, fields, numbers)."""
    return _TOKEN.sub(" ", _QUOTED.sub(" ", message))


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def used_ids() -> Iterator[tuple[str, str]]:
    """(where, id or id prefix ending in '.') for every `msg(...)` call in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            if not (isinstance(node.func, ast.Name) and node.func.id == "msg"):
                continue
            first, where = node.args[0], f"{path.relative_to(PACKAGE)}:{node.lineno}"
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield where, first.value
            elif isinstance(first, ast.JoinedStr) and isinstance(first.values[0], ast.Constant):
                yield where, str(first.values[0].value)  # f"type.{kind}": a prefix
            else:
                yield where, "<computed>"


def test_every_used_id_is_in_the_catalogue() -> None:
    seen = list(used_ids())
    assert len(seen) > 80
    for where, message_id in seen:
        if message_id == "<computed>":
            continue  # PATTERN_HELP's ids, checked below
        if message_id.endswith("."):
            assert any(k.startswith(message_id) for k in CATALOGUE), (where, message_id)
        else:
            assert message_id in CATALOGUE, (where, message_id)
    for message_id in PATTERN_HELP.values():
        assert message_id in CATALOGUE


def test_every_entry_is_used() -> None:
    source = "\n".join(p.read_text("utf-8") for p in PACKAGE.rglob("*.py"))
    prefixes = [i for _, i in used_ids() if i.endswith(".")]
    for message_id in CATALOGUE:
        quoted = f'"{message_id}"' in source
        assert quoted or any(message_id.startswith(p) for p in prefixes), message_id


@pytest.mark.parametrize("message_id", sorted(CATALOGUE))
def test_both_wordings_take_the_same_parameters(message_id: str) -> None:
    en, zh = CATALOGUE[message_id]
    assert fields(en) == fields(zh), message_id
    words = _plain(re.sub(r"\{[^}]*\}", " ", zh))
    assert not _ENGLISH.search(words), f"{message_id}: English left in {zh!r}"
    if re.search(r"[a-z]{3,} [a-z]{3,}", _plain(re.sub(r"\{[^}]*\}", " ", en))):
        assert re.search(r"[\u4e00-\u9fff]", zh), f"{message_id} is not translated"


def _leftover_english(d: Diagnostic) -> str | None:
    """A run of three or more English words in `d`'s Chinese message, once the values it
    quotes, the verbatim parameters and anything that looks like code or a path are gone."""
    message = diagnostic_message(d.message, d.message_id, d.params, "zh")
    for name, value in d.params.items():
        if name in VERBATIM and isinstance(value, str):
            message = message.replace(value, " ")
    found = _ENGLISH.search(_plain(message))
    return found.group() if found else None


def test_the_checker_finds_english_and_lets_values_through() -> None:
    def diagnostic(said: Msg | str) -> Diagnostic:
        if isinstance(said, str):
            return Diagnostic("f.yaml", 1, 1, Severity.ERROR, (), said)
        return Diagnostic("f.yaml", 1, 1, Severity.ERROR, (), said.en, "x", said.id, said.params)

    assert _leftover_english(diagnostic("must be later than begin_time")) == "must be later than"
    assert _leftover_english(diagnostic(msg("yaml.syntax", problem="while scanning a key"))) is None
    quoted = msg("unknown_field", name="spring sale day")
    assert _leftover_english(diagnostic(quoted)) is None
    assert _leftover_english(diagnostic(msg("time_order"))) is None


def test_the_nasty_corpus_reads_in_chinese() -> None:
    result = validate([NASTY_STOCKS], Path.cwd())  # the base the CLI shows paths from
    assert len(result.diagnostics) > 70
    for d in result.diagnostics:
        assert d.message_id, f"{d.location()}: no Chinese wording for {d.message!r}"
        assert _leftover_english(d) is None, (d.location(), _leftover_english(d))
    shown = invoke(["validate", str(NASTY_STOCKS), "--lang", "zh"])
    assert shown.exit_code == 1
    for d in result.diagnostics:
        assert f": {diagnostic_message(d.message, d.message_id, d.params, 'zh')}\n" in shown.stdout
    assert "已检查 " in shown.stdout
    github = invoke(["validate", str(NASTY_STOCKS), "--lang", "zh", "--format", "github"])
    annotations = [line for line in github.stdout.splitlines() if line.startswith("::error")]
    assert annotations
    for line in annotations:
        assert re.search(r"[\u4e00-\u9fff]", line.split("::", 2)[2]), line


@pytest.mark.parametrize(
    ("name", "english", "chinese"),
    [
        (
            "name-too-long-mixed.yaml",
            "7 Chinese characters and 5 others, which count as 20.6 letters",
            "含 7 个汉字和 5 个其他字符，折合 20.6 个字母（一个汉字按 2.2 个字母计）；最多 9 个汉字或 20 个字母：请缩短",
        ),
        (
            "money-in-yuan.yaml",
            "write 500 for ¥5.00",
            "金额以分为单位，须为整数：¥5.00 应写作 500",
        ),
        (
            "amount-strict-range.yaml",
            "some docs allow only more than ¥1.00 and at most ¥500.00",
            "当前为 100 分 (¥1.00)；部分文档只允许大于 ¥1.00 且不超过 ¥500.00，微信支付可能拒绝",
        ),
        (
            "id-uppercase.yaml",
            "did you mean 'spring-sale'?",
            "'Spring-Sale' 不是有效的 id：请使用小写字母 a-z、数字和连字符（不能在首尾），1 到 64 个字符，"
            "例如 'spring-sale-10-off-100'；是否应为 'spring-sale'？",
        ),
        (
            "tab-indent.yaml",
            "tab character in the indentation",
            "缩进中有制表符：YAML 只能用空格缩进；请把制表符换成空格",
        ),
        ("duplicate-key.yaml", "first on line 12", "重复的键 'max_coupons'（首次出现在第 12 行）"),
    ],
)
def test_spot_translations(name: str, english: str, chinese: str) -> None:
    _, diagnostics = load_stock_file((NASTY_STOCKS / name).read_bytes(), name)
    assert english in diagnostics[0].message
    zh = diagnostic_message(
        diagnostics[0].message, diagnostics[0].message_id, diagnostics[0].params, "zh"
    )
    assert chinese in zh, zh
    assert (
        diagnostic_message(
            diagnostics[0].message, diagnostics[0].message_id, diagnostics[0].params, "en"
        )
        == diagnostics[0].message
    )


def test_rule_messages_keep_their_numbers_in_chinese() -> None:
    said = msg(
        "budget_mismatch", amount="¥10.00", coupons="1,000", expected="¥10,000.00", value="¥9.00"
    )
    assert said.en == (
        "must equal coupon_amount × max_coupons = ¥10.00 × 1,000 = ¥10,000.00; is ¥9.00"
    )
    assert said.text(1) == "必须等于 面额 × 发放总上限 = ¥10.00 × 1,000 = ¥10,000.00；当前为 ¥9.00"
    above = msg("above.send_max_coupons", value="2,000", limit="1,000")
    assert above.text(1) == "2,000 超过批次最大发放个数 max_coupons（1,000）"
    nested = Msg("key_not_allowed", {"key": 3, "message": msg("empty")})
    assert (nested.en, nested.text(1)) == (
        "3 is not allowed here: must not be empty",
        "此处不允许键 3：不能为空",
    )


def test_code_pool_and_image_messages_read_in_chinese() -> None:
    _, _, problems = parse_codes(" A1\nB#2\n" + "C" * 40 + "\nD4\nD4\n", "codes.txt")
    assert [d.code for d in problems] == [
        "code_space",
        "code_character",
        "code_length",
        "code_duplicate",
    ]
    facts = ImageFacts("logo.jpg", "0" * 64, 3 * 1024 * 1024, "PNG", 100, 90)
    images = [
        finding((), Severity.ERROR, problem.said, "image_limits")
        for problem in check_image(facts, LOGO) + check_image(facts, COUPON_IMAGE)
    ]
    assert len(images) == 6
    for f in images:
        problems.append(
            Diagnostic(
                "s.yaml", 1, 1, f.severity, f.path, f.message, f.code, f.message_id, f.params
            )
        )
    for d in problems:
        assert _leftover_english(d) is None, (d.message, _leftover_english(d))
    zh = [diagnostic_message(d.message, d.message_id, d.params, "zh") for d in problems]
    assert zh[1] == "券码 'B#2'：不允许字符 '#'；券码只能使用 0-9 a-z A-Z、空格，以及 - _ \\ / = |"
    assert zh[3] == "券码 'D4' 也出现在第 4 行；每个券码只能出现一次"
    assert zh[4] == (
        "logo.jpg 实际是 PNG 图片，但文件名以 .jpg 结尾；微信支付要求后缀与格式一致：请改名为以 .png 结尾"
    )
    assert zh[6] == (
        "logo.jpg 为 100×90 像素；文档要求商户logo为 120×120 像素：请调整尺寸，否则微信支付可能缩放或裁剪"
    )
    assert problems[6].message == (
        "logo.jpg is 100×90 px; the docs say a logo should be 120×120 px: resize it, or WeChat "
        "Pay may scale or crop it"
    )


def test_plan_and_apply_show_a_broken_stock_in_the_chosen_language(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "project")
    ws.write_project("http://127.0.0.1:9")  # never reached: the stock is refused first
    favor = copy_stocks(ws.stocks_dir, ("favor",))[0]
    edit_stock(ws.stock_file(favor), lambda d: d["spec"].update(stock_name="春季_特惠"))
    for args in (("plan", "--lang", "zh"), ("apply", "--yes", "--lang", "zh")):
        run = ws.cli(*args)
        assert run.exit_code == 1, str(run)
        assert "错误: spec.stock_name（批次名称）: 不得包含 '_'（文档禁止 _ , ; |）" in run.stderr
    english = ws.cli("plan", "--lang", "en")
    assert (
        "error: spec.stock_name: must not contain '_' (the docs forbid _ , ; |)" in english.stderr
    )


def test_a_choice_reads_in_chinese_and_stays_exact_in_english() -> None:
    raw = (NASTY_STOCKS / "kind-wrong.yaml").read_bytes()
    _, diagnostics = load_stock_file(raw, "k.yaml")
    d = diagnostics[0]
    assert d.message == "must be favor (代金券) or busifavor (商家券); got 'Favor'"
    assert diagnostic_message(d.message, d.message_id, d.params, "zh") == (
        "必须是 favor（代金券）或 busifavor（商家券）；实际为 'Favor'"
    )
    said = msg(
        "one_of",
        expected=msg("either", a="'NORMAL', 'DISCOUNT'", b="'EXCHANGE'"),
        got=msg("got.string", value="x"),
    )
    assert said.en == "must be one of 'NORMAL', 'DISCOUNT' or 'EXCHANGE'; got string 'x'"
    assert said.text(1) == "必须是 'NORMAL', 'DISCOUNT' 或 'EXCHANGE' 之一；实际为 字符串 'x'"
