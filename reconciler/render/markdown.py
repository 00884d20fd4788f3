"""A Plan as GitHub Markdown, for one sticky pull-request comment and the job summary.

The first line is a hidden marker so CI can find the comment and update it in place. The output
stays within `max_chars` (GitHub refuses comments over 65,536 characters): whole per-stock detail
sections go first, then summary-table rows, each replaced by one "N more" line; the marker,
heading, summary line, totals and errors stay. Every user-provided string is escaped, so a stock
name can neither break a table nor inject HTML. Renderers format; they never decide.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.money import money
from reconciler.plan import ACTING, Action, Change, Plan
from reconciler.render.text import (
    SYMBOLS,
    budget_label,
    call_name,
    clean,
    create_fields,
    duration,
    facts_text,
    kind_label,
    location,
    refresh_text,
    summary_line,
    value_text,
)

MORE_STOCKS = "{n} more stocks not shown; see the job summary / JSON plan artifact"
MORE_ERRORS = "{n} more errors not shown; see the job summary / JSON plan artifact"
_DEFAULT_TITLE = "reconciler plan"
_FIELDS_IN_ROW = 3

# Backslash-escaped: everything GitHub Markdown could read as emphasis, code, links, tables,
# headings, strikethrough or math. Entity-encoded: what could open an HTML tag or entity.
_MD = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    **{c: "\\" + c for c in "\\`*_[]()|~#!$"},
}


def md(text: str) -> str:
    """Plain text, safe in a Markdown paragraph or table cell."""
    return "".join(_MD.get(ch, ch) for ch in clean(text))


def code(text: str, *, table: bool = False) -> str:
    """An inline code span that no backtick in `text` can close. In a table cell `|` must be
    escaped even inside code (GitHub drops the backslash there, and shows it elsewhere)."""
    body = clean(text).replace("|", "\\|") if table else clean(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def _cell(value: object, is_money: bool) -> str:
    if value is None:
        return "—"
    if is_money and isinstance(value, int) and not isinstance(value, bool):
        return money(value)
    return code(value_text(value), table=True)


def _short(path: str) -> str:
    return path.removeprefix("spec.")


def _row(c: Change) -> str:
    action = f"{SYMBOLS[c.action]} {c.action.value}"
    if c.is_error:
        action = f"**{action}**"
    if c.fields:
        paths = [code(_short(f.path), table=True) for f in c.fields[:_FIELDS_IN_ROW]]
        more = len(c.fields) - _FIELDS_IN_ROW
        what = ", ".join(paths) + (f" +{more} more" if more > 0 else "")
    else:
        what = md(c.reason)
    budget = "—" if c.budget_fen is None else money(c.budget_fen)
    if c.budget_fen is not None and c.action not in ACTING:
        budget = f"none yet (would commit {budget})"
    cells = [action, code(c.id, table=True), kind_label(c.kind), md(c.merchant), what, budget]
    return "| " + " | ".join(cells) + " |"


def _error_item(c: Change) -> str:
    where = f", {code(location(c))}" if c.file is not None else ""
    item = f"- **{SYMBOLS[c.action]} {c.action.value}** {code(c.id)} "
    item += f"({kind_label(c.kind)}, merchant {md(c.merchant)}{where}): {md(c.reason)}"
    if c.suggestion:
        item += f"<br>Fix: {code(c.suggestion)}"
    return item


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}sh\n{clean(text)}\n{fence}"


def _details(c: Change) -> str:
    summary = f"{SYMBOLS[c.action]} {c.action.value} <code>{html.escape(clean(c.id))}</code>"
    summary += f" · {html.escape(kind_label(c.kind))} · merchant {html.escape(clean(c.merchant))}"
    if c.reason:
        summary += f" — {html.escape(clean(c.reason))}"
    parts = [f"<details><summary>{summary}</summary>"]
    where = [code(location(c))] if c.file is not None else []
    if c.stock_id:
        where.append(f"stock_id {code(c.stock_id)}")
    if where:
        parts.append(" · ".join(where))
    rows = [
        (
            code(f.path, table=True) + (f"<br>_{md(f.note)}_" if f.note else ""),
            f.before,
            f.after,
            f.money,
        )
        for f in c.fields
    ]
    rows += [
        (code(path, table=True), None, value, is_money)
        for path, value, is_money in create_fields(c)
    ]
    if rows:
        table = ["| field | before | after |", "|---|---|---|"]
        table += [f"| {p} | {_cell(b, m)} | {_cell(a, m)} |" for p, b, a, m in rows]
        parts.append("\n".join(table))
    lines = []
    if c.budget_fen is not None:
        label = budget_label(c)
        lines.append(f"{label[0].upper()}{label[1:]}: {money(c.budget_fen)}")
    if c.locked_fen:
        lines.append(f"Locked from the balance at activation (预充值): {money(c.locked_fen)}")
    if c.ceiling_fen:
        lines.append(f"Ceiling only, never locked (免充值/商家券): {money(c.ceiling_fen)}")
    if c.facts:
        lines.append(f"Observed: {code(facts_text(c))}")
    if c.operations and c.action in ACTING:
        lines.append(
            "Sends: "
            + ", ".join(f"{code(call_name(c, o))} {code(o.request_no)}" for o in c.operations)
        )
    if lines:
        parts.append("<br>\n".join(lines))
    if c.suggestion:
        parts.append("Fix:\n\n" + _fence(c.suggestion))
    parts.append("</details>")
    return "\n\n".join(parts)


def _drop_order(changes: Sequence[Change]) -> list[int]:
    """Which entries go first when space runs out: the last non-errors, then the last errors."""
    idx = range(len(changes) - 1, -1, -1)
    return [i for i in idx if not changes[i].is_error] + [i for i in idx if changes[i].is_error]


def _fewest_drops(build: Callable[[int], str], n: int, max_chars: int) -> tuple[int, str]:
    """The smallest number of drops k (0..n) whose output fits, found by bisection.

    Output length falls as k grows once the "N more" line is in (k >= 1), so search there."""
    text = build(0)
    if len(text) <= max_chars or n == 0:
        return 0, text
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi) // 2
        if len(build(mid)) <= max_chars:
            hi = mid
        else:
            lo = mid + 1
    return lo, build(lo)


@dataclass(frozen=True)
class _Parts:
    head: str
    errors: list[str]
    changes: list[Change]
    rows: list[str]
    totals: str
    details: list[str]

    def build(self, drop_details: int, drop_rows: int = 0, drop_errors: int = 0) -> str:
        order = _drop_order(self.changes)
        hidden_details = set(order[:drop_details])
        hidden_rows = set(order[:drop_rows])
        blocks = [self.head]
        if self.errors:
            kept = self.errors[: len(self.errors) - drop_errors]
            more = [MORE_ERRORS.format(n=drop_errors)] if drop_errors else []
            blocks.append("\n".join(["### ✗ Errors: apply refuses this plan", "", *kept, *more]))
        if self.rows:
            table = "| action | stock | kind | merchant | what changes | budget |\n"
            table += "|---|---|---|---|---|---|"
            kept = [r for i, r in enumerate(self.rows) if i not in hidden_rows]
            blocks.append("\n".join(["### Changes", "", table, *kept]))
            if drop_rows:
                blocks.append(MORE_STOCKS.format(n=drop_rows))
        if self.totals:
            blocks.append(self.totals)
        if self.details:
            blocks.append("### Details")
            blocks += [d for i, d in enumerate(self.details) if i not in hidden_details]
            if drop_details:
                blocks.append(MORE_STOCKS.format(n=drop_details))
        return "\n\n".join(blocks) + "\n"


def _head(plan: Plan, marker: str, title: str | None, note: str | None) -> str:
    lines = [f"<!-- {marker} -->", f"## {md(title) if title else _DEFAULT_TITLE}", ""]
    lines.append(f"**{summary_line(plan)}**")
    if note:
        lines += ["", f"> {note}"]
    meta = f"Planned {md(plan.created_at)} · reconciler {md(plan.tool_version)}"
    meta += f" · state serial {plan.state_serial} · refresh: {md(refresh_text(plan.refresh))}"
    if plan.refresh_note:
        meta += f" ({md(plan.refresh_note)})"
    lines += ["", meta + f" · checksum {code(plan.checksum())}"]
    if plan.scope is not None:
        lines += [
            "",
            f"**Scoped plan:** {md(plan.scope.describe())}; stocks outside it are not in this plan.",
        ]
    return "\n".join(lines)


def _totals(plan: Plan) -> str:
    if not plan.totals:
        return ""
    lines = ["### Per merchant", ""]
    lines.append(
        "| merchant | creates | recovers | budget committed | locked at activation"
        " | ceiling only | updates | estimated time |"
    )
    lines.append("|---|---:|---:|---|---|---|---:|---|")
    for t in plan.totals:
        budget = money(t.create_budget_fen) if t.create_budget_fen else "—"
        locked = money(t.activation_locked_fen) if t.activation_locked_fen else "—"
        ceiling = money(t.ceiling_fen) if t.ceiling_fen else "—"
        time = duration(t.estimated_seconds)
        lines.append(
            f"| {md(t.merchant)} | {t.creates} | {t.recovers} | {budget} | {locked} | {ceiling}"
            f" | {t.updates} | {time} |"
        )
    lines.append("")
    lines.append(
        f"Estimated apply time: {duration(plan.estimated_apply_seconds)}"
        " (merchants run in parallel)"
    )
    if plan.sub_totals:
        lines += ["", "Per sub-merchant (where the money lands; ceilings that may overlap):", ""]
        lines += [
            f"- {md(t.merchant)} → {md(t.sub_merchant)}{f' {md(t.name)}' if t.name else ''}: "
            f"{t.creates} create(s), {money(t.create_budget_fen)}"
            for t in plan.sub_totals
        ]
    return "\n".join(lines)


def render_markdown(
    plan: Plan,
    *,
    marker: str = "reconciler:plan",
    max_chars: int = 60000,
    title: str | None = None,
    note: str | None = None,
) -> str:
    """The plan for a pull-request comment or job summary, at most `max_chars` characters.

    `note` is the caller's own Markdown (shown as a quote, not escaped); `title` is plain text.
    """
    if "--" in marker or "\n" in marker:
        raise ValueError(f"marker {marker!r} cannot sit inside an HTML comment")
    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    parts = _Parts(
        head=_head(plan, marker, title, note),
        errors=[_error_item(c) for c in shown if c.is_error],
        changes=shown,
        rows=[_row(c) for c in shown],
        totals=_totals(plan) if shown else "",
        details=[_details(c) for c in shown],
    )
    n = len(shown)
    dropped, text = _fewest_drops(parts.build, n, max_chars)
    if dropped < n or len(text) <= max_chars:
        return text
    dropped, text = _fewest_drops(lambda k: parts.build(n, k), n, max_chars)
    if dropped < n or len(text) <= max_chars:
        return text
    # Only when the errors alone exceed the limit: a comment GitHub refuses shows nothing at all.
    _, text = _fewest_drops(lambda k: parts.build(n, n, k), len(parts.errors), max_chars)
    return text if len(text) <= max_chars else _cut(text, max_chars)


def _cut(text: str, max_chars: int) -> str:
    tail = "\n\nOutput cut to fit the comment size limit; see the JSON plan artifact.\n"
    keep = text[: max(0, max_chars - len(tail))]
    return keep[: keep.rfind("\n") + 1 if "\n" in keep else 0].rstrip("\n") + tail
