"""A Plan for a terminal, in Chinese or English.

Renderers format; they never decide. The words come from `reconciler.render.review` (shared
with the Markdown renderer): the counts line first (stable, for scripts), then the reviewer's
headline (stocks and money), the per-merchant totals, one section per stock (its summary line,
what changes, every field of a create grouped as the docs group them, what WeChat Pay shows,
how to fix an error), and last the technical details (request numbers, state serial, refresh).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.i18n import Lang, count, t
from reconciler.money import money
from reconciler.plan import ACTING, Action, Change, MerchantTotals, Plan
from reconciler.render.images import upload_lines
from reconciler.render.review import (
    SYMBOLS,
    action_head,
    changed_field,
    clean,
    colon,
    counts_line,
    create_groups,
    duration,
    fact_lines,
    headline,
    kind_label,
    merchant_lines,
    money_lines,
    reason_lines,
    scope_line,
    sub_merchant_lines,
    sub_merchant_title,
    summary,
    technical_lines,
)

__all__ = [
    "SYMBOLS",
    "clean",
    "duration",
    "kind_label",
    "merchant_line",
    "render_text",
    "summary_line",
    "value_text",
]

FIXED = "🔒"
"""Marks a field WeChat Pay never lets change after the create."""

REFRESH_WORDS = {"changing": "true", "none": "false", "all": "all"}
"""The plan's refresh mode as `--refresh` spells it, so a reader sees the option they gave."""

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
_ACTION_COLOR = {
    Action.CREATE: _GREEN,
    Action.UPDATE: _YELLOW,
    Action.RECOVER: _YELLOW,
    Action.DRIFT: _YELLOW,
    Action.ORPHAN: _YELLOW,
}


def summary_line(plan: Plan, lang: Lang = "en") -> str:
    """One stable line: `Plan: 1 to create, 2 to update, 0 to resume · 3 in sync · 1 error`.

    A plan with nothing but in-sync stocks reads `No changes. 12 stocks in sync.`
    """
    return counts_line(plan, lang)


def merchant_line(t_: MerchantTotals, lang: Lang = "en") -> str:
    """One merchant's counts, money and time (the apply log's summary prints these)."""
    plan = Plan("", "", "", 0, "", "", (), (t_,))
    return merchant_lines(plan, lang)[0]


def value_text(value: Any, is_money: bool = False) -> str:
    """A field value on one line, for logs: fen as `1000 分 (¥10.00)`, absent as `(none)`,
    else JSON."""
    if value is None:
        return "(none)"
    if is_money and isinstance(value, int) and not isinstance(value, bool):
        return money(value)
    return clean(json.dumps(value, ensure_ascii=False, sort_keys=True))


def refresh_text(mode: str) -> str:
    return REFRESH_WORDS.get(mode, mode)


def meta_line(plan: Plan, lang: Lang) -> str:
    line = t(
        lang,
        "plan_meta",
        at=plan.created_at,
        version=plan.tool_version,
        serial=plan.state_serial,
        refresh=refresh_text(plan.refresh),
    )
    if plan.refresh_note:
        line += f" ({plan.refresh_note})"
    return line


def location(change: Change) -> str:
    if change.file is None:
        return ""
    return change.file + (f":{change.line}" if change.line is not None else "")


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color and code else text


def _stock(change: Change, lang: Lang, color: bool) -> list[str]:
    head = action_head(change, lang)
    sep = colon(lang)
    code = _RED if change.is_error else _ACTION_COLOR.get(change.action, "")
    lines = [_paint(clean(head), code, color), f"    {summary(change, lang)}"]
    where = [t(lang, "merchant", merchant=change.merchant)]
    if change.file is not None:
        where.append(t(lang, "file", file=location(change)))
    if change.stock_id:
        where.append(t(lang, "stock_id", stock_id=change.stock_id))
    lines.append("    " + " · ".join(where))
    lines += [f"    {line}" for line in reason_lines(change, lang)]
    shown_fields = () if change.setting and change.action in ACTING else change.fields
    for name, values, note in (changed_field(change, f, lang) for f in shown_fields):
        lines.append(f"    {name}{sep}{values}" + (f"  ({note})" if note else ""))
    lines += [f"    {m}" for m in money_lines(change, lang)]
    lines += [f"    {u}" for u in upload_lines(change, lang)]
    groups = create_groups(change, lang)
    for title, fields in groups:
        lines.append(f"    [{title}]")
        lines += [
            f"      {f.name} ({f.path}){sep}{f.value}" + (f" {FIXED}" if f.fixed else "")
            for f in fields
        ]
    if groups:
        lines.append(f"    {FIXED} {t(lang, 'never_changes')}")
    facts = fact_lines(change, lang)
    if facts:
        lines.append(f"    {t(lang, 'observed')}{sep}" + " · ".join(facts))
    if change.suggestion:
        lines.append(f"    {t(lang, 'fix')}{sep}{change.suggestion}")
    return [lines[0]] + [clean(line) for line in lines[1:]]


def render_text(plan: Plan, *, color: bool = False, lang: Lang = "en") -> str:
    """The plan for a terminal; ANSI colour only when `color` (the CLI decides by TTY)."""
    errors = sum(1 for c in plan.changes if c.is_error)
    first = clean(counts_line(plan, lang))
    lines = [_BOLD + first + _RESET if color else first]
    if plan.scope is not None:
        lines.append(clean(scope_line(plan.scope.describe(), lang)))
    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    if shown:
        lines += [clean(line) for line in headline(plan, lang)]
    if plan.totals and shown:
        lines += ["", t(lang, "per_merchant") + colon(lang).rstrip()]
        lines += [f"  {clean(line)}" for line in merchant_lines(plan, lang)]
        lines.append(t(lang, "time", time=duration(plan.estimated_apply_seconds)))
    if plan.sub_totals and shown:
        lines += [sub_merchant_title(lang)]
        lines += [f"  {clean(line)}" for line in sub_merchant_lines(plan, lang)]
    for change in shown:
        lines += ["", *_stock(change, lang, color)]
    if errors:
        refusal = t(lang, "refuses", n=count(lang, errors, "error", "处"))
        lines += ["", _paint(refusal, _RED, color)]
    lines += ["", t(lang, "technical") + colon(lang).rstrip(), "  " + clean(meta_line(plan, lang))]
    for change in shown:
        lines += [
            f"  {clean(change.id)}{colon(lang)}"
            + clean(t(lang, "request", call=call, number=number))
            for call, number in technical_lines(change, lang)
        ]
    return "\n".join(lines) + "\n"
