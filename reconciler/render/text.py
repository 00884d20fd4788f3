"""A Plan for a terminal, plus the wording the Markdown renderer shares.

Renderers format; they never decide. Everything shown here comes from the Plan as it is: counts
come from `Plan.counts()`, totals and times from the planner's `MerchantTotals`, budgets from
`Change.budget_fen`. The only choice made here is which fields of a create body are worth a
reviewer's eye (`create_fields`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from reconciler.kinds import KINDS, kind_of
from reconciler.money import money
from reconciler.plan import ACTING, Action, Change, MerchantTotals, Operation, OpType, Plan

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

# C0/C1 controls and bidirectional overrides: a stock name or reason must not be able to move
# the cursor, recolour the terminal or reorder what a reviewer reads.
_UNSAFE = frozenset(
    [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
_ACTION_COLOR = {
    Action.CREATE: _GREEN,
    Action.UPDATE: _YELLOW,
    Action.RECOVER: _YELLOW,
    Action.DRIFT: _YELLOW,
    Action.ORPHAN: _YELLOW,
}


def clean(value: str) -> str:
    """`value` with control and bidi-override characters shown as `\\xNN` / `\\uNNNN`."""
    if not any(ord(ch) in _UNSAFE for ch in value):
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


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary_line(plan: Plan) -> str:
    """One stable line: `Plan: 1 to create, 2 to update, 0 to recover · 3 in sync · 1 error`.

    A plan with nothing but in-sync stocks reads `No changes. 12 stocks in sync.`
    """
    counts = plan.counts()
    errors = sum(1 for c in plan.changes if c.is_error)
    in_sync = counts[Action.NOOP.value]
    if all(c.action is Action.NOOP for c in plan.changes):
        return f"No changes. {plural(in_sync, 'stock')} in sync."
    head = (
        f"Plan: {counts[Action.CREATE.value]} to create, {counts[Action.UPDATE.value]} to update, "
        f"{counts[Action.RECOVER.value]} to recover"
    )
    groups = [
        (in_sync, f"{in_sync} in sync"),
        (counts[Action.DRIFT.value], f"{counts[Action.DRIFT.value]} drifted"),
        (counts[Action.ORPHAN.value], f"{counts[Action.ORPHAN.value]} orphaned"),
        (errors, plural(errors, "error")),
    ]
    return " · ".join([head, *(text for n, text in groups if n)])


REFRESH_WORDS = {"changing": "true", "none": "false", "all": "all"}
"""The plan's refresh mode as `--refresh` spells it, so a reader sees the option they gave."""


def refresh_text(mode: str) -> str:
    return REFRESH_WORDS.get(mode, mode)


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


def value_text(value: Any, is_money: bool = False) -> str:
    """A field value on one line: fen as `1000 分 (¥10.00)`, absent as `(none)`, else JSON."""
    if value is None:
        return "(none)"
    if is_money and isinstance(value, int) and not isinstance(value, bool):
        return money(value)
    return clean(json.dumps(value, ensure_ascii=False, sort_keys=True))


def is_money_fact(key: str, value: Any) -> bool:
    """Facts carry no money flag; WeChat Pay names its fen amounts `..._amount...`."""
    return "amount" in key.split("_") and isinstance(value, int) and not isinstance(value, bool)


def facts_text(change: Change) -> str:
    """`distributed_coupons=1200, status="RUNNING"`, keys sorted so a saved plan reads the same."""
    return ", ".join(
        f"{clean(k)}={value_text(v, is_money_fact(k, v))}" for k, v in sorted(change.facts.items())
    )


def call_name(change: Change, op: Operation) -> str:
    """`favor_create`, `busifavor_budget`: the kind and the operation, as the API list names
    the call."""
    return f"{change.kind}_{op.type.value}"


def create_fields(change: Change) -> list[tuple[str, Any, bool]]:
    """(path, value, is_money) of the body fields a reviewer must see on the create this
    change sends (the kind's review fields); paths are the stock file's (`spec.stock_name`),
    like `FieldChange.path`."""
    out: list[tuple[str, Any, bool]] = []
    if change.kind not in KINDS:
        return out
    review = kind_of(change.kind).review_fields()
    for op in change.operations:
        if op.type is not OpType.CREATE:
            continue
        for path, is_money in review:
            node: Any = op.body
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                out.append(("spec." + path, node, is_money))
    return out


def kind_label(kind: str) -> str:
    return KINDS[kind].label if kind in KINDS else clean(kind)


def location(change: Change) -> str:
    if change.file is None:
        return ""
    return clean(change.file) + (f":{change.line}" if change.line is not None else "")


