"""A Plan as GitHub Markdown, in Chinese or English: the sticky pull-request comment, and the
full plan for the job summary.

The layout fits GitHub's 830 px comment column: no tables, vertical field lists, one
`<details>` per stock with the stock's summary line (its name first) as the row to click, error
fixes in prose, observed facts as readable lines, and the machinery (request numbers, state
serial, refresh mode, checksum) folded away under "technical details".

Size: a comment stays within `max_chars` (GitHub refuses comments over 65,536 characters).
Stock sections fold first, from the end and non-errors first, each into one line; then those
lines go, replaced by one "N more" line; errors go last. `full_plan_url` links the place that
holds all of it (the job summary, up to 1 MiB, and the artifact). Every user-provided string is
escaped, so a stock name can neither inject HTML nor break the layout. The first line is a
hidden marker so CI can find the comment and update it in place.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from reconciler.i18n import Lang, t
from reconciler.plan import ACTING, Action, Change, Plan
from reconciler.render.images import upload_lines
from reconciler.render.review import (
    SYMBOLS,
    action_word,
    changed_field,
    clean,
    colon,
    counts_line,
    create_groups,
    delta_one,
    duration,
    fact_lines,
    headline,
    kind_label,
    merchant_lines,
    money_lines,
    reason_lines,
    scope_line,
    stock_body,
    sub_merchant_lines,
    sub_merchant_title,
    summary,
    technical_lines,
)
from reconciler.render.text import location, meta_line

COMMENT_LIMIT = 65_536
"""GitHub's limit on a comment, in characters."""
SUMMARY_LIMIT = 1024 * 1024
"""GitHub's limit on a step's job summary, in bytes."""
DEFAULT_COMMENT_CHARS = 60_000
"""What a comment may use: GitHub's limit with room for the action that posts it."""
FIXED = "🔒"
PLAIN_URL = re.compile(r"^https?://[^\s()<>]+$")
"""A link target nothing in it can end early: http(s), no spaces, parentheses or brackets."""
_SLOT = "\ue000"
"""Where a link goes into a sentence that is escaped first (a private-use character)."""

# Backslash-escaped: everything GitHub Markdown could read as emphasis, code, links, tables,
# headings, strikethrough or math. Entity-encoded: what could open an HTML tag or entity.
_MD = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    **{c: "\\" + c for c in "\\`*_[]()|~#!$"},
}


_MD_TABLE = str.maketrans(_MD)


def md(text: str) -> str:
    """Plain text, safe in a Markdown paragraph or list item."""
    return clean(text).translate(_MD_TABLE)


