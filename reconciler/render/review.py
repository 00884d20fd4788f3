"""What a reviewer reads, in either language, as plain lines that the text and Markdown
renderers lay out. Pure; renderers format, they never decide.

Everything here reads the Plan as it is: the headline from `Plan.headline()`, a stock's summary
line and labels from its kind, each field's "can it change later" from the kind's traits.
A new operation type (an upload, a callback) needs only its words in `CALL_WORDS`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.i18n import MESSAGES, Lang, count, t
from reconciler.kinds import KINDS
from reconciler.mapping import MONEY_FIELDS
from reconciler.money import money, signed_yuan, yuan_short
from reconciler.plan import ACTING, Action, BudgetDelta, Change, FieldChange, Plan
from reconciler.spec.labels import GROUP_NAMES, Group, Label, label_for

SYMBOLS: dict[Action, str] = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.RECOVER: "↻",
    Action.NOOP: "=",
    Action.DRIFT: "!",
    Action.ORPHAN: "?",
    Action.BLOCKED: "✗",
    Action.IMMUTABLE: "✗",
    Action.RENAME: "✗",
    Action.UNRESOLVED: "✗",
    Action.UNTRACKED: "✗",
    Action.MISMATCH: "✗",
}

CALL_WORDS: dict[str, tuple[str, str]] = {
    "create": ("create the stock", "创建批次"),
    "modify": ("change its settings", "修改批次信息"),
    "budget": ("change its budget", "修改批次预算"),
    "modify_goods_id": ("change its goods", "修改可核销商品"),
    "start": ("activate (start)", "激活"),
    "pause": ("pause", "暂停"),
    "restart": ("restart", "重启"),
    "stop": ("stop for good", "终止"),
    "upload_image": ("upload an image", "上传图片"),
    "upload_codes": ("upload codes", "上传券码"),
    "callback": ("set the notify URL", "设置回调通知地址"),
}
"""(English, Chinese) of each operation type; an unknown type is shown by its own name."""

STATUS_WORDS: dict[str, tuple[str, str]] = {
    "unactivated": ("not activated", "未激活"),
    "audit": ("in review", "审核中"),
    "running": ("running", "运行中"),
    "stoped": ("stopped", "已终止"),
    "stopped": ("stopped", "已终止"),
    "paused": ("paused", "已暂停"),
    "created": ("created, not activated", "已创建、不激活"),
    "unaudit": ("in review", "审核中"),
    "expired": ("expired", "已过期"),
}
"""WeChat Pay's status values (either case) and the file's `status`, in words."""

FACT_WORDS: dict[str, tuple[str, str, str]] = {
    "status": ("status", "状态", ""),
    "stock_state": ("status", "状态", ""),
    "distributed_coupons": ("issued", "已发放", "count"),
    "create_time": ("created", "创建时间", ""),
    "start_time": ("activated", "激活时间", ""),
    "stop_time": ("stopped", "终止时间", ""),
    "send_count_information.total_send_num": ("issued", "已发放", "count"),
    "send_count_information.total_send_amount": ("issued value", "已发放金额", "money"),
    "send_count_information.today_send_num": ("issued today", "今日发放", "count"),
    "send_count_information.today_send_amount": ("issued value today", "今日发放金额", "money"),
    "coupon_code_count.total_count": ("codes uploaded", "券code总数", "count"),
    "coupon_code_count.available_count": ("codes left", "可用券code数", "count"),
    "used_amount": ("redeemed value", "已核销金额", "money"),
}
"""Observed facts: (English, Chinese, unit: count, money or plain)."""


# C0/C1 controls and bidirectional overrides: a stock name or reason must not be able to move
# the cursor, recolour the terminal or reorder what a reviewer reads.
_UNSAFE = frozenset(
    [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


_UNSAFE_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_UNSAFE)) + "]")


def clean(value: str) -> str:
    """`value` with control and bidi-override characters shown as `\\xNN` / `\\uNNNN`."""
    if not _UNSAFE_RE.search(value):
        return value
    out = []
    for ch in value:
        code = ord(ch)
        if code not in _UNSAFE:
            out.append(ch)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def duration(seconds: float) -> str:
    """`100.0` -> `~1 min 40 s`. Rounded up: an estimate should not promise too little."""
    if seconds <= 0:
        return "0 s"
    if seconds < 1:
        return "<1 s"
    total = math.ceil(seconds)
    if total >= 3600:
        # Seconds stop mattering; round up to whole minutes.
        hours, minutes = divmod(math.ceil(total / 60), 60)
        return f"~{hours} h" + (f" {minutes} min" if minutes else "")
    minutes, secs = divmod(total, 60)
    parts = [f"{minutes} min"] if minutes else []
    if secs:
        parts.append(f"{secs} s")
    return "~" + " ".join(parts)


# --- values ----------------------------------------------------------------------------------


def colon(lang: Lang) -> str:
    """`: ` in English, `：` in Chinese."""
    return "：" if lang == "zh" else ": "


def scalar_text(value: Any, lang: Lang, is_money: bool = False) -> str:
    """A value as a person reads it: fen with yuan, yes/no, digit groups, lists joined."""
    if value is None:
        return t(lang, "none")
    if isinstance(value, bool):
        return t(lang, "yes" if value else "no")
    if is_money and isinstance(value, int):
        return money(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ("、" if lang == "zh" else ", ").join(scalar_text(v, lang) for v in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def status_text(value: Any, lang: Lang) -> str:
    words = STATUS_WORDS.get(str(value).lower()) if isinstance(value, str) else None
    if words is None:
        return scalar_text(value, lang)
    return words[1] if lang == "zh" else words[0]


def is_money_path(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in MONEY_FIELDS


# --- the headline ----------------------------------------------------------------------------


def counts_line(plan: Plan, lang: Lang) -> str:
    """The stable first line: `Plan: 1 to create, 2 to update, 0 to resume · 3 in sync · 1 error`."""
    counts = plan.counts()
    errors = sum(1 for c in plan.changes if c.is_error)
    in_sync = counts[Action.NOOP.value]
    if all(c.action is Action.NOOP for c in plan.changes):
        return t(lang, "no_changes", n=in_sync)
    n = {a: counts[a.value] for a in Action}
    if lang == "zh":
        head = f"计划：新建 {n[Action.CREATE]}，变更 {n[Action.UPDATE]}，继续 {n[Action.RECOVER]}"
        groups = [
            (in_sync, f"已同步 {in_sync}"),
            (n[Action.DRIFT], f"外部改动 {n[Action.DRIFT]}"),
            (n[Action.ORPHAN], f"无文件 {n[Action.ORPHAN]}"),
            (errors, f"错误 {errors}"),
        ]
    else:
        head = (
            f"Plan: {n[Action.CREATE]} to create, {n[Action.UPDATE]} to update, "
            f"{n[Action.RECOVER]} to resume"
        )
        groups = [
            (in_sync, f"{in_sync} in sync"),
            (n[Action.DRIFT], f"{n[Action.DRIFT]} drifted"),
            (n[Action.ORPHAN], f"{n[Action.ORPHAN]} orphaned"),
            (errors, count(lang, errors, "error")),
        ]
    return " · ".join([head, *(text for k, text in groups if k)])


def headline(plan: Plan, lang: Lang) -> list[str]:
    """The reviewer's headline, after the counts line: stocks, then the money."""
    h = plan.headline()
    stocks = t(lang, "headline.stocks", create=h.create, change=h.change, unchanged=h.unchanged)
    extra = [
        t(lang, key, n=n)
        for key, n in (
            ("headline.drift", h.drift),
            ("headline.orphan", h.orphan),
            ("headline.errors", h.errors),
        )
        if n
    ]
    lines = [" · ".join([stocks, *extra])]
    lines += [
        t(lang, "headline.locked", amount=yuan_short(fen), merchant=m) for m, fen in h.locked_fen
    ]
    lines += [
        t(lang, "headline.ceiling", amount=yuan_short(fen), merchant=m) for m, fen in h.ceiling_fen
    ]
    shown = h.deltas if len(h.deltas) <= DELTAS_SHOWN else h.deltas[: DELTAS_SHOWN - 1]
    lines += [
        t(
            lang,
            "headline.delta",
            id=stock,
            delta=signed_yuan(d.fen),
            before=f"{d.before:,}",
            after=f"{d.after:,}",
            unit=yuan_short(d.unit_fen),
        )
        for stock, d in shown
    ]
    rest = h.deltas[len(shown) :]
    if rest:
        total = sum(d.fen for _, d in rest)
        lines.append(t(lang, "headline.more_deltas", n=len(rest), delta=signed_yuan(total)))
    if not (h.locked_fen or h.ceiling_fen or h.deltas):
        lines.append(t(lang, "headline.no_money"))
    return lines


