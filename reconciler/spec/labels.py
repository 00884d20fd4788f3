"""What a reviewer calls each create-body field: the documentation's Chinese name, an English
name, and the group the documentation lists it under. Pure.

One table per kind sits beside its model (`labels_favor.py`, `labels_busifavor.py`), keyed by
the create-body path (dotted; list items share their list's labels). tests/test_render_review.py
checks that every field of every spec model has a label in both languages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

_INDEX = re.compile(r"\[\d+\]")


class Group(StrEnum):
    """The documentation's sections of a create body, in the order a reviewer reads them."""

    STOCK = "stock"
    SEND = "send"
    USE = "use"
    DISPLAY = "display"


GROUP_NAMES: dict[Group, tuple[str, str]] = {
    Group.STOCK: ("批次信息", "Stock"),
    Group.SEND: ("发放规则", "Issuing rules"),
    Group.USE: ("核销规则", "Redemption rules"),
    Group.DISPLAY: ("样式", "Display"),
}
"""(Chinese, English) name of each group."""


@dataclass(frozen=True)
class Label:
    zh: str
    en: str
    group: Group

    def text(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def group_name(group: Group, lang: str) -> str:
    zh, en = GROUP_NAMES[group]
    return zh if lang == "zh" else en


def label_for(table: Mapping[str, Label], path: str) -> Label | None:
    """The label of a create-body path; list indexes (`[0]`) are ignored."""
    return table.get(_INDEX.sub("", path) if "[" in path else path)
