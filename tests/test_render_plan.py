"""The plan renderers: text (terminal), JSON (versioned document) and Markdown (PR comment).

Each renderer's output for a realistic plan is compared with a golden file in `tests/golden/`
(plan.txt, plan.color.txt, plan.json, plan.md). After an intended change of the output, rewrite
them and review the diff before committing:

    RECONCILER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render_plan.py
    git diff tests/golden/
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.plan import Action, Change, FieldChange, MerchantTotals, Operation, OpType, Plan
from reconciler.render.json_doc import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import duration, render_text, summary_line

GOLDEN = Path(__file__).parent / "golden"
M1, M2, M3 = "1900000001", "1900000002", "1900000003"
NOTE = "Fork pull request: planned from state alone (`--refresh=false`), no credentials"


def favor_body(name: str, request_no: str, coupons: int, amount: int) -> dict[str, Any]:
    return {
        "stock_name": name,
        "belong_merchant": M1,
        "available_begin_time": "2027-03-01T00:00:00+08:00",
        "available_end_time": "2027-03-31T23:59:59+08:00",
        "stock_use_rule": {
            "max_coupons": coupons,
            "max_amount": coupons * amount,
            "max_amount_by_day": coupons * amount // 10,
            "max_coupons_per_user": 2,
            "natural_person_limit": True,
            "prevent_api_abuse": True,
        },
        "coupon_use_rule": {
            "fixed_normal_coupon": {"coupon_amount": amount, "transaction_minimum": amount * 10},
            "trade_type": ["MICROAPP", "APPPAY"],
        },
        "no_cash": False,
        "stock_type": "NORMAL",
        "out_request_no": request_no,
    }


def favor_create(sid: str, merchant: str = M1, coupons: int = 20000, amount: int = 1000) -> Change:
    request_no = f"{merchant}_FC0_{sid}_0f3a9c2e7b1d4a6e8c5b2f1a9d7e3c4b"
    body = favor_body("春季满100减10", request_no, coupons, amount)
    return Change(
        id=sid,
        kind="favor",
        merchant=merchant,
        action=Action.CREATE,
        reason="new stock",
        file=f"stocks/favor/{sid}.yaml",
        line=6,
        operations=(
            Operation(OpType.CREATE, request_no, body, 0, body),
            Operation(
                OpType.START,
                f"{merchant}_FA0_{sid}_6d0e9b1a2c3f4e5d6a7b8c9d0e1f2a3b",
                {"stock_creator_mchid": merchant},
                0,
                body,
            ),
        ),
        budget_fen=coupons * amount,
        locked_fen=coupons * amount,
    )


def noop(sid: str, merchant: str = M2) -> Change:
    return Change(sid, "favor", merchant, Action.NOOP, "in sync", f"stocks/favor/{sid}.yaml", 6)


def sample_plan() -> Plan:
    budget_no = f"{M1}_BQ0_member-day-latte-8-off_5d2c8e1f0a7b3c9d4e6f1a2b8c7d0e3f"
    modify_no = f"{M1}_BM0_member-day-latte-8-off_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
    pastry_no = f"{M2}_BC0_weekend-pastry-exchange_1b2c3d4e5f60718293a4b5c6d7e8f901"
    pastry: dict[str, Any] = {
        "stock_name": "周末面包换购",
        "belong_merchant": M2,
        "goods_name": "周末面包",
        "stock_type": "EXCHANGE",
        "coupon_use_rule": {
            "coupon_available_time": {
                "available_begin_time": "2027-04-03T00:00:00+08:00",
                "available_end_time": "2027-06-27T23:59:59+08:00",
            },
            "exchange_coupon": {"exchange_price": 100, "transaction_minimum": 2000},
            "use_method": "OFF_LINE",
        },
        "stock_send_rule": {"max_coupons": 3000, "max_coupons_per_user": 1},
        "coupon_code_mode": "WECHATPAY_MODE",
        "out_request_no": pastry_no,
    }
    changes = (
        favor_create("spring-sale-10-off-100"),
        Change(
            id="member-day-latte-8-off",
            kind="busifavor",
            merchant=M1,
            action=Action.UPDATE,
            reason="stock name and budget changed; WeChat Pay allows both",
            file="stocks/busifavor/member-day-latte-8-off.yaml",
            line=7,
            stock_id="1212000000000000000000000001",
            fields=(
                FieldChange("spec.stock_name", "会员日拿铁减8元", "会员日拿铁立减8元"),
                FieldChange("spec.stock_send_rule.max_coupons", 50000, 80000),
                FieldChange(
                    "budget", 40000000, 64000000, money=True, note="discount_amount × max_coupons"
                ),
            ),
            operations=(
                Operation(
                    OpType.MODIFY,
                    modify_no,
                    {"out_request_no": modify_no, "stock_name": "会员日拿铁立减8元"},
                    0,
                    {"stock_name": "会员日拿铁立减8元", "stock_send_rule": {"max_coupons": 50000}},
                    "1212000000000000000000000001",
                ),
                Operation(
                    OpType.BUDGET,
                    budget_no,
                    {
                        "target_max_coupons": 80000,
                        "current_max_coupons": 50000,
                        "modify_budget_request_no": budget_no,
                    },
                    0,
                    {"stock_name": "会员日拿铁立减8元", "stock_send_rule": {"max_coupons": 80000}},
                    "1212000000000000000000000001",
                ),
            ),
            facts={"status": "RUNNING", "distributed_coupons": 12034},
        ),
        noop("autumn-latte-6-off"),
        Change(
            id="weekend-pastry-exchange",
            kind="busifavor",
            merchant=M2,
            action=Action.RECOVER,
            reason="create interrupted at state serial 41; apply settles it with the same number and body",
            file="stocks/busifavor/weekend-pastry-exchange.yaml",
            line=5,
            operations=(Operation(OpType.CREATE, pastry_no, pastry, 0, pastry),),
            ceiling_fen=300000,
        ),
        Change(
            id="winter-clearance-5-off",
            kind="favor",
            merchant=M2,
            action=Action.DRIFT,
            reason="changed outside reconciler (merchant platform)",
            file="stocks/favor/winter-clearance-5-off.yaml",
            line=6,
            stock_id="16020512",
            fields=(
                FieldChange(
                    "spec.stock_use_rule.max_amount_by_day",
                    3000000,
                    2000000,
                    money=True,
                    note="changed in the merchant platform",
                ),
            ),
            facts={"status": "running", "distributed_coupons": 1520, "used_amount": 760000},
        ),
        noop("winter-mocha-4-off"),
        Change(
            id="autumn-tea-3-off",
            kind="busifavor",
            merchant=M3,
            action=Action.ORPHAN,
            reason="in the state, but its stock file is gone; stocks cannot be deleted",
            stock_id="1212000000000000000000000077",
            facts={"status": "RUNNING"},
            suggestion="reconciler state rm autumn-tea-3-off",
        ),
        Change(
            id="new-year-20-off-200",
            kind="favor",
            merchant=M3,
            action=Action.BLOCKED,
            reason="available_begin_time 2027-01-01T00:00:00+08:00 has passed",
            file="stocks/favor/new-year-20-off-200.yaml",
            line=11,
            budget_fen=5000000,
        ),
        Change(
            id="member-day-mocha-5-off",
            kind="busifavor",
            merchant=M1,
            action=Action.IMMUTABLE,
            reason="a field changed that WeChat Pay cannot change after creation",
            file="stocks/busifavor/member-day-mocha-5-off.yaml",
            line=24,
            stock_id="1212000000000000000000000002",
            fields=(
                FieldChange(
                    "spec.coupon_use_rule.fixed_normal_coupon.discount_amount",
                    500,
                    600,
                    money=True,
                    note="fixed at creation",
                ),
            ),
            suggestion="git checkout origin/main -- stocks/busifavor/member-day-mocha-5-off.yaml",
        ),
        noop("spring-tea-2-off", M3),
    )
    return Plan(
        created_at="2027-02-20T09:30:00+08:00",
        tool_version="0.1.0",
        state_lineage="5f0c6a4e-1d2b-4c3a-9e8f-7a6b5c4d3e2f",
        state_serial=42,
        desired_digest="sha256:7d1e0c4b9a8f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c",
        refresh="changing",
        changes=changes,
        totals=(
            MerchantTotals(M1, 1, 20000000, 1, 100, activation_locked_fen=20000000),
            MerchantTotals(M2, 0, 0, 0, 1, recovers=1, ceiling_fen=300000),
            MerchantTotals(M3, 0, 0, 0, 0),
        ),
        estimated_apply_seconds=100,
    )


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing; run with RECONCILER_UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden; if intended, rerun with RECONCILER_UPDATE_GOLDEN=1"
    )


# --- goldens ---------------------------------------------------------------------------------


def test_text_golden() -> None:
    check_golden("plan.txt", render_text(sample_plan()))


def test_text_color_golden() -> None:
    check_golden("plan.color.txt", render_text(sample_plan(), color=True))


def test_json_golden() -> None:
    check_golden("plan.json", render_json(sample_plan()))


def test_markdown_golden() -> None:
    check_golden("plan.md", render_markdown(sample_plan(), note=NOTE))


# --- text ------------------------------------------------------------------------------------


def test_summary_line_counts_every_group() -> None:
    assert summary_line(sample_plan()) == (
        "Plan: 1 to create, 1 to update, 1 to resume · 3 in sync · 1 drifted · 1 orphaned · 2 errors"
    )
    assert summary_line(sample_plan(), "zh") == (
        "计划：新建 1，变更 1，继续 1 · 已同步 3 · 外部改动 1 · 无文件 1 · 错误 2"
    )


def test_summary_line_leaves_out_empty_groups_after_the_first_three() -> None:
    plan = sample_plan()
    only = replace(plan, changes=(favor_create("a"), noop("b")))
    assert summary_line(only) == "Plan: 1 to create, 0 to update, 0 to resume · 1 in sync"


def test_text_lists_acting_stocks_in_plan_order_and_counts_noops() -> None:
    out = render_text(sample_plan())
    heads = [m[1] for m in re.finditer(r"(?m)^[+~↻!?✗] [a-z-]+ +(\S+)", out)]
    assert heads == [
        "spring-sale-10-off-100",
        "member-day-latte-8-off",
        "weekend-pastry-exchange",
        "winter-clearance-5-off",
        "autumn-tea-3-off",
        "new-year-20-off-200",
        "member-day-mocha-5-off",
    ]
    for quiet in ("autumn-latte-6-off", "winter-mocha-4-off", "spring-tea-2-off"):
        assert quiet not in out


def test_text_shows_money_in_fen_and_yuan_and_the_create_body() -> None:
    out = render_text(sample_plan())
    assert (
        "    budget: 40000000 分 (¥400,000.00) → 64000000 分 (¥640,000.00)  (discount_amount × max_coupons)"
        in out
    )
    assert (
        "      Total budget (spec.stock_use_rule.max_amount): 20000000 分 (¥200,000.00) 🔒" in out
    )
    assert "      Stock name (spec.stock_name): 春季满100减10 🔒" in out
    assert (
        "      Exchange price (spec.coupon_use_rule.exchange_coupon.exchange_price): 100 分 (¥1.00) 🔒"
        in out
    )
    assert (
        "    Observed at WeChat Pay: issued 1,520 · status running · redeemed value 760000 分 (¥7,600.00)"
        in out
    )
    assert (
        "    How to fix: git checkout origin/main -- stocks/busifavor/member-day-mocha-5-off.yaml"
        in out
    )
    assert (
        "  1900000001: 1 to create, 1 to change, 0 to resume · budget ¥200,000, locked at"
        " activation ¥200,000, ceiling —, budget changes — · ~1 min 40 s" in out
    )
    assert "    locked from the balance at activation (预充值): 20000000 分 (¥200,000.00)" in out
    assert "    ceiling only, never locked: 300000 分 (¥3,000.00)" in out


def test_a_blocked_create_commits_no_budget() -> None:
    """Issue 11: a blocked stock showed "budget committed", though apply sends nothing."""
    text = render_text(sample_plan())
    markdown = render_markdown(sample_plan(), note=NOTE)
    blocked = text.split("✗ blocked")[1].split("\n\n")[0]
    assert "budget committed" not in blocked
    assert "would commit 5000000 分 (¥50,000.00), once it can be created" in blocked
    section = markdown.split("<summary>✗ cannot be created")[1].split("</details>")[0]
    assert "budget committed" not in section
    assert "would commit 5000000 分 \\(¥50,000.00\\), once it can be created" in section
    assert "budget committed: 20000000 分 (¥200,000.00)" in text  # the create still does


def test_text_without_color_has_no_ansi_and_with_color_marks_actions() -> None:
    assert "\x1b" not in render_text(sample_plan())
    colored = render_text(sample_plan(), color=True)
    assert "\x1b[32m+ create     spring-sale-10-off-100" in colored
    assert "\x1b[33m~ update     member-day-latte-8-off" in colored
    assert "\x1b[31m✗ immutable  member-day-mocha-5-off" in colored


def test_text_shows_control_characters_instead_of_obeying_them() -> None:
    change = Change("evil", "favor", M1, Action.DRIFT, "name is \x1b[2J\x1b[31mfine\r\u202eok")
    change = replace(change, suggestion=change.reason)
    out = render_text(replace(sample_plan(), changes=(change,)))
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "name is \\x1b[2J\\x1b[31mfine\\x0d\\u202eok" in out


def test_empty_plan() -> None:
    plan = replace(sample_plan(), changes=tuple(noop(f"s-{i}") for i in range(12)))
    text = render_text(plan)
    assert text.splitlines()[0] == "No changes. 12 stocks in sync."
    assert "s-0" not in text and "Per merchant" not in text
    markdown = render_markdown(plan)
    assert markdown.startswith(
        "<!-- reconciler:plan -->\n## reconciler plan\n\n**No changes. 12 stocks in sync.**\n"
    )
    assert "<summary>Technical details</summary>" in markdown
    assert markdown.count("<details>") == 1 and "Per merchant" not in markdown


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0 s"),
        (0.4, "<1 s"),
        (1, "~1 s"),
        (59.2, "~1 min"),
        (100, "~1 min 40 s"),
        (3725, "~1 h 3 min"),
    ],
)
def test_duration(seconds: float, expected: str) -> None:
    assert duration(seconds) == expected


# --- JSON ------------------------------------------------------------------------------------


def test_json_round_trips_and_carries_a_stable_checksum() -> None:
    plan = sample_plan()
    out = render_json(plan)
    doc = json.loads(out)
    again = Plan.from_data(doc)
    assert again == plan
    assert doc["checksum"] == plan.checksum() == again.checksum()
    assert render_json(again) == out
    assert out.endswith("}\n") and "春季满100减10" in out


def test_json_checksum_is_verifiable_from_the_document_alone() -> None:
    doc = json.loads(render_json(sample_plan()))
    claimed = doc.pop("checksum")
    canonical = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert claimed == "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_json_documents_every_top_level_field() -> None:
    documented = (Path(__file__).parent.parent / "docs" / "plan-json.md").read_text(
        encoding="utf-8"
    )
    doc = json.loads(render_json(sample_plan()))
    names = (
        set(doc)
        | {f"state.{k}" for k in doc["state"]}
        | {f"totals[].{k}" for k in doc["totals"][0]}
    )
    names |= {f"changes[].{k}" for k in doc["changes"][0]}
    names |= {f"changes[].fields[].{k}" for k in doc["changes"][1]["fields"][0]}
    names |= {f"changes[].operations[].{k}" for k in doc["changes"][0]["operations"][0]}
    missing = sorted(n for n in names if f"`{n}`" not in documented)
    assert not missing
    for action in Action:
        assert f"`{action.value}`" in documented


# --- Markdown --------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_FENCED = re.compile(r"(?ms)^(`{3,})sh\n.*?\n\1$")
_OWN_TAGS = re.compile(r"</?(details|summary|code)>|<br>|<!-- reconciler:plan -->")


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def hostile_plan() -> Plan:
    name = "x|y<script>alert(1)</script>`rm -rf`<img src=x onerror=alert(2)>"
    create = favor_create("hostile")
    body = {**create.operations[0].body, "stock_name": name}
    create = replace(
        create,
        reason=f"new stock {name} *bold* [link](http://e.x) $x$\n| a | b |",
        operations=(Operation(OpType.CREATE, create.operations[0].request_no, body, 0, body),),
    )
    update = Change(
        "hostile-2",
        "busifavor",
        M1,
        Action.UPDATE,
        name,
        "stocks/a|b`c<d>.yaml",
        3,
        fields=(
            FieldChange("spec.stock_name", "old", name),
            FieldChange("spec.comment", "a``b", "```"),
        ),
        suggestion="echo ``` <script>",
    )
    blocked = Change("hostile-3", "favor", M1, Action.BLOCKED, name, suggestion=f"fix {name}")
    return replace(sample_plan(), changes=(create, update, blocked))


def test_markdown_escapes_hostile_strings() -> None:
    out = render_markdown(hostile_plan(), title="<b>hi</b> | `t`")
    unescaped = out.replace("\\`", "")  # an escaped backtick opens no code span
    prose = _OWN_TAGS.sub("", _CODE_SPAN.sub("", unescaped))
    assert "<" not in prose.replace("&lt;", ""), prose
    assert "&lt;script&gt;" in out
    assert "\n| a | b |" not in out
    for span in _CODE_SPAN.findall(unescaped):
        assert "\n" not in span[1]
    # A fix is prose: its quoted command a code span no backtick inside can close.
    assert "```" not in out.replace("``` ``", "")
    assert "Fix" not in out or "```sh" not in out
    lines = out.splitlines()
    assert lines[1] == "## &lt;b&gt;hi&lt;/b&gt; \\| \\`t\\`"
    summaries = [line for line in lines if line.startswith("<details><summary>")]
    assert summaries and all("<script>" not in line and "<img" not in line for line in summaries)


def test_markdown_rejects_a_marker_that_could_close_the_comment() -> None:
    with pytest.raises(ValueError):
        render_markdown(sample_plan(), marker="x --> <script>")
    with pytest.raises(ValueError):
        render_markdown(sample_plan(), full_plan_url="javascript:alert(1)")


def test_markdown_shows_errors_first_and_never_folds_them() -> None:
    out = render_markdown(sample_plan())
    errors_at = out.index("### ✗ Errors: apply refuses this plan")
    assert errors_at < out.index("### Per merchant") < out.index("### Stocks")
    section = out[errors_at : out.index("### Per merchant")]
    assert "<details>" not in section
    assert "**✗ cannot be created** `new-year-20-off-200`" in section
    assert (
        "How to fix: git checkout origin/main \\-\\- stocks/busifavor/member\\-day\\-mocha\\-5\\-off.yaml"
        in section.replace("-", "\\-")
    )


def big_plan(n: int) -> Plan:
    changes = [favor_create(f"stock-{i:04d}", merchant=f"19000{i % 7:05d}") for i in range(n)]
    for i in (3, n // 2, n - 1):
        changes[i] = Change(
            f"broken-{i:04d}",
            "busifavor",
            M1,
            Action.IMMUTABLE,
            "discount_amount is fixed at creation",
            f"stocks/busifavor/broken-{i:04d}.yaml",
            9,
            fields=(
                FieldChange(
                    "spec.coupon_use_rule.fixed_normal_coupon.discount_amount", 500, 600, money=True
                ),
            ),
            suggestion=f"`git checkout origin/main -- stocks/busifavor/broken-{i:04d}.yaml`",
        )
    return replace(sample_plan(), changes=tuple(changes))


def test_markdown_with_2000_stocks_stays_under_the_limit_and_keeps_what_matters() -> None:
    plan = big_plan(2000)
    out = render_markdown(plan)
    assert len(out) <= 60000
    assert out.startswith("<!-- reconciler:plan -->\n")
    assert f"**{summary_line(plan)}**" in out
    assert "### Per merchant" in out
    for i in (3, 1000, 1999):
        assert f"**✗ cannot change** `broken-{i:04d}`" in out
    assert re.search(r"\n\d+ more stocks are folded away to fit GitHub's comment limit", out)
    assert out == render_markdown(plan)


def test_markdown_folds_details_from_the_end_non_errors_first() -> None:
    plan = big_plan(60)
    full = render_markdown(plan, max_chars=10**7)
    out = render_markdown(plan, max_chars=len(full) // 2)
    assert len(out) <= len(full) // 2
    opened = re.findall(r"<summary>\S+ [^·]+ · ([^<]+?)</summary>", out)
    folded = re.findall(r"(?m)^- \+ create `[\w-]+` · (.+)$", out)
    assert folded and f"{len(folded)} more stocks are folded away" in out
    assert len(opened) + len(folded) == 60 + 1 - 1  # every stock, open or folded
    assert sum("broken-" in o for o in opened) == 3  # errors stay open
    # The technical details list the request numbers of the open sections only.
    assert out.count("request number") == 2 * (len(opened) - 3)


@pytest.mark.parametrize("max_chars", [3000, 8000, 20000, 60000])
def test_markdown_respects_any_reasonable_limit(max_chars: int) -> None:
    out = render_markdown(big_plan(400), max_chars=max_chars)
    assert len(out) <= max_chars
    assert out.startswith("<!-- reconciler:plan -->\n")
    assert "**✗ cannot change** `broken-0399`" in out


def test_markdown_measures_a_job_summary_in_bytes() -> None:
    plan = big_plan(400)
    out = render_markdown(plan, max_chars=10**7, max_bytes=100_000, lang="zh")
    assert len(out.encode("utf-8")) <= 100_000 < len(out.encode("utf-8")) * 2


def test_markdown_drops_errors_only_when_they_alone_exceed_the_limit() -> None:
    changes = tuple(
        Change(f"late-{i:03d}", "favor", M1, Action.BLOCKED, "begin time has passed " + "x" * 200)
        for i in range(50)
    )
    plan = replace(sample_plan(), changes=changes)
    out = render_markdown(plan, max_chars=4000)
    assert len(out) <= 4000
    assert "**✗ cannot be created** `late-000`" in out
    assert re.search(r"\n\d+ more errors are not shown here", out)
    assert f"**{summary_line(plan)}**" in out


def test_markdown_cuts_at_a_line_when_even_the_head_is_too_long() -> None:
    out = render_markdown(sample_plan(), max_chars=300)
    assert len(out) <= 300
    assert out.startswith("<!-- reconciler:plan -->\n## reconciler plan\n")
    assert out.endswith("the full plan is in the job summary and the plan artifact.\n")
