"""The stock kinds, each the one home of what it knows (see `base.StockKind`). Pure.

Every consumer asks the registry: `kind_of("favor")`. Adding a kind means a model under
`reconciler/spec/`, a module here, and one entry in `KINDS`.
"""

from __future__ import annotations

from types import MappingProxyType

from reconciler.errors import ReconcilerError
from reconciler.kinds.base import (
    FieldDiff,
    Lifecycle,
    PlannedUpdate,
    StockApi,
    StockKind,
    Verdict,
)
from reconciler.kinds.busifavor import BusifavorKind
from reconciler.kinds.favor import FavorKind

KINDS = MappingProxyType({k.name: k for k in (FavorKind(), BusifavorKind())})


def kind_of(name: str) -> StockKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ReconcilerError(f"unknown stock kind {name!r}; known: {', '.join(KINDS)}") from None


__all__ = [
    "KINDS",
    "FieldDiff",
    "Lifecycle",
    "PlannedUpdate",
    "StockApi",
    "StockKind",
    "Verdict",
    "kind_of",
]
