"""Stock models (the API create bodies) and their documented rules. Pure: no I/O, no clock."""

from __future__ import annotations

from datetime import datetime

from reconciler.spec.findings import Finding, Findings
from reconciler.spec.rules_busifavor import busifavor_creation_rules, busifavor_rules
from reconciler.spec.rules_favor import favor_creation_rules, favor_rules
from reconciler.spec.stock import KIND_LABELS, KIND_MODELS, BusifavorStock, FavorStock, Stock

__all__ = [
    "KIND_LABELS",
    "KIND_MODELS",
    "BusifavorStock",
    "FavorStock",
    "Finding",
    "Stock",
    "creation_rules",
    "stock_rules",
]


def stock_rules(stock: Stock) -> list[Finding]:
    """Every time-independent rule for a stock that passed the shape checks."""
    out = Findings(("spec",))
    if isinstance(stock, FavorStock):
        favor_rules(stock.spec, stock.merchant, out)
    else:
        busifavor_rules(stock.spec, stock.merchant, out)
    return out.items


def creation_rules(stock: Stock, now: datetime) -> list[Finding]:
    """Clock-dependent rules; the planner applies them only to stocks still to be created."""
    out = Findings(("spec",))
    if isinstance(stock, FavorStock):
        favor_creation_rules(stock.spec, now, out)
    else:
        busifavor_creation_rules(stock.spec, now, out)
    return out.items
