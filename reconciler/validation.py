"""Turning pydantic errors and rule findings into diagnostics with file positions."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.diagnostics import Diagnostic, FieldPath, Severity
from reconciler.mapping import MONEY_FIELDS
from reconciler.money import money, yuan
from reconciler.spec.common import shown
from reconciler.spec.findings import Finding
from reconciler.spec.stock import ID_PATTERN, PATTERN_HELP
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
        errors = exc.errors(include_url=False)
    renamed = _misspelled(errors)
    out = []
    for err in errors:
        loc = _clean(err["loc"])
        if err["type"] == "missing" and loc in renamed.values():
            continue  # reported once, at the misspelled key, as "did you mean"
        if loc in renamed:
            out.append(_misspelling(doc, prefix + loc, str(renamed[loc][-1])))
        else:
            out.append(_diagnostic(model, doc, prefix, err))
    return None, out


def _clean(loc: Any) -> FieldPath:
    """A pydantic error location as a field path (validator and key markers dropped)."""
    return tuple(
        p
        for p in loc
        if not (
            isinstance(p, str)
            and (p.startswith(("function-", "image-")) or p == "[key]")  # image-: union tags
        )
    )


def _misspelled(errors: list[Any]) -> dict[FieldPath, FieldPath]:
    """Unknown keys that are a close spelling of a missing required field beside them, mapped
    to that field's location: one mistake, so one diagnostic instead of "missing" + "unknown"."""
    missing: dict[FieldPath, list[str]] = {}
    for err in errors:
        if err["type"] == "missing":
            loc = _clean(err["loc"])
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
    out: dict[FieldPath, FieldPath] = {}
    if not missing:
        return out
    for err in errors:
        loc = _clean(err["loc"])
        if err["type"] != "extra_forbidden" or loc[:-1] not in missing:
            continue
        taken = {m[-1] for m in out.values() if m[:-1] == loc[:-1]}
        free = [name for name in missing[loc[:-1]] if name not in taken]
        hint = difflib.get_close_matches(str(loc[-1]), free, n=1, cutoff=0.6)
        if hint:
            out[loc] = (*loc[:-1], hint[0])
    return out


def _misspelling(doc: Document, loc: FieldPath, wanted: str) -> Diagnostic:
    name = str(loc[-1])
    message = (
        f"unknown field {name!r}; did you mean {wanted!r} (required, and missing)? Rename the key"
    )
    line, col = doc.locate(loc, key=True)
    return Diagnostic(doc.file, line, col, Severity.ERROR, loc, message, "unknown_field")


def findings_to_diagnostics(doc: Document, findings: Iterable[Finding]) -> list[Diagnostic]:
    out = []
    for f in findings:
        line, col = doc.locate(f.path, key=True)
        out.append(
            Diagnostic(
                doc.file, line, col, f.severity, f.path, f.message, f.code, f.message_id, f.params
            )
        )
    return out


def _diagnostic(model: type[BaseModel], doc: Document, prefix: FieldPath, err: Any) -> Diagnostic:
    raw_loc = tuple(err["loc"])
    on_key = bool(raw_loc) and raw_loc[-1] == "[key]"
    loc: FieldPath = prefix + _clean(err["loc"])
    kind: str = err["type"]
    got = _describe(err.get("input"))
    if kind == "missing":
        message = f"required field {loc[-1]!r} is missing"
        line, col = doc.locate(loc[:-1])
        return Diagnostic(
            doc.file, line, col, Severity.ERROR, loc, message, "missing",
            "missing", {"name": str(loc[-1])},
        )  # fmt: skip
    if kind == "extra_forbidden":
        name = str(loc[-1])
        known = _fields_at(model, loc[len(prefix) : -1])
        hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        message = f"unknown field {name!r}"
        message_id, params = "unknown_field", {"name": name, "known": ", ".join(sorted(known))}
        if name == "out_request_no":
            message += "; reconciler derives it from the merchant, kind and id, so remove it"
            message_id = "unknown_field.out_request_no"
        elif hint:
            message += f"; did you mean {hint[0]!r}?"
            message_id, params["hint"] = "unknown_field.hint", hint[0]
        elif known:
            message += f"; expected one of: {', '.join(sorted(known))}"
            message_id = "unknown_field.known"
        line, col = doc.locate(loc, key=True)
        return Diagnostic(
            doc.file, line, col, Severity.ERROR, loc, message, "unknown_field", message_id, params
        )
    message_id, params = "", {}
    if kind in _TYPE_NAMES:
        message = f"expected {_TYPE_NAMES[kind]}, got {got}"
        message_id, params = f"type.{kind}", {"got": got}
        value = err.get("input")
        if kind == "int_type" and isinstance(value, float) and str(loc[-1]) in MONEY_FIELDS:
            message += f"; {_fen_hint(value)}"
    elif kind == "string_pattern_mismatch" and err["ctx"]["pattern"] in PATTERN_HELP:
        noun, rule = PATTERN_HELP[err["ctx"]["pattern"]]
        message = f"{shown(err.get('input'))} is not a valid {noun}: {rule}"
        fix = _slug(err.get("input"))
        if loc[-1] == "id" and fix is not None:
            message += f"; did you mean {fix!r}?"
    elif kind in _BOUNDS and isinstance(err.get("input"), int | float):
        word, key = _BOUNDS[kind]
        is_money = str(loc[-1]) in MONEY_FIELDS
        bound, value = _amount(err["ctx"][key], is_money), _amount(err["input"], is_money)
        message = f"must be {word} {bound}; is {value}"
        message_id, params = f"bound.{kind}", {"bound": bound, "value": value}
    elif kind in ("string_too_short", "string_too_long") and isinstance(err.get("input"), str):
        text, ctx = err["input"], err["ctx"]
        if kind == "string_too_long":
            message = f"{shown(text)} is {len(text):,} characters; at most {ctx['max_length']:,}: shorten it"
            message_id = "too_long"
            params = {"text": shown(text), "n": f"{len(text):,}", "max": f"{ctx['max_length']:,}"}
        else:
            need = ctx["min_length"]
            message = (
                "must not be empty" if need == 1 else f"is {len(text)} characters; at least {need}"
            )
            message_id = "empty" if need == 1 else ""
    elif kind == "literal_error":
        message = f"must be one of {err['ctx']['expected']}; got {got}"
        message_id, params = "one_of", {"expected": err["ctx"]["expected"], "got": got}
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}; got {got}"
    if on_key:
        message = f"{loc[-1]!r} is not allowed here: {message}"
        message_id = ""
    line, col = doc.locate(loc, key=on_key)
    return Diagnostic(doc.file, line, col, Severity.ERROR, loc, message, kind, message_id, params)


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _amount(value: Any, is_money: bool) -> str:
    if is_money and isinstance(value, int):
        return money(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _fen_hint(value: float) -> str:
    """Amounts are integer fen; a decimal was most likely meant as yuan."""
    fen = round(value * 100)
    hint = f"amounts are in 分 (fen), whole numbers: write {fen} for {yuan(fen)}"
    if value.is_integer() and abs(value) < 1e15:
        hint += f" (or {int(value)} for {yuan(int(value))})"
    return hint


def _slug(value: object) -> str | None:
    """The id a person most likely meant: lower case, other characters as hyphens."""
    if not isinstance(value, str):
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:64].strip("-")
    return slug if slug and re.fullmatch(ID_PATTERN, slug) else None


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
