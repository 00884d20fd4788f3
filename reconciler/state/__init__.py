"""The state file: what reconciler created, what it sent and what is still in flight.

`model` holds the pure values and their updates, `store` the file I/O (atomic save, backup,
lineage/serial guard) and `lock` the `<state>.lock` protocol.
"""

from __future__ import annotations

from reconciler.state.lock import LockInfo, StateLockedError
from reconciler.state.model import (
    FORMAT_VERSION,
    Action,
    Kind,
    Pending,
    State,
    StateDataError,
    StockState,
)
from reconciler.state.store import Clock, StateStore, parse_state

__all__ = [
    "FORMAT_VERSION",
    "Action",
    "Clock",
    "Kind",
    "LockInfo",
    "Pending",
    "State",
    "StateDataError",
    "StateLockedError",
    "StateStore",
    "StockState",
    "parse_state",
]