DELTAS_SHOWN = 10
"""Budget changes the headline lists one by one; more are summed on one line (each stock's
section still shows its own)."""


def merchant_lines(plan: Plan, lang: Lang) -> list[str]:
    """One line per merchant: counts, the money, the time its requests need."""
    out = []
    for m in plan.totals:

        def amount(fen: int) -> str:
            return yuan_short(fen) if fen else "—"

        money_text = t(
            lang,
            "totals_money",
            budget=amount(m.create_budget_fen),
            locked=amount(m.activation_locked_fen),
            ceiling=amount(m.ceiling_fen),
            delta=signed_yuan(m.budget_delta_fen) if m.budget_delta_fen else "—",
        )
        out.append(
            t(
                lang,
                "merchant_totals",
                merchant=m.merchant,
                creates=m.creates,
                updates=m.updates,
                recovers=m.recovers,
                money=money_text,
                time=duration(m.estimated_seconds),
            )
        )
    return out


def scope_line(described: str, lang: Lang) -> str:
    """A scoped plan says so: stocks outside the scope are not in it."""
    if lang == "zh":
        return f"范围：{described}（范围外的批次不在本计划中）"
    return f"Scoped plan: {described}; stocks outside it are not in this plan."


def sub_merchant_title(lang: Lang) -> str:
    if lang == "zh":
        return "按子商户（资金落在何处；均为上限，同一批次可用于多个子商户时分别计入）："
    return "Per sub-merchant (where the money lands; ceilings that may overlap):"