def budget_label(change: Change) -> str:
    """Only a create that apply performs commits money; a blocked one commits nothing yet."""
    if change.action in ACTING:
        return "budget committed"
    return "would commit, once it can be created"


def merchant_line(t: MerchantTotals) -> str:
    creates = f"{t.creates} to create"
    if t.recovers:
        creates += f" · {t.recovers} to recover"
    if t.create_budget_fen:
        creates += f" committing {money(t.create_budget_fen)}"
        if t.ceiling_fen:
            creates += f" (ceiling only, never locked: {money(t.ceiling_fen)})"
    locked = (
        f" · activation locks {money(t.activation_locked_fen)} from the balance"
        if t.activation_locked_fen
        else ""
    )
    return (
        f"{clean(t.merchant)}  {creates} · {t.updates} to update{locked}"
        f" · {duration(t.estimated_seconds)}"
    )


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color and code else text


def _stock(change: Change, color: bool) -> list[str]:
    head = f"{SYMBOLS[change.action]} {change.action.value:<10} {clean(change.id)}"
    head += f"  {kind_label(change.kind)}  merchant {clean(change.merchant)}"
    if where := location(change):
        head += f"  {where}"
    if change.stock_id:
        head += f"  stock_id {clean(change.stock_id)}"
    code = _RED if change.is_error else _ACTION_COLOR.get(change.action, "")
    lines = [_paint(head, code, color)]
    if change.reason:
        lines.append(f"    {clean(change.reason)}")
    for f in change.fields:
        note = f"  ({clean(f.note)})" if f.note else ""
        lines.append(
            f"    {clean(f.path)}: {value_text(f.before, f.money)} -> "
            f"{value_text(f.after, f.money)}{note}"
        )
    for path, value, is_money in create_fields(change):
        lines.append(f"    {path}: {value_text(value, is_money)}")
    if change.budget_fen is not None:
        lines.append(f"    {budget_label(change)}: {money(change.budget_fen)}")
    if change.locked_fen:
        lines.append(
            f"    locked from the balance at activation (预充值): {money(change.locked_fen)}"
        )
    if change.ceiling_fen:
        lines.append(f"    ceiling only, never locked: {money(change.ceiling_fen)}")
    if change.facts:
        lines.append(f"    observed: {facts_text(change)}")
    if change.operations and change.action in ACTING:
        sends = ", ".join(
            f"{call_name(change, o)} {clean(o.request_no)}" for o in change.operations
        )
        lines.append(f"    sends: {sends}")
    if change.suggestion:
        lines.append(f"    fix: {clean(change.suggestion)}")
    return lines


def render_text(plan: Plan, *, color: bool = False) -> str:
    """The plan for a terminal; ANSI colour only when `color` (the CLI decides by TTY)."""
    errors = sum(1 for c in plan.changes if c.is_error)
    summary = summary_line(plan)
    if color:
        summary = _BOLD + summary + _RESET
    lines = [summary]
    meta = f"Planned {clean(plan.created_at)} · reconciler {clean(plan.tool_version)}"
    meta += f" · state serial {plan.state_serial} · refresh: {clean(refresh_text(plan.refresh))}"
    if plan.refresh_note:
        meta += f" ({clean(plan.refresh_note)})"
    lines.append(meta)
    if plan.scope is not None:
        lines.append(
            f"Scope: {clean(plan.scope.describe())} (stocks outside it are not in this plan)"
        )
    # A plan with nothing to show has no totals worth reading.
    if plan.totals and any(c.action is not Action.NOOP for c in plan.changes):
        lines += ["", "Per merchant:"]
        lines += [f"  {merchant_line(t)}" for t in plan.totals]
        lines.append(
            f"Estimated apply time: {duration(plan.estimated_apply_seconds)}"
            " (merchants run in parallel)"
        )
    if plan.sub_totals:
        lines += [
            "Per sub-merchant (where the money lands; ceilings, a stock usable at several counts at each):"
        ]
        lines += [
            f"  {clean(t.merchant)} → {clean(t.sub_merchant)}{f' {clean(t.name)}' if t.name else ''}: "
            f"{plural(t.creates, 'create')}, {money(t.create_budget_fen)}"
            for t in plan.sub_totals
        ]
    for change in plan.changes:
        if change.action is not Action.NOOP:
            lines += ["", *_stock(change, color)]
    if errors:
        refusal = f"Apply refuses this plan: {plural(errors, 'error')} to fix first."
        lines += ["", _paint(refusal, _RED, color)]
    return "\n".join(lines) + "\n"
