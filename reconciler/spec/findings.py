"""A rule's verdict before it has a file position: field path, severity, message."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.diagnostics import FieldPath, Severity


@dataclass(frozen=True)
class Finding:
    path: FieldPath
    severity: Severity
    message: str
    code: str
    fix: str = ""
    """What to change, where the rule knows better than a generic hint (the planner shows it)."""


class Findings:
    """Collects findings under a path prefix, so rules name fields relative to their object."""

    def __init__(self, prefix: FieldPath = ()) -> None:
        self.prefix = prefix
        self.items: list[Finding] = []

    def error(self, path: FieldPath, message: str, code: str = "rule", fix: str = "") -> None:
        self.items.append(Finding(self.prefix + path, Severity.ERROR, message, code, fix))

    def warning(self, path: FieldPath, message: str, code: str = "rule") -> None:
        self.items.append(Finding(self.prefix + path, Severity.WARNING, message, code))