def sub_merchant_lines(plan: Plan, lang: Lang) -> list[str]:
    """A service provider's creates per sub-merchant where the money lands."""
    out = []
    for s in plan.sub_totals:
        name = f" {s.name}" if s.name else ""
        plural = "" if s.creates == 1 else "s"
        creates = f"新建 {s.creates} 个" if lang == "zh" else f"{s.creates} create{plural}"
        sep = "：" if lang == "zh" else ": "
        out.append(
            f"{s.merchant} → {s.sub_merchant}{name}{sep}{creates}, {money(s.create_budget_fen)}"
        )
    return out


# --- one stock -------------------------------------------------------------------------------


def action_word(change: Change, lang: Lang) -> str:
    if change.action is Action.RECOVER and not any(
        o.type.value == "create" for o in change.operations
    ):
        return t(lang, "action.recover_update")
    return t(lang, f"action.{change.action.value}")


def action_head(change: Change, lang: Lang) -> str:
    """`+ create     spring-sale-10-off-100`: in English the action as the plan spells it
    (padded, stable for scripts), with its plain words when they say more; in Chinese the
    words alone."""
    words = action_word(change, lang)
    if lang == "zh":
        return f"{SYMBOLS[change.action]} {words}  {change.id}"
    name = "resume" if change.action is Action.RECOVER else change.action.value
    head = f"{SYMBOLS[change.action]} {name:<10} {change.id}"
    return head if words == change.action.value else f"{head}  ({words})"


def shows_reason(change: Change) -> bool:
    """Whether the planner's reason tells the reviewer more than the action, the fields and
    the money do: for errors and stocks without a file. (The reasons of acting changes name
    request numbers, which belong to the technical details.)"""
    return change.is_error or change.action is Action.ORPHAN


