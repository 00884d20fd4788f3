"""Turning pydantic errors and rule findings into diagnostics with file positions."""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.diagnostic_messages import Msg, MsgError, coded, msg, parts
from reconciler.diagnostics import Diagnostic, FieldPath, Severity
from reconciler.mapping import MONEY_FIELDS
from reconciler.money import money, yuan
from reconciler.spec.common import shown
from reconciler.spec.findings import Finding
from reconciler.spec.stock import ID_PATTERN, PATTERN_HELP
from reconciler.yamlsource import Document

M = TypeVar("M", bound=BaseModel)

_TYPE_KINDS = frozenset(
    {
        "int_type",
        "int_parsing",
        "string_type",
        "bool_type",
        "list_type",
        "model_type",
        "dict_type",
        "model_attributes_type",
    }
)


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
    said = msg("unknown_field.missing", name=str(loc[-1]), wanted=wanted)
    line, col = doc.locate(loc, key=True)
    return Diagnostic(doc.file, line, col, Severity.ERROR, loc, *coded(said, "unknown_field"))


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
    said: Msg | str
    if kind == "missing":
        line, col = doc.locate(loc[:-1])
        said = msg("missing", name=str(loc[-1]))
        return Diagnostic(doc.file, line, col, Severity.ERROR, loc, *coded(said, "missing"))
    if kind == "extra_forbidden":
        name = str(loc[-1])
        known = _fields_at(model, loc[len(prefix) : -1])
        hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if name == "out_request_no":
            said = msg("unknown_field.out_request_no", name=name)
        elif hint:
            said = msg("unknown_field.hint", name=name, hint=hint[0])
        elif known:
            said = msg("unknown_field.known", name=name, known=", ".join(sorted(known)))
        else:
            said = msg("unknown_field", name=name)
        line, col = doc.locate(loc, key=True)
        return Diagnostic(doc.file, line, col, Severity.ERROR, loc, *coded(said, "unknown_field"))
    if kind in _TYPE_KINDS:
        said = msg(f"type.{kind}", got=got)
        value = err.get("input")
        if (
            kind == "int_type"
            and isinstance(value, float)
            and math.isfinite(value)
            and abs(value) < 1e15  # no amount is this large: no yuan to suggest
            and str(loc[-1]) in MONEY_FIELDS
        ):
            said = _fen_hint(value, got)
    elif kind == "string_pattern_mismatch" and err["ctx"]["pattern"] in PATTERN_HELP:
        said = msg(PATTERN_HELP[err["ctx"]["pattern"]], value=shown(err.get("input")))
        fix = _slug(err.get("input"))
        if loc[-1] == "id" and fix is not None:
            said = msg("did_you_mean", message=said, fix=fix)
    elif kind in _BOUNDS and isinstance(err.get("input"), int | float):
        is_money = str(loc[-1]) in MONEY_FIELDS
        bound = _amount(err["ctx"][_BOUNDS[kind]], is_money)
        said = msg(f"bound.{kind}", bound=bound, value=_amount(err["input"], is_money))
    elif kind in ("string_too_short", "string_too_long") and isinstance(err.get("input"), str):
        text, ctx = err["input"], err["ctx"]
        if kind == "string_too_long":
            n, most = f"{len(text):,}", f"{ctx['max_length']:,}"
            said = msg("too_long", text=shown(text), n=n, max=most)
        else:
            need = ctx["min_length"]
            said = msg("empty") if need == 1 else msg("too_short", n=len(text), min=need)
    elif kind == "literal_error":
        head, sep, last = str(err["ctx"]["expected"]).rpartition(" or ")
        expected = msg("either", a=head, b=last) if sep else last  # "'a', 'b' or 'c'"
        said = msg("one_of", expected=expected, got=got)
    elif kind == "value_error":
        error = err["ctx"]["error"]
        said = error.message if isinstance(error, MsgError) else str(error)
    elif kind == "invalid_key":
        said = msg("invalid_key", got=got)
    else:
        said = f"{err['msg'][0].lower()}{err['msg'][1:]}; got {got.en}"
    if on_key:
        key = loc[-1]
        said = (
            msg("key_not_allowed", key=key, message=said)
            if isinstance(said, Msg)
            else f"{key!r} is not allowed here: {said}"
        )
    message, message_id, params = parts(said)
    line, col = doc.locate(loc, key=on_key)
    return Diagnostic(doc.file, line, col, Severity.ERROR, loc, message, kind, message_id, params)


_BOUNDS = {
    "greater_than_equal": "ge",
    "greater_than": "gt",
    "less_than_equal": "le",
    "less_than": "lt",
}


def _amount(value: Any, is_money: bool) -> str:
    if is_money and isinstance(value, int):
        return money(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _fen_hint(value: float, got: Msg) -> Msg:
    """Amounts are integer fen; a decimal was most likely meant as yuan. `value` is finite
    and under 1e15 (the caller checks), so its fen are a number."""
    fen = round(value * 100)
    if value.is_integer():
        whole = int(value)
        return msg(
            "type.fen_or", got=got, fen=fen, yuan=yuan(fen), whole=whole, whole_yuan=yuan(whole)
        )
    return msg("type.fen", got=got, fen=fen, yuan=yuan(fen))


def _slug(value: object) -> str | None:
    """The id a person most likely meant: lower case, other characters as hyphens."""
    if not isinstance(value, str):
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:64].strip("-")
    return slug if slug and re.fullmatch(ID_PATTERN, slug) else None


def _describe(value: object) -> Msg:
    if value is None:
        return msg("got.null")
    if isinstance(value, bool):
        return msg("got.bool", value=str(value).lower())
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return msg("got.string", value=shown)
    if isinstance(value, int | float):
        return msg("got.number", value=value)
    if isinstance(value, dict):
        return msg("got.mapping")
    if isinstance(value, list):
        return msg("value.list")
    return msg("got.type", name=type(value).__name__)


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
