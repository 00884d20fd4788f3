"""Diagnostics as text, JSON, or GitHub Actions annotations. Renderers format; they never decide."""

from __future__ import annotations

import json
from collections.abc import Sequence

from reconciler.diagnostics import Diagnostic, Severity

GITHUB_LIMIT_PER_SEVERITY = 10


def text(diagnostics: Sequence[Diagnostic]) -> str:
    """`path:line:col: error: field: message`, one per line."""
    lines = []
    for d in diagnostics:
        where = f"{d.field}: " if d.field else ""
        lines.append(f"{d.location()}: {d.severity.value}: {where}{d.message}")
    return "\n".join(lines)


def summary(diagnostics: Sequence[Diagnostic], files: int, stocks: int) -> str:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = len(diagnostics) - errors
    return f"{files} file{'s' if files != 1 else ''} checked, {stocks} valid stock{'s' if stocks != 1 else ''}, {errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"


def json_doc(diagnostics: Sequence[Diagnostic], files: int, stocks: int) -> str:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    doc = {
        "format_version": 1,
        "files": files,
        "valid_stocks": stocks,
        "errors": errors,
        "warnings": len(diagnostics) - errors,
        "diagnostics": [d.to_data() for d in diagnostics],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True)


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(diagnostics: Sequence[Diagnostic]) -> str:
    """Workflow commands: at most 10 errors and 10 warnings (GitHub's per-step limit), then one
    notice that counts the rest, then every diagnostic as plain text for the log."""
    out: list[str] = []
    shown = {Severity.ERROR: 0, Severity.WARNING: 0}
    hidden = {Severity.ERROR: 0, Severity.WARNING: 0}
    for d in diagnostics:
        if shown[d.severity] >= GITHUB_LIMIT_PER_SEVERITY:
            hidden[d.severity] += 1
            continue
        shown[d.severity] += 1
        props = [f"file={_escape_property(d.file)}"]
        if d.line > 0:
            props += [f"line={d.line}", f"col={d.col}"]
        title = f"reconciler: {d.field}" if d.field else "reconciler"
        props.append(f"title={_escape_property(title)}")
        out.append(f"::{d.severity.value} {','.join(props)}::{_escape_data(d.message)}")
    if hidden[Severity.ERROR] or hidden[Severity.WARNING]:
        out.append(
            f"::notice title=reconciler::{hidden[Severity.ERROR]} more error(s) and "
            f"{hidden[Severity.WARNING]} more warning(s) are not annotated (GitHub shows 10 of each per step); "
            "see the full list in this log"
        )
    if diagnostics:
        out.append(text(diagnostics))
    return "\n".join(out)
