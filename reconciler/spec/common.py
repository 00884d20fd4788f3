"""Building blocks shared by the favor and busifavor models: strict config, times, text length."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, ConfigDict

from reconciler.diagnostic_messages import Msg, MsgError, msg
from reconciler.models import SharedFieldsModel

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)


class Strict(SharedFieldsModel):
    """Every spec object: no unknown keys, no type coercion ("5" is not 5), immutable."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        use_attribute_docstrings=True,
        hide_input_in_errors=True,
    )


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC3339 time that carries an explicit offset (`+08:00` or `Z`).

    Remembered per text (a datetime is immutable): the stocks of a campaign share their times,
    and a plan reads each one several times (validation, then the end of each stock)."""
    return _parse_rfc3339(value)


@functools.lru_cache(maxsize=4096)
def _parse_rfc3339(value: str) -> datetime:
    m = _RFC3339.match(value)
    if m is None:
        raise MsgError(msg("time.not_rfc3339", value=shown(value)))
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    frac = m.group(7)
    if frac and len(frac) > 7:
        # datetime keeps microseconds only; the API never needs more.
        text = text.replace(frac, frac[:7])
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise MsgError(msg("time.not_real", value=shown(value), reason=str(exc))) from None


def _check_rfc3339(value: str) -> str:
    parse_rfc3339(value)
    return value


Rfc3339 = Annotated[str, AfterValidator(_check_rfc3339)]
"""A time as WeChat Pay takes it: RFC3339 with an explicit offset, kept exactly as written."""


def shown(value: object, limit: int = 40) -> str:
    """A value as a message quotes it: repr, cut to `limit` characters (a 20,000-character
    name is not repeated in full)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


def is_cjk(ch: str) -> bool:
    """Wide characters (Chinese, full-width punctuation) that the docs count as 汉字."""
    return unicodedata.east_asian_width(ch) in ("W", "F")


def weighted_length_ok(text: str, max_cjk: int, max_other: int) -> bool:
    """The docs' "at most N Chinese characters or M letters" rule.

    The docs give two limits and no formula for a mix; we take the linear one that meets both:
    a Chinese character uses max_other/max_cjk of the budget. Pure Chinese allows max_cjk,
    pure Latin allows max_other, a mix falls in between.
    """
    cjk = sum(1 for ch in text if is_cjk(ch))
    other = len(text) - cjk
    return cjk * max_other + other * max_cjk <= max_cjk * max_other


def weighted_length_problem(text: str, max_cjk: int, max_other: int) -> Msg | None:
    """None when `text` fits "at most max_cjk Chinese characters or max_other letters", else
    what it counts and the limit, e.g. "'…' is 12 Chinese characters; at most 9 Chinese
    characters or 20 letters"."""
    if weighted_length_ok(text, max_cjk, max_other):
        return None
    cjk = sum(1 for ch in text if is_cjk(ch))
    other = len(text) - cjk
    counts = {"text": shown(text), "cjk": f"{cjk:,}", "other": f"{other:,}"}
    limit = {"max_cjk": max_cjk, "max_other": max_other}
    if not other:
        return msg("weighted.cjk", **counts, **limit)
    if not cjk:
        return msg("weighted.other", **counts, **limit)
    used = (cjk * max_other + other * max_cjk) / max_cjk
    return msg(
        "weighted.mixed", **counts, **limit, used=f"{used:.1f}", ratio=f"{max_other / max_cjk:.1f}"
    )


def four_byte_chars(text: str) -> list[str]:
    """Characters outside the Basic Multilingual Plane (most emoji); APIv3 refuses them."""
    return [ch for ch in text if ord(ch) > 0xFFFF]