def code(text: str) -> str:
    """An inline code span that no backtick in `text` can close."""
    body = clean(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def prose(text: str) -> str:
    """A sentence that may quote commands in backticks (the planner's fixes): the quoted parts
    as code spans, the rest escaped."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: all of it is plain text
        return md(text)
    return "".join(code(p) if i % 2 else md(p) for i, p in enumerate(parts) if p)


def _h(text: str) -> str:
    """Text inside our own HTML (`<summary>`): entity-escaped, controls shown."""
    return html.escape(clean(text), quote=False)


def _where(c: Change, lang: Lang, with_id: bool = True) -> str:
    parts = [code(c.id)] if with_id else []
    parts.append(md(t(lang, "merchant", merchant=c.merchant)))
    if c.file is not None:
        parts.append(md(t(lang, "file", file="")).rstrip() + " " + code(location(c)))
    if c.stock_id:
        parts.append(md(t(lang, "stock_id", stock_id=c.stock_id)))
    return " · ".join(parts)


def _error_item(c: Change, lang: Lang) -> str:
    item = f"- **{SYMBOLS[c.action]} {md(action_word(c, lang))}** {code(c.id)}"
    if stock_body(c) is not None:
        item += f" · {md(summary(c, lang))}"
    item += f"<br>{_where(c, lang, with_id=False)}"
    item += "".join(f"<br>{md(line)}" for line in reason_lines(c, lang))
    if c.suggestion:
        item += f"<br>{md(t(lang, 'fix'))}{colon(lang)}{prose(c.suggestion)}"
    return item


def _one_line(c: Change, lang: Lang) -> str:
    """A folded stock: what happens, which stock, its summary and its budget change."""
    line = f"- {SYMBOLS[c.action]} {md(action_word(c, lang))} {code(c.id)}"
    if stock_body(c) is not None:
        line += f" · {md(summary(c, lang))}"
    return line + "".join(f" · {md(delta_one(d, lang))}" for d in c.budget_deltas)


def _details(c: Change, lang: Lang) -> str:
    head = f"{SYMBOLS[c.action]} {action_word(c, lang)} · {summary(c, lang)}"
    sep = colon(lang)
    parts = [f"<details><summary>{_h(head)}</summary>", _where(c, lang)]
    if not c.is_error:
        parts += [md(line) for line in reason_lines(c, lang)]
    if c.fields and not (c.setting and c.action in ACTING):  # a setting's line says it
        items = []
        for name, values, note in (changed_field(c, f, lang) for f in c.fields):
            items.append(f"- {md(name)}{sep}{md(values)}" + (f" — {md(note)}" if note else ""))
        parts.append(f"**{md(t(lang, 'changes'))}**\n\n" + "\n".join(items))
    money = money_lines(c, lang)
    if money:
        parts.append("\n".join(f"- {md(m)}" for m in money))
    uploads = upload_lines(c, lang)
    if uploads:
        parts.append("\n".join(f"- {code(u)}" for u in uploads))
    groups = create_groups(c, lang)
    for title, fields in groups:
        items = [
            f"- {md(f.name)}{sep}{md(f.value)}" + (f" {FIXED}" if f.fixed else "") for f in fields
        ]
        parts.append(f"**{md(title)}**\n\n" + "\n".join(items))
    if groups:
        parts.append(f"{FIXED} {md(t(lang, 'never_changes'))}")
    facts = fact_lines(c, lang)
    if facts:
        parts.append(f"**{md(t(lang, 'observed'))}**{sep}" + " · ".join(md(f) for f in facts))
    if c.suggestion and not c.is_error:
        parts.append(f"**{md(t(lang, 'fix'))}**{sep}{prose(c.suggestion)}")
    parts.append("</details>")
    return "\n\n".join(parts)


def _technical(c: Change, lang: Lang) -> list[str]:
    return [
        f"- {code(c.id)}{colon(lang)}"
        + md(t(lang, "request", call=call, number=_SLOT)).replace(_SLOT, code(number))
        for call, number in technical_lines(c, lang)
    ]


def _drop_order(changes: Sequence[Change]) -> list[int]:
    """Which entries go first when space runs out: the last non-errors, then the last errors."""
    idx = range(len(changes) - 1, -1, -1)
    return [i for i in idx if not changes[i].is_error] + [i for i in idx if changes[i].is_error]


def _fewest_drops(
    build: Callable[[int], str], n: int, fits: Callable[[str], bool]
) -> tuple[int, str]:
    """The smallest number of drops k (0..n) whose output fits, found by bisection.

    Output length falls as k grows once the "N more" line is in (k >= 1), so search there."""
    text = build(0)
    if fits(text) or n == 0:
        return 0, text
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(build(mid)):
            hi = mid
        else:
            lo = mid + 1
    return lo, build(lo)


@dataclass(frozen=True)
class _Parts:
    lang: Lang
    head: str
    errors: list[str]
    changes: list[Change]
    details: list[str]
    lines: list[str]
    totals: str
    meta: str
    technical: list[list[str]]
    where: str

    def build(self, fold: int, drop: int = 0, drop_errors: int = 0) -> str:
        order = _drop_order(self.changes)
        folded, gone = set(order[:fold]), set(order[:drop])
        blocks = [self.head]
        if self.errors:
            kept = self.errors[: len(self.errors) - drop_errors]
            title = f"### ✗ {md(t(self.lang, 'errors_title'))}"
            more = (
                [
                    md(t(self.lang, "more_errors", n=drop_errors, where=_SLOT)).replace(
                        _SLOT, self.where
                    )
                ]
                if drop_errors
                else []
            )
            blocks.append("\n".join([title, "", *kept, *more]))
        if self.totals:
            blocks.append(self.totals)
        if self.changes:
            blocks.append(f"### {md(t(self.lang, 'details_title'))}")
            shown = [self.details[i] for i in range(len(self.changes)) if i not in folded]
            blocks += shown
            one_liners = [
                self.lines[i] for i in range(len(self.changes)) if i in folded and i not in gone
            ]
            if one_liners:
                blocks.append("\n".join(one_liners))
            if fold:
                text = md(t(self.lang, "more_stocks", n=fold, where=_SLOT))
                blocks.append(text.replace(_SLOT, self.where))
        tech = [self.meta]
        for i, lines in enumerate(self.technical):
            if i not in folded:
                tech += lines
        title = _h(t(self.lang, "technical"))
        blocks.append(
            f"<details><summary>{title}</summary>\n\n" + "\n".join(tech) + "\n\n</details>"
        )
        return "\n\n".join(blocks) + "\n"


def _head(
    plan: Plan, marker: str, title: str | None, note: str | None, lang: Lang, link: str
) -> str:
    lines = [f"<!-- {marker} -->", f"## {md(title) if title else md(t(lang, 'title'))}", ""]
    lines.append(f"**{md(counts_line(plan, lang))}**")
    if any(c.action is not Action.NOOP for c in plan.changes):
        lines.append("")
        lines += [f"- {md(line)}" for line in headline(plan, lang)]
    if note:
        lines += ["", f"> {note}"]
    if link:
        lines += ["", link]
    if plan.scope is not None:
        lines += ["", f"**{md(scope_line(plan.scope.describe(), lang))}**"]
    return "\n".join(lines)


def _totals(plan: Plan, lang: Lang) -> str:
    if not plan.totals:
        return ""
    lines = [f"### {md(t(lang, 'per_merchant'))}", ""]
    lines += [f"- {md(line)}" for line in merchant_lines(plan, lang)]
    lines += ["", md(t(lang, "time", time=duration(plan.estimated_apply_seconds)))]
    if plan.sub_totals:
        lines += ["", md(sub_merchant_title(lang)), ""]
        lines += [f"- {md(line)}" for line in sub_merchant_lines(plan, lang)]
    return "\n".join(lines)


def render_markdown(
    plan: Plan,
    *,
    marker: str = "reconciler:plan",
    max_chars: int = DEFAULT_COMMENT_CHARS,
    max_bytes: int | None = None,
    title: str | None = None,
    note: str | None = None,
    lang: Lang = "en",
    full_plan_url: str | None = None,
) -> str:
    """The plan for a pull-request comment (at most `max_chars` characters) or a job summary
    (`max_bytes` UTF-8 bytes, when given).

    `note` is the caller's own Markdown (shown as a quote, not escaped); `title` is plain text;
    `full_plan_url` (the run's page) is linked as where the full plan is.
    """
    if "--" in marker or "\n" in marker:
        raise ValueError(f"marker {marker!r} cannot sit inside an HTML comment")
    if full_plan_url is not None and not PLAIN_URL.match(full_plan_url):
        raise ValueError(f"full_plan_url {full_plan_url!r} is not a plain http(s) URL")
    where = (
        t(lang, "full_plan_link", url=full_plan_url)
        if full_plan_url
        else md(t(lang, "full_plan_plain"))
    )
    link = t(lang, "full_plan_line", where=where) if full_plan_url else ""
    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    meta = md(meta_line(plan, lang))
    if note and plan.refresh_note and plan.refresh_note in note:
        # The caller's note already says why the refresh was limited: say it once.
        meta = md(meta_line(replace(plan, refresh_note=""), lang))
    meta += " · " + md(t(lang, "checksum", checksum="")).rstrip() + " " + code(plan.checksum())
    parts = _Parts(
        lang=lang,
        head=_head(plan, marker, title, note, lang, link),
        errors=[_error_item(c, lang) for c in shown if c.is_error],
        changes=shown,
        details=[_details(c, lang) for c in shown],
        lines=[_one_line(c, lang) for c in shown],
        totals=_totals(plan, lang) if shown else "",
        meta=meta,
        technical=[_technical(c, lang) for c in shown],
        where=where,
    )

    def fits(text: str) -> bool:
        if max_bytes is not None and len(text.encode("utf-8")) > max_bytes:
            return False
        return len(text) <= max_chars

    n = len(shown)
    folded, text = _fewest_drops(parts.build, n, fits)
    if folded < n or fits(text):
        return text
    dropped, text = _fewest_drops(lambda k: parts.build(n, k), n, fits)
    if dropped < n or fits(text):
        return text
    # Only when the errors alone exceed the limit: a comment GitHub refuses shows nothing at all.
    _, text = _fewest_drops(lambda k: parts.build(n, n, k), len(parts.errors), fits)
    return text if fits(text) else _cut(text, max_chars, max_bytes, lang, where)


def _cut(text: str, max_chars: int, max_bytes: int | None, lang: Lang, where: str) -> str:
    tail = "\n\n" + md(t(lang, "cut", where=_SLOT)).replace(_SLOT, where) + "\n"
    limit = max_chars if max_bytes is None else min(max_chars, max_bytes // 4)
    keep = text[: max(0, limit - len(tail))]
    return keep[: keep.rfind("\n") + 1 if "\n" in keep else 0].rstrip("\n") + tail


__all__ = [
    "COMMENT_LIMIT",
    "DEFAULT_COMMENT_CHARS",
    "PLAIN_URL",
    "SUMMARY_LIMIT",
    "code",
    "kind_label",
    "md",
    "render_markdown",
]
