"""A rule's verdict before it has a file position: field path, severity, message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from reconciler.diagnostics import FieldPath, Severity


@dataclass(frozen=True)
class Finding:
    path: FieldPath
    severity: Severity
    message: str
    code: str
    fix: str = ""
    """What to change, where the rule knows better than a generic hint (the planner shows it)."""
    message_id: str = ""
    """The message in the catalogue (`reconciler.i18n.DIAGNOSTICS`) for other languages."""
    params: Mapping[str, object] = field(default_factory=dict)


class Findings:
    """Collects findings under a path prefix, so rules name fields relative to their object."""

    def __init__(self, prefix: FieldPath = ()) -> None:
        self.prefix = prefix
        self.items: list[Finding] = []

    def error(
        self,
        path: FieldPath,
        message: str,
        code: str = "rule",
        fix: str = "",
        *,
        message_id: str = "",
        params: Mapping[str, object] | None = None,
    ) -> None:
        self._add(Finding(path, Severity.ERROR, message, code, fix, message_id, params or {}))

    def warning(
        self,
        path: FieldPath,
        message: str,
        code: str = "rule",
        *,
        message_id: str = "",
        params: Mapping[str, object] | None = None,
    ) -> None:
        self._add(Finding(path, Severity.WARNING, message, code, "", message_id, params or {}))

    def _add(self, finding: Finding) -> None:
        self.items.append(replace(finding, path=self.prefix + finding.path))
