"""Stock models (the API create bodies) and their documented rules. Pure: no I/O, no clock.

Each kind's behaviour (its calls, budget, which fields can change) lives in `reconciler.kinds`,
which reads the traits declared on these models' fields.
"""

from __future__ import annotations

from reconciler.spec.findings import Finding
from reconciler.spec.stock import BusifavorStock, FavorStock, Stock

__all__ = ["BusifavorStock", "FavorStock", "Finding", "Stock"]