def reason_lines(change: Change, lang: Lang) -> list[str]:
    """Why an error or orphan is one: in Chinese, what it means in Chinese and the planner's
    specific reason (English) as details; in English, the reason. For an acting change, the
    work beside its fields: code batches to upload, a notify URL to set."""
    if not change.is_error and change.action in ACTING:
        return work_lines(change, lang)
    if not (change.reason and shows_reason(change)):
        return []
    key = f"explain.{change.action.value}"
    if lang == "zh" and key in MESSAGES:
        return [t(lang, key), t(lang, "details_en", reason=change.reason)]
    return [change.reason]


def work_lines(change: Change, lang: Lang) -> list[str]:
    """A notify URL set, and the code pool batches uploaded, in plain words."""
    out = []
    if change.setting == "callback":
        for f in change.fields:
            kind = f.path.rsplit(".", 1)[-1]
            before = f.before or ("（无）" if lang == "zh" else "(none)")
            if lang == "zh":
                out.append(f"回调通知地址（{kind_label(kind)}）：{before} → {f.after}")
            else:
                out.append(f"callback {kind}: {before} → {f.after}")
    batches = [o for o in change.operations if o.type.value == "upload_codes"]
    if batches:
        codes = sum(len(o.body.get("coupon_code_list") or ()) for o in batches)
        if lang == "zh":
            out.append(f"上传券码 {codes:,} 个，分 {len(batches)} 批（每批至多 200 个）")
        else:
            out.append(f"upload {codes:,} code(s) in {len(batches)} batch(es) of at most 200 each")
    return out


def kind_label(kind: str) -> str:
    return KINDS[kind].label if kind in KINDS else kind


def stock_body(change: Change) -> dict[str, Any] | None:
    """The stock's whole create body as it will stand (the create's, else the last
    operation's `after`); None when the change sends nothing."""
    for op in change.operations:
        if op.type.value == "create":
            return op.body
    return change.operations[-1].after if change.operations else None


def summary(change: Change, lang: Lang) -> str:
    """The kind's one-line summary of the stock, or its id when there is no body to read."""
    body = stock_body(change)
    if body and change.kind in KINDS and body.get("stock_name") is not None:
        return KINDS[change.kind].summary_line(body, lang)
    return f"{change.id} · {kind_label(change.kind)}"


def _label(change: Change, path: str) -> Label | None:
    if change.kind not in KINDS:
        return None
    return label_for(KINDS[change.kind].labels, path)


def field_name(change: Change, path: str, lang: Lang) -> str:
    """A stock file path's label (`spec.stock_name` -> 批次名称); the path itself when the
    kind has none (a field is never left out for want of a label)."""
    spec_path = path.removeprefix("spec.")
    if path == "status":
        return "状态" if lang == "zh" else "Status"
    label = _label(change, spec_path) if path.startswith("spec.") else None
    return label.text(lang) if label else path


@dataclass(frozen=True)
class FieldLine:
    name: str
    value: str
    fixed: bool
    """WeChat Pay never lets it change after the create."""
    path: str = ""
    """Where the stock file holds it (`spec.stock_name`)."""


