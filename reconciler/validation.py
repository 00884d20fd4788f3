"""Turning pydantic errors and rule findings into diagnostics with file positions."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.diagnostics import Diagnostic, FieldPath, Severity
from reconciler.spec.findings import Finding
from reconciler.yamlsource import Document

M = TypeVar("M", bound=BaseModel)

_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "string_type": "a string (quote it)",
    "bool_type": "true or false",
    "list_type": "a list",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def validate_model(
    model: type[M], doc: Document, prefix: FieldPath = ()
) -> tuple[M | None, list[Diagnostic]]:
    """Validate `doc.data` (or the part under `prefix`) against `model`; all errors at once."""
    data: Any = doc.data
    for part in prefix:
        data = data[part]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [_diagnostic(model, doc, prefix, err) for err in exc.errors(include_url=False)]


def findings_to_diagnostics(doc: Document, findings: Iterable[Finding]) -> list[Diagnostic]:
    out = []
    for f in findings:
        line, col = doc.locate(f.path, key=True)
        out.append(Diagnostic(doc.file, line, col, f.severity, f.path, f.message, f.code))
    return out


def _diagnostic(model: type[BaseModel], doc: Document, prefix: FieldPath, err: Any) -> Diagnostic:
    raw_loc = tuple(err["loc"])
    on_key = bool(raw_loc) and raw_loc[-1] == "[key]"
    loc: FieldPath = prefix + tuple(
        p
        for p in err["loc"]
        if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
    )
    kind: str = err["type"]
    got = _describe(err.get("input"))
    if kind == "missing":
        message = f"required field {loc[-1]!r} is missing"
        line, col = doc.locate(loc[:-1])
        return Diagnostic(doc.file, line, col, Severity.ERROR, loc, message, "missing")
    if kind == "extra_forbidden":
        name = str(loc[-1])
        known = _fields_at(model, loc[len(prefix) : -1])
        hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        message = f"unknown field {name!r}"
        if name == "out_request_no":
            message += "; reconciler derives it from the merchant, kind and id, so remove it"
        elif hint:
            message += f"; did you mean {hint[0]!r}?"
        elif known:
            message += f"; expected one of: {', '.join(sorted(known))}"
        line, col = doc.locate(loc, key=True)
        return Diagnostic(doc.file, line, col, Severity.ERROR, loc, message, "unknown_field")
    if kind in _TYPE_NAMES:
        message = f"expected {_TYPE_NAMES[kind]}, got {got}"
    elif kind == "literal_error":
        message = f"must be one of {err['ctx']['expected']}; got {got}"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}; got {got}"
    if on_key:
        message = f"{loc[-1]!r} is not allowed here: {message}"
    line, col = doc.locate(loc, key=on_key)
    return Diagnostic(doc.file, line, col, Severity.ERROR, loc, message, kind)


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _fields_at(model: type[BaseModel], path: FieldPath) -> list[str]:
    """Field names of the model reached by following `path` through nested annotations."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            current = _unwrap(current, list_item=True)
            continue
        current = _unwrap(current)
        if (
            not (isinstance(current, type) and issubclass(current, BaseModel))
            or part not in current.model_fields
        ):
            return []
        current = current.model_fields[part].annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any, list_item: bool = False) -> Any:
    """Strip Optional/Annotated (and, for a list index, the list) from an annotation."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        elif list_item and origin is list:
            tp = typing.get_args(tp)[0]
            list_item = False
        else:
            return tp
