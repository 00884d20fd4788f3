"""Diagnostics as text, JSON, or GitHub Actions annotations. Renderers format; they never decide."""

from __future__ import annotations

import json
from collections.abc import Sequence

from reconciler.diagnostics import Diagnostic, Severity
from reconciler.i18n import Lang, diagnostic_message, t

GITHUB_LIMIT_PER_SEVERITY = 10


def _message(d: Diagnostic, lang: Lang) -> str:
    return diagnostic_message(d.message, d.message_id, d.params, lang)


def field_text(d: Diagnostic, lang: Lang) -> str:
    """The field path, and in Chinese its documented name: `spec.stock_name（批次名称）`."""
    if lang != "zh" or not d.field.startswith("spec."):
        return d.field
    from reconciler.spec.labels import label_for
    from reconciler.spec.labels_busifavor import BUSIFAVOR_LABELS
    from reconciler.spec.labels_favor import FAVOR_LABELS

    path = d.field.removeprefix("spec.")
    label = label_for(FAVOR_LABELS, path) or label_for(BUSIFAVOR_LABELS, path)
    return f"{d.field}（{label.zh}）" if label else d.field


def text(diagnostics: Sequence[Diagnostic], lang: Lang = "en") -> str:
    """`path:line:col: error: field: message`, one per line."""
    lines = []
    for d in diagnostics:
        where = f"{field_text(d, lang)}: " if d.field else ""
        severity = t(lang, f"severity.{d.severity.value}")
        lines.append(f"{d.location()}: {severity}: {where}{_message(d, lang)}")
    return "\n".join(lines)


def summary(diagnostics: Sequence[Diagnostic], files: int, stocks: int, lang: Lang = "en") -> str:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = len(diagnostics) - errors
    if lang == "zh":
        return t(
            lang, "validate.summary", files=files, stocks=stocks, errors=errors, warnings=warnings
        )
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


def github(diagnostics: Sequence[Diagnostic], lang: Lang = "en") -> str:
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
        title = f"reconciler: {field_text(d, lang)}" if d.field else "reconciler"
        props.append(f"title={_escape_property(title)}")
        out.append(f"::{d.severity.value} {','.join(props)}::{_escape_data(_message(d, lang))}")
    if hidden[Severity.ERROR] or hidden[Severity.WARNING]:
        more = t(
            lang,
            "validate.more",
            errors=hidden[Severity.ERROR],
            warnings=hidden[Severity.WARNING],
        )
        out.append(f"::notice title=reconciler::{_escape_data(more)}")
    if diagnostics:
        out.append(text(diagnostics, lang))
    return "\n".join(out)