def _leaves(body: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every leaf; a list of objects gives each item's leaves, numbered."""
    for key, value in body.items():
        path = prefix + str(key)
        if isinstance(value, Mapping):
            yield from _leaves(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                yield from _leaves(item, f"{path}[{i}].")
        else:
            yield path, value


def _item_name(change: Change, path: str, lang: Lang) -> str:
    """The label of a leaf, with its list item's label and number when it sits in a list."""
    import re

    label = _label(change, path)
    name = label.text(lang) if label else path
    m = re.search(r"^(.*)\[(\d+)\]\.[^.\[]+$", path)
    if m:
        parent = _label(change, m.group(1))
        name = f"{parent.text(lang) if parent else m.group(1)} #{int(m.group(2)) + 1} {name}"
    return name


def create_groups(change: Change, lang: Lang) -> list[tuple[str, list[FieldLine]]]:
    """Every field of the create this change sends, grouped as the docs group them."""
    body = next((o.body for o in change.operations if o.type.value == "create"), None)
    if body is None or change.kind not in KINDS:
        return []
    kind = KINDS[change.kind]
    grouped: dict[Group | None, list[FieldLine]] = {}
    for path, value in _leaves(body):
        if path == "out_request_no":
            continue
        label = _label(change, path)
        grouped.setdefault(label.group if label else None, []).append(
            FieldLine(
                _item_name(change, path, lang),
                scalar_text(value, lang, is_money_path(path)),
                not kind.can_change(path),
                f"spec.{path}",
            )
        )
    out = []
    for group in [*Group, None]:
        if group in grouped:
            title = GROUP_NAMES[group][0 if lang == "zh" else 1] if group else t(lang, "other")
            out.append((title, grouped[group]))
    return out


def changed_field(change: Change, f: FieldChange, lang: Lang) -> tuple[str, str, str]:
    """(name, before → after, note) of a changed field, the budget change as money."""
    if f.path == "status":
        before, after = status_text(f.before, lang), status_text(f.after, lang)
    else:
        before, after = scalar_text(f.before, lang, f.money), scalar_text(f.after, lang, f.money)
    notes = [f.note] if f.note and f.note != "irreversible" else []
    if f.note == "irreversible":
        notes.append(t(lang, "irreversible"))
    notes += [delta_one(d, lang) for d in change.budget_deltas if d.path == f.path]
    return field_name(change, f.path, lang), f"{before} → {after}", "; ".join(notes)


def delta_one(d: BudgetDelta, lang: Lang) -> str:
    """`budget +¥80,000 (50,000 → 60,000 × ¥8)`."""
    return t(
        lang,
        "delta_one",
        delta=signed_yuan(d.fen),
        before=f"{d.before:,}",
        after=f"{d.after:,}",
        unit=yuan_short(d.unit_fen),
    )


def money_lines(change: Change, lang: Lang) -> list[str]:
    """The money one stock commits or locks."""
    out = []
    if change.budget_fen is not None:
        key = "budget_committed" if change.action in ACTING else "budget_would"
        out.append(t(lang, key, amount=money(change.budget_fen)))
    if change.locked_fen:
        out.append(t(lang, "locked_one", amount=money(change.locked_fen)))
    if change.ceiling_fen:
        out.append(t(lang, "ceiling_one", amount=money(change.ceiling_fen)))
    return out


def _flat_facts(facts: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key in sorted(facts):
        value = facts[key]
        if isinstance(value, Mapping):
            for sub in sorted(value):
                yield f"{key}.{sub}", value[sub]
        else:
            yield key, value


def fact_lines(change: Change, lang: Lang) -> list[str]:
    """Observed facts as readable lines: `已发放 0 张`, `状态 运行中`."""
    out = []
    for key, value in _flat_facts(change.facts):
        en, zh, unit = FACT_WORDS.get(key, (key, key, ""))
        name = zh if lang == "zh" else en
        if key in ("status", "stock_state"):
            shown = status_text(value, lang)
        elif unit == "money" or (isinstance(value, int) and "amount" in key.split("_")):
            shown = money(value) if isinstance(value, int) else scalar_text(value, lang)
        elif unit == "count" and isinstance(value, int):
            shown = f"{value:,} 张" if lang == "zh" else f"{value:,}"
        else:
            shown = scalar_text(value, lang)
        out.append(f"{name} {shown}")
    return out


def call_text(change: Change, type_value: str, lang: Lang) -> str:
    en, zh = CALL_WORDS.get(type_value, (type_value, type_value))
    return f"{zh if lang == 'zh' else en} · {change.kind}_{type_value}"


def technical_lines(change: Change, lang: Lang) -> list[tuple[str, str]]:
    """The machinery: (the call, its request number) of each request, for whoever needs to
    trace them."""
    if change.action not in ACTING:
        return []
    return [(call_text(change, o.type.value, lang), o.request_no) for o in change.operations]
