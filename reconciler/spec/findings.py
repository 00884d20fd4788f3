"""A rule's verdict before it has a file position: field path, severity, message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.diagnostic_messages import Msg, parts
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
    """The message in the catalogue (`reconciler.diagnostic_messages`) for other languages."""
    params: Mapping[str, object] = field(default_factory=dict)


def finding(
    path: FieldPath, severity: Severity, message: str | Msg, code: str, fix: str = ""
) -> Finding:
    """A finding whose message is a catalogue message (`msg(...)`) or plain English."""
    text, message_id, params = parts(message)
    return Finding(path, severity, text, code, fix, message_id, params)


class Findings:
    """Collects findings under a path prefix, so rules name fields relative to their object."""

    def __init__(self, prefix: FieldPath = ()) -> None:
        self.prefix = prefix
        self.items: list[Finding] = []

    def error(
        self,
        path: FieldPath,
        message: str | Msg,
        code: str = "rule",
        fix: str = "",
    ) -> None:
        """`message` is a catalogue message (`msg(...)`), or plain English where none fits."""
        self._add(path, Severity.ERROR, message, code, fix)

    def warning(
        self,
        path: FieldPath,
        message: str | Msg,
        code: str = "rule",
    ) -> None:
        self._add(path, Severity.WARNING, message, code, "")

    def _add(
        self, path: FieldPath, severity: Severity, message: str | Msg, code: str, fix: str
    ) -> None:
        self.items.append(finding(self.prefix + path, severity, message, code, fix))
