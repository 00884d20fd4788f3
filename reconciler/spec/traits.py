"""What a create-body field means after the create, declared on the model field itself.

The spec models say, beside each field, whether WeChat Pay lets it change later and how, where
the detail response shows it, and whether a reviewer must see it on a create. Everything else
(the planner's verdicts, drift, the review listing) reads these traits, so making a field
modifiable or showing it for review is a one-line change in the model's module:

    comment: Annotated[str | None, MODIFY] = Field(default=None, max_length=20)

Pure: the traits are plain values, read from the pydantic model classes once and cached.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Modify:
    """The field (and everything under it) changes in place through the kind's modify call.

    `only_to`, when set, lists the only values the field may change to (a switch that can be
    turned on but never off)."""

    only_to: tuple[Any, ...] | None = None
    nonempty: bool = False
    """A list that must keep at least one item: the call can change its items, not empty it,
    and not give one to a stock created without it."""


@dataclass(frozen=True)
class Budget:
    """The field changes through the kind's budget call, as `target_<name>`/`current_<name>`."""

    name: str


@dataclass(frozen=True)
class Review:
    """Shown for every create: a reviewer must see it before it becomes final. `money` marks
    fen, shown in yuan too; `order` places it in the listing (then the model's order)."""

    money: bool = False
    order: int = 0


@dataclass(frozen=True)
class Detail:
    """The detail response shows this field, at `path` (empty: the same path as the create's)."""

    path: str = ""


MODIFY = Modify()
REVIEW = Review()
REVIEW_MONEY = Review(money=True)


@dataclass(frozen=True)
class FieldTraits:
    modify: Modify | None = None
    budget: Budget | None = None
    review: Review | None = None
    detail: Detail | None = None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


@cache
def model_traits(model: type[BaseModel]) -> Mapping[str, FieldTraits]:
    """Every field path of `model` (dotted, as in the create body) that carries a trait, in the
    model's field order."""
    out: dict[str, FieldTraits] = {}

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, info in cls.model_fields.items():
            path = prefix + name
            found: dict[str, Any] = {}
            for meta in info.metadata:
                for slot, kind in (
                    ("modify", Modify),
                    ("budget", Budget),
                    ("review", Review),
                    ("detail", Detail),
                ):
                    if isinstance(meta, kind):
                        found[slot] = meta
            if found:
                out[path] = FieldTraits(**found)
            for sub in _models_in(info.annotation):
                walk(sub, path + ".")

    walk(model, "")
    return out


def traits_at(model: type[BaseModel], path: str) -> tuple[str, FieldTraits] | None:
    """The nearest traits on `path` or above it, with the path that carries them."""
    table = model_traits(model)
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        at = ".".join(parts[:end])
        if at in table:
            return at, table[at]
    return None
