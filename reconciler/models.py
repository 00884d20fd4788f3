"""The base of every pydantic model the tool keeps many of: stock specs and state records.

A validated pydantic model carries, besides its `__dict__`, its own `set` of the fields the
input named (`model_fields_set`). For a stock of six nested models those six sets are about
half of the stock's memory (2.8 KB of 5.9 KB), and a 50,000-stock plan holds every stock and
every state record at once. Models of one shape name the same fields, so after validation
each model's set is swapped for one shared set with the same names.

This is safe because every such model is frozen: pydantic adds to a model's set only when an
attribute is assigned, which a frozen model refuses, and `model_copy` copies the set before
changing it. Nothing in the tool reads the sets; they are kept equal to what pydantic made.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, model_validator

_SHARED: dict[tuple[str, ...], set[str]] = {}
"""Keyed by the names in the set's own order: equal keys mean equal sets, and a set of the same
names in another order only makes a second shared copy."""


class SharedFieldsModel(BaseModel):
    """A frozen model whose `model_fields_set` is shared with the models of its shape."""

    @model_validator(mode="after")
    def _share_fields_set(self) -> Self:
        names = self.__pydantic_fields_set__
        shared = _SHARED.setdefault(tuple(names), names)
        if shared is not names:
            object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self
