"""Rules shared by both kinds: list sizes, text limits, time windows, 4-byte characters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from reconciler.diagnostic_messages import msg
from reconciler.diagnostics import FieldPath
from reconciler.spec.common import four_byte_chars, parse_rfc3339, shown
from reconciler.spec.findings import Findings


def list_size(
    out: Findings, path: FieldPath, items: Sequence[object] | None, lo: int, hi: int
) -> None:
    if items is None:
        return
    if not lo <= len(items) <= hi:
        n = len(items)
        if lo == hi:
            said = (
                msg("list_size.exactly_one", n=n)
                if lo == 1
                else msg("list_size.exactly", lo=lo, n=n)
            )
        else:
            said = msg("list_size.between", lo=lo, hi=hi, n=n)
        out.error(path, said, "list_size")


def unique(out: Findings, path: FieldPath, items: Sequence[object] | None) -> None:
    if items is None:
        return
    seen: set[object] = set()
    for i, item in enumerate(items):
        if item in seen:
            out.error((*path, i), msg("duplicate_entry", item=shown(item)), "duplicate_entry")
        seen.add(item)


def times(
    out: Findings, begin_path: FieldPath, begin: str, end_path: FieldPath, end: str
) -> tuple[datetime, datetime] | None:
    """Parse a begin/end pair (already format-checked) and require end after begin."""
    b, e = parse_rfc3339(begin), parse_rfc3339(end)
    if e <= b:
        said = msg("time_order.after", other=begin_path[-1], begin=begin)
        out.error(end_path, said, "time_order")
        return None
    return b, e


def not_open(out: Findings, path: FieldPath, value: object) -> None:
    if value is not None:
        out.warning(path, msg("not_open"), "not_open")


def four_byte_text(out: Findings, data: object, path: FieldPath = ()) -> None:
    """APIv3 accepts only 1- to 3-byte UTF-8 characters; emoji and other 4-byte ones are refused."""
    if isinstance(data, str):
        bad = four_byte_chars(data)
        if bad:
            shown = " ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(bad))
            out.error(path, msg("four_byte_char", chars=shown), "four_byte_char")
    elif isinstance(data, Mapping):
        for k, v in data.items():
            four_byte_text(out, v, (*path, str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            four_byte_text(out, v, (*path, i))


def creation_window(
    out: Findings, begin_path: FieldPath, begin: str, now: datetime, max_ahead_days: int = 365
) -> None:
    """Rules that depend on the clock; they only matter for a stock that is still to be created."""
    b = parse_rfc3339(begin)
    name = str(begin_path[-1])
    if b < now:
        out.error(
            begin_path,
            msg("begin_in_past", begin=begin),
            "begin_in_past",
            fix=f"move {name} (and the end time with it) later, to now or after",
        )
    elif b > now + timedelta(days=max_ahead_days):
        days = (b - now).total_seconds() / 86400
        out.error(
            begin_path,
            msg("begin_too_far", begin=begin, days=f"{days:.0f}", max=max_ahead_days),
            "begin_too_far",
            fix=f"move {name} (and the end time with it) earlier, to at most {max_ahead_days} "
            "days from now; or create the stock later",
        )
