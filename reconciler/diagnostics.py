"""Diagnostics are values: file, line, column, field path, severity, message.

Every check in the tool reports through these, so that a person (or a CI annotation) can go
straight to the line that needs changing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

FieldPath = tuple[str | int, ...]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding in one file. Lines and columns start at 1; 0 means "the whole file"."""

    file: str
    line: int
    col: int
    severity: Severity = field(compare=False)
    path: FieldPath = field(compare=False, default=())
    message: str = field(compare=False, default="")
    code: str = field(compare=False, default="invalid")
    message_id: str = field(compare=False, default="")
    """The message in the catalogue (`reconciler.i18n.DIAGNOSTICS`), for other languages;
    "" when only `message` (English) exists."""
    params: Mapping[str, object] = field(compare=False, default_factory=dict)
    """The values `message_id`'s wording takes."""

    @property
    def field(self) -> str:
        return format_path(self.path)

    def location(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"

    def to_data(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity.value,
            "field": self.field,
            "message": self.message,
            "code": self.code,
        }


def format_path(path: FieldPath) -> str:
    """`('spec', 'stock_use_rule', 'max_amount')` -> `spec.stock_use_rule.max_amount`; indexes as `[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def sort_diagnostics(items: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(
        items, key=lambda d: (d.file, d.line, d.col, d.severity != Severity.ERROR, d.field)
    )


def has_errors(items: Sequence[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in items)
