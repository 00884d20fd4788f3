"""What the engine and the applier need from wherever the state is kept.

Two backends implement it: `store.StateStore` (a local JSON snapshot plus an append-only
journal, the default) and `postgres.PostgresStateStore` (one row per stock). Both keep the
same guarantees: lineage and serial, a save is durable when it returns (so an intent saved
before a send survives a crash), never torn, and never an empty state made up while
something shows that one existed (`StateMissingError`).

`delta` (pure) is how a backend writes O(changed stocks): pure updates of `State` keep every
untouched `StockState` object as it was, so the stocks that changed are those that are not
the same object any more.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, islice
from typing import Protocol

from reconciler.errors import StateError
from reconciler.state.lock import LockInfo
from reconciler.state.model import State, StockState


class StateMissingError(StateError):
    """The state does not exist. `evidence` lists what shows a state was kept there (or is
    being written): files beside a state file, rows of a PostgreSQL schema; with any of them,
    no empty state is made up."""

    def __init__(self, message: str, evidence: Sequence[object]) -> None:
        super().__init__(message)
        self.evidence = evidence


class StateBackend(Protocol):
    """A place the state is kept. One writer at a time per lock scope (the applier saves
    under its own lock); `save` returns only when the new state is durable."""

    @property
    def location(self) -> str:
        """Where the state is, for messages: a path, or a PostgreSQL schema (never a DSN)."""
        ...

    def load(self, *, create_if_missing: bool = False, init: bool = False) -> State:
        """The stored state. Missing: a new state only with `create_if_missing` and no
        evidence of an earlier one (`init` starts one anyway); else StateMissingError."""
        ...

    def save(self, state: State, *, previous: State | None = None) -> State:
        """Durably write `state` with a higher serial and return what was written.

        Only the stocks that are not the same objects as in the stored state are written. The
        stored state is what this backend last loaded or saved, when that has `state`'s
        lineage and serial; else `previous`, which must then be exactly the stored state
        `state` was derived from by pure updates; else everything is written. (Callers that
        keep unsaved changes in memory, as the applier does, pass no `previous`.)"""
        ...

    def replace(self, state: State, *, force: bool = False) -> State:
        """Import a whole state (`state push`). Refuses another lineage unless `force`, and an
        older serial of the same lineage unless `force`; the replaced state is kept aside."""
        ...

    def lock(
        self,
        command: str,
        holder: str | None = None,
        *,
        wait_seconds: float = 0.0,
        merchants: Collection[str] | None = None,
    ) -> contextlib.AbstractContextManager[LockInfo]:
        """Hold the state's lock for the block: the whole state, or with `merchants` only
        those merchants' stocks (where the backend can scope; otherwise the whole state)."""
        ...

    def read_lock(self) -> LockInfo | None: ...

    def unlock(self, lock_id: str) -> LockInfo:
        """Break the lock whose id is `lock_id` (`reconciler state unlock`)."""
        ...

    def close(self) -> None:
        """Release connections; the state itself is already durable."""
        ...


@dataclass(frozen=True)
class Delta:
    """What a save must write: stocks set (a value) or removed (None), and the retired
    numbers when they changed."""

    stocks: Mapping[str, StockState | None]
    retired: Mapping[str, str] | None

    @property
    def size(self) -> int:
        return len(self.stocks) + (0 if self.retired is None else 1)


def delta(base: State, new: State) -> Delta:
    """The changes from `base` to `new`, by identity (values that are the same object are
    unchanged). Runs in C for the common shapes: the same ids in the same order, or new ids
    appended (what `with_stock` produces)."""
    old, cur = base.stocks, new.stocks
    changed: dict[str, StockState | None] = {}
    if cur is not old:
        common = min(len(old), len(cur))
        same_keys = all(map(operator.is_, islice(cur.keys(), common), islice(old.keys(), common)))
        if same_keys and len(cur) >= len(old):
            keys = islice(cur.keys(), common)
            moved = compress(keys, map(operator.is_not, cur.values(), old.values()))
            for key in moved:
                changed[key] = cur[key]
            for key in islice(cur.keys(), common, None):
                changed[key] = cur[key]
        else:
            for key, value in cur.items():
                if old.get(key) is not value:
                    changed[key] = value
            for key in old.keys() - cur.keys():
                changed[key] = None
    retired = None if new.retired is base.retired or new.retired == base.retired else new.retired
    return Delta(changed, retired)


def iter_merchants(d: Delta, base: State) -> Iterator[str]:
    """The merchants whose stocks `d` touches (removed stocks count by their old entry)."""
    for key, value in d.stocks.items():
        entry = value if value is not None else base.stocks.get(key)
        if entry is not None:
            yield entry.merchant
