"""RFC 3339 times as WeChat Pay writes them: parsing what clients send, rendering at +08:00."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Literal

TimeStyle = Literal["as_sent", "seconds", "millis"]
"""How detail responses show the times a client sent at create: echoed as sent, or re-rendered
at +08:00 with whole seconds or with milliseconds (the real format is UNCONFIRMED)."""

CHINA = timezone(timedelta(hours=8))

# Upper-case T and Z only, as in every WeChat Pay example; a fraction of 1..9 digits.
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")


def parse_time(text: str) -> datetime | None:
    """The instant `text` names, or None when it is not a full RFC 3339 date-time."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    head, fraction, zone = m.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    try:
        return datetime.fromisoformat(f"{head}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


def format_time(epoch: float, *, millis: bool = False) -> str:
    """`2026-05-20T13:29:35+08:00` (or `...35.120+08:00` with `millis`)."""
    moment = datetime.fromtimestamp(epoch, CHINA)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "+08:00"


def render_time(text: str, style: TimeStyle) -> str:
    """A stored, already validated time string shown in `style`."""
    if style == "as_sent":
        return text
    moment = parse_time(text)
    if moment is None:
        return text
    return format_time(moment.timestamp(), millis=style == "millis")
