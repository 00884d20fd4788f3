"""Money is integer fen (分) everywhere; people also see yuan."""

from __future__ import annotations


def yuan(fen: int) -> str:
    """`50000` -> `¥500.00` (thousands separated, sign kept)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def money(fen: int) -> str:
    """`50000` -> `50000 分 (¥500.00)`: the API's unit first, then what it means."""
    return f"{fen} 分 ({yuan(fen)})"


def yuan_short(fen: int) -> str:
    """`8000000` -> `¥80,000`, `1050` -> `¥10.50`: yuan for a reviewer's headline, with digit
    grouping and the cents only when there are any."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}" + (f".{cents:02d}" if cents else "")


def signed_yuan(fen: int) -> str:
    """`8000000` -> `+¥80,000`, `-500` -> `-¥5`: a change of money."""
    return ("+" if fen >= 0 else "") + yuan_short(fen)
