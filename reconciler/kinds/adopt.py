"""Adopting a stock made elsewhere: its detail response read back into a stock file. Pure.

This is the create→detail mapping run backwards. A kind says where its detail shows each
create-body field (`StockKind.detail_path`, from the `Detail` traits for a favor stock, the
same path for a busifavor stock), which fields other reads fill in (a favor stock's items and
merchants) and which required fields the API never returns; `inverse` walks the kind's
create-body model and yields every field the API returned, and the paths of those it did not.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from reconciler.mapping import get_path


@dataclass(frozen=True)
class ImportedSpec:
    """A remote stock as its stock file states it."""

    spec: dict[str, Any]
    """The create body without out_request_no: every field the API returned, plus the
    required fields it did not return (see `stand_ins`)."""
    unknown: tuple[str, ...]
    """Create-body paths the API did not return, in the model's order. An optional one is
    left out of `spec`; a whole object none of whose fields is returned is one path."""
    stand_ins: Mapping[str, Any] = field(default_factory=dict)
    """Of `unknown`, the fields the file must hold (required by the model): the value written
    for each, which says nothing about the stock."""
    derived: Mapping[str, str] = field(default_factory=dict)
    """Fields the API does not return under their own name but that a rule fixes: path ->
    where the value comes from."""
    top: Mapping[str, Any] = field(default_factory=dict)
    """Fields of the stock file beside `spec` (a favor stock's `status`)."""
    top_notes: Mapping[str, str] = field(default_factory=dict)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _required(info: Any) -> bool:
    return bool(info.is_required())


def leaf_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf field path of a create-body model (lists are leaves), in the model's order."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        subs = _models_in(info.annotation)
        if subs:
            out += leaf_paths(subs[0], f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _absent(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def inverse(
    model: type[BaseModel],
    detail: Mapping[str, Any],
    reads: Mapping[str, Any],
    detail_path: Callable[[str], str | None],
    stand_ins: Mapping[str, Any],
    derived: Mapping[str, str],
    omitted_defaults: Mapping[str, Any],
    convert: Callable[[str, Any], Any],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(spec, unknown paths) of a remote stock.

    `reads` holds values other calls returned, by create path (an empty list: read, none set);
    `stand_ins` the values written for required fields the API never returns; `derived` the
    detail path of fields a rule fixes; `omitted_defaults` values the detail shows for a field
    that was not sent (a server default), which the file leaves out; `convert` turns a value
    the detail shows into the create body's form."""
    shown = [p for p in leaf_paths(model) if detail_path(p) is not None or p in reads]
    spec: dict[str, Any] = {}
    unknown: list[str] = []

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, info in cls.model_fields.items():
            path = prefix + name
            subs = _models_in(info.annotation)
            if path in reads:
                if not _absent(reads[path]):
                    _set(spec, path, reads[path])
                continue
            if path in derived:
                found, value = get_path(detail, derived[path])
                if found and not _absent(value):
                    _set(spec, path, value)
                    continue
            if subs:
                if any(p.startswith(path + ".") for p in shown) or _required(info):
                    before = len(unknown)
                    walk(subs[0], path + ".")
                    if not _required(info) and not get_path(spec, path)[0]:
                        # The detail shows the object absent: nothing under it can be set.
                        del unknown[before:]
                else:
                    unknown.append(path)
                continue
            where = detail_path(path)
            if where is None:
                unknown.append(path)
                if path in stand_ins:
                    _set(spec, path, stand_ins[path])
                continue
            found, value = get_path(detail, where)
            if not found or _absent(value):
                continue
            value = convert(path, value)
            if path in omitted_defaults and value == omitted_defaults[path]:
                continue
            _set(spec, path, value)

    walk(model, "")
    return spec, tuple(unknown)


def field_names(model: type[BaseModel], path: str) -> list[str]:
    """The field names, in order, of the object at `path` of a create-body model ("" for the
    top); [] when `path` names no object."""
    cls: type[BaseModel] | None = model
    for part in [p for p in path.split(".") if p]:
        info = cls.model_fields.get(part) if cls is not None else None
        subs = _models_in(info.annotation) if info is not None else []
        cls = subs[0] if subs else None
    return list(cls.model_fields) if cls is not None else []
