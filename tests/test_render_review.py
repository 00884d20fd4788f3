"""What a marketing reviewer reads: the headline (stocks, then money per merchant), one summary
line per stock from its kind, every field under its documented Chinese name and group, in
Chinese or English, and a comment that fits GitHub while the job summary holds everything.

Goldens (tests/golden/mixed.*, plan150.*) come from plans the real planner makes
(tests/render_plans.py). After an intended change of the output, rewrite and review them:

    RECONCILER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render_review.py
    git diff tests/golden/
"""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from reconciler.i18n import LANGS, Lang, resolve_lang
from reconciler.kinds import KINDS
from reconciler.plan import Action, Plan
from reconciler.render.markdown import COMMENT_LIMIT, SUMMARY_LIMIT, render_markdown
from reconciler.render.review import create_groups, headline
from reconciler.render.text import render_text
from reconciler.spec.images import ImageFile
from reconciler.spec.traits import _models_in
from tests.render_plans import mixed_plan, plan_150
from tests.test_render_plan import check_golden

RUN = "https://github.com/acme/coupon-stocks/actions/runs/7"


def model_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field path of a spec model, nested objects and list items included."""
    out = []
    for name, info in model.model_fields.items():
        path = prefix + name
        out.append(path)
        annotation = info.annotation
        for arg in [annotation, *typing.get_args(annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                # `{file: ...}` names an image apply uploads; it is the field's value, not a field.
                for sub in (m for m in _models_in(inner) if m is not ImageFile):
                    out += model_paths(sub, path + ".")
    return sorted(set(out))


# --- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_field_has_a_label_in_both_languages(kind: str) -> None:
    k = KINDS[kind]
    paths = model_paths(k.spec_model)
    missing = [p for p in paths if p not in k.labels]
    assert not missing, f"{kind}: fields without a label: {missing}"
    extra = sorted(set(k.labels) - set(paths))
    assert not extra, f"{kind}: labels of no field: {extra}"
    for path, label in k.labels.items():
        assert re.search(r"[\u4e00-\u9fff]", label.zh), (path, label)
        assert label.en.isascii() or "免充值" in label.en, (path, label)


def maximal_body(kind: str) -> dict[str, Any]:
    """A create body with every field of the model set (one list item for lists of objects)."""

    def fill(model: type[BaseModel]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            subs = [
                m
                for a in [info.annotation, *typing.get_args(info.annotation)]
                for i in [a, *typing.get_args(a)]
                for m in _models_in(i)
                if m is not ImageFile  # a create body holds the image's URL, never the file
            ]
            listy = "list[" in str(info.annotation)
            if subs:
                out[name] = [fill(subs[0])] if listy else fill(subs[0])
            else:
                out[name] = ["x"] if listy else 1
        return out

    return fill(KINDS[kind].spec_model)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("lang", LANGS)
def test_a_create_shows_every_field_of_the_model(kind: str, lang: Lang) -> None:
    from reconciler.operation import Operation, OpType
    from reconciler.plan import Change

    body = maximal_body(kind)
    change = Change(
        "all-fields",
        kind,
        "1900000001",
        Action.CREATE,
        "new",
        operations=(Operation(OpType.CREATE, "n", body, 0, body),),
    )
    shown = [
        f.path.removeprefix("spec.") for _, fields in create_groups(change, lang) for f in fields
    ]
    leaves = [
        p
        for p in model_paths(KINDS[kind].spec_model)
        if not any(q.startswith(p + ".") for q in model_paths(KINDS[kind].spec_model))
    ]
    assert sorted(re.sub(r"\[\d+\]", "", p) for p in shown) == sorted(leaves)
    out = render_text(Plan("", "", "", 0, "", "", (change,)), lang=lang)
    for path in leaves:
        label = KINDS[kind].labels[path]
        assert label.text(lang) in out, path


# --- the summary line --------------------------------------------------------------------------


def test_the_favor_summary_line_reads_like_the_campaign_brief() -> None:
    body = (
        next(c for c in mixed_plan().changes if c.id == "spring-sale-10-off-100").operations[0].body
    )
    assert KINDS["favor"].summary_line(body, "en") == (
        "春季满100减10 · 代金券 · ¥10 off orders ≥ ¥100 · 20,000 coupons, 2 per person"
        " · 3月1日–3月31日 · locks ¥200,000 at activation"
    )
    assert KINDS["favor"].summary_line(body, "zh") == (
        "春季满100减10 · 代金券 · 满 ¥100 减 ¥10 · 共 20,000 张，每人限 2 张"
        " · 3月1日–3月31日 · 激活时锁定 ¥200,000"
    )


# --- money: the budget increase ------------------------------------------------------------


def test_a_busifavor_budget_increase_is_money_in_the_headline_its_row_and_the_totals() -> None:
    plan = mixed_plan()
    latte = next(c for c in plan.changes if c.id == "member-day-latte-8-off")
    assert latte.action is Action.UPDATE
    (delta,) = latte.budget_deltas
    assert (delta.before, delta.after, delta.unit_fen, delta.fen) == (
        50_000,
        60_000,
        800,
        8_000_000,
    )
    assert plan.totals[0].budget_delta_fen == 8_000_000
    assert plan.to_data()["headline"]["budget_changes"][0]["delta_fen"] == 8_000_000
    text = render_text(plan)
    markdown = render_markdown(plan)
    head = text.split("\n\n")[0]
    assert "Budget change member-day-latte-8-off: +¥80,000 (50,000 → 60,000 × ¥8)" in head
    assert "    Coupons in total: 50,000 → 60,000  (budget +¥80,000 (50,000 → 60,000 × ¥8))" in text
    assert "budget changes +¥80,000" in text.split("Per merchant:")[1].split("\n\n")[0]
    assert "- Budget change member-day-latte-8-off: +¥80,000 \\(50,000 → 60,000 × ¥8\\)" in markdown
    section = markdown.split("member-day-latte-8-off` ·")[1].split("</details>")[0]
    assert (
        "- Coupons in total: 50,000 → 60,000 — budget +¥80,000 \\(50,000 → 60,000 × ¥8\\)"
        in section
    )
    assert "budget changes +¥80,000" in markdown.split("### Per merchant")[1]
    assert "预算变更 member-day-latte-8-off：+¥80,000（50,000 → 60,000 × ¥8）" in render_text(
        plan, lang="zh"
    )


def test_no_english_in_the_chinese_headline_and_labels() -> None:
    plan = mixed_plan()
    ids = {c.id for c in plan.changes} | {c.merchant for c in plan.changes}
    for line in headline(plan, "zh"):
        for word in sorted(ids, key=len, reverse=True):
            line = line.replace(word, "")
        assert not re.search(r"[A-Za-z]{2,}", line.replace("reconciler", "")), line
    for change in plan.changes:
        for title, fields in create_groups(change, "zh"):
            assert not re.search(r"[A-Za-z]", title)
            for f in fields:
                assert not re.search(
                    r"[a-z]{3,}",
                    f.name.replace("appid", "")
                    .replace("logo", "")
                    .replace("path", "")
                    .replace("code", ""),
                ), f.name


# --- goldens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_mixed_plan_goldens(lang: Lang) -> None:
    plan = mixed_plan()
    check_golden(f"mixed.{lang}.txt", render_text(plan, lang=lang))
    check_golden(f"mixed.{lang}.md", render_markdown(plan, lang=lang, full_plan_url=RUN))


@pytest.mark.parametrize("lang", LANGS)
def test_150_stock_goldens_fit_the_comment_and_the_summary_holds_all(lang: Lang) -> None:
    plan = plan_150()
    comment = render_markdown(plan, lang=lang, full_plan_url=RUN)
    check_golden(f"plan150.{lang}.md", comment)
    check_golden(f"plan150.{lang}.txt", render_text(plan, lang=lang))
    assert len(comment) < COMMENT_LIMIT
    assert f"]({RUN})" in comment.split("### ")[0]  # linked above the first section
    assert re.search(r"\d+ (more stocks are folded away|个批次未展开)", comment)
    full = render_markdown(plan, lang=lang, max_chars=SUMMARY_LIMIT, max_bytes=SUMMARY_LIMIT)
    assert len(full.encode("utf-8")) <= SUMMARY_LIMIT
    acting = [c for c in plan.changes if c.action is not Action.NOOP]
    assert len(acting) == 130 and full.count("<details><summary>") == 130 + 1
    assert all(f"`{c.id}`" in full for c in acting)
    assert "folded away" not in full and "未展开" not in full


# --- the language ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "configured", "environ", "expected"),
    [
        ("en", "zh", {"LANG": "zh_CN.UTF-8"}, "en"),
        (None, "zh", {"LANG": "en_US.UTF-8"}, "zh"),
        (None, None, {"LANG": "zh_CN.UTF-8"}, "zh"),
        (None, None, {"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
        (None, None, {}, "en"),
    ],
)
def test_language_comes_from_option_then_project_then_locale(
    option: str | None, configured: str | None, environ: dict[str, str], expected: str
) -> None:
    assert resolve_lang(option, configured, environ) == expected


def test_a_note_is_printed_once() -> None:
    """CI passes the same sentence as the plan's refresh note and as the comment's note."""
    from dataclasses import replace

    note = "Fork pull request: planned from the state alone (--refresh=false), without credentials"
    plan = replace(mixed_plan(), refresh="none", refresh_note=note)
    for lang in LANGS:
        out = render_markdown(plan, note=note, lang=lang)
        assert out.count("Fork pull request") == 1, lang
    assert render_markdown(plan, lang="en").count("Fork pull request") == 1


def test_facts_read_as_lines_and_fixes_as_prose() -> None:
    plan = mixed_plan()
    zh = render_markdown(plan, lang="zh")
    assert "**微信支付上的现状**：已发放 812 张 · 状态 运行中" in zh
    assert "{" not in zh.split("### 批次")[1].split("<summary>技术细节")[0]  # no JSON
    assert "```" not in zh and "```" not in render_markdown(plan, lang="en")


def test_percentage_and_exchange_offers_read_as_such() -> None:
    body: dict[str, Any] = {
        "stock_name": "周三咖啡88折",
        "stock_type": "DISCOUNT",
        "coupon_use_rule": {
            "discount_coupon": {"discount_percent": 88, "transaction_minimum": 2000},
            "coupon_available_time": {
                "available_begin_time": "2027-12-01T00:00:00+08:00",
                "available_end_time": "2028-01-31T23:59:59+08:00",
            },
        },
        "stock_send_rule": {"max_coupons": 500, "max_coupons_per_user": 1},
    }
    assert KINDS["busifavor"].summary_line(body, "en") == (
        "周三咖啡88折 · 商家券 · pays 88% on orders ≥ ¥20 · 500 coupons, 1 per person"
        " · 2027年12月1日–2028年1月31日 · locks nothing"
    )
    assert "按 88% 付款，满 ¥20 可用" in KINDS["busifavor"].summary_line(body, "zh")


def test_a_field_without_a_label_is_shown_by_its_path_not_dropped() -> None:
    from reconciler.operation import Operation, OpType
    from reconciler.plan import Change

    body = {**maximal_body("favor"), "future_field": "x"}
    change = Change("new", "favor", "1900000001", Action.CREATE, "new",
                    operations=(Operation(OpType.CREATE, "n", body, 0, body),))  # fmt: skip
    groups = dict(create_groups(change, "zh"))
    assert [f.name for f in groups["其他"]] == ["future_field"]
