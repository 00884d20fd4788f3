"""What the engine and the applier need from wherever the state is kept.

Two backends implement it: `store.StateStore` (a local JSON snapshot plus an append-only
journal, the default) and `postgres.PostgresStateStore` (one row per stock). Both keep the
same guarantees: lineage and serial, a save is durable when it returns (so an intent saved
before a send survives a crash), never torn, and never an empty state made up while
something shows that one existed (`StateMissingError`).

`delta` (pure) is how a backend writes O(changed stocks): the pure updates of `State` record
the ids they touch since the state they started from (`State.changed_since`), so when that
state is the stored one only those ids are looked at. Otherwise (a state derived some other
way) untouched `StockState` objects are still the same objects, and a comparison by identity
over every stock finds the changed ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from reconciler.errors import StateError
from reconciler.state.lock import LockInfo
from reconciler.state.model import CallbackRecord, MediaImage, State, StockState


class WallClock(Protocol):
    """What a backend needs of the runtime's clock: the time, to stamp locks and set-asides."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


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
    retired_stock_ids: Mapping[str, str] | None = None
    """The remote stock_ids of retired numbers, when they changed (with `retired`)."""
    images: Mapping[str, Mapping[str, MediaImage]] | None = None
    """The uploaded images of each merchant whose images changed (all of that merchant's)."""
    callbacks: Mapping[str, CallbackRecord] | None = None
    """The merchants' notify URLs that changed, by `<mchid>/<kind>` (reconciler.callbacks);
    merged into the stored ones, never replacing them."""

    @property
    def size(self) -> int:
        return (
            len(self.stocks)
            + (0 if self.retired is None else 1)
            + (1 if self.images else 0)
            + (0 if self.callbacks is None else 1)
        )


@dataclass(frozen=True)
class Listed:
    """A state's ids and stocks as lists, kept by a backend for the next `delta`."""

    state: State
    keys: list[str]
    values: list[StockState]

    @classmethod
    def of(cls, state: State) -> Listed:
        return cls(state, list(state.stocks), list(state.stocks.values()))


def tracked_delta(base: State, new: State) -> Delta | None:
    """The changes from `base` to `new` from the ids `new`'s pure updates recorded, in
    O(changed); None when `new` was not derived from `base` itself by pure updates."""
    ids = new.changed_since(base)
    if ids is None:
        return None
    old, cur = base.stocks, new.stocks
    changed: dict[str, StockState | None] = {}
    for key in sorted(ids):
        value = cur.get(key)
        if value is None:
            if key in old:
                changed[key] = None
        elif old.get(key) is not value:
            changed[key] = value
    return Delta(changed, *_side_changes(base, new))


def _side_changes(
    base: State, new: State
) -> tuple[
    Mapping[str, str] | None,
    Mapping[str, str] | None,
    Mapping[str, Mapping[str, MediaImage]] | None,
    Mapping[str, CallbackRecord] | None,
]:
    """What changed beside the stocks: the retired numbers (whole), the images of each
    merchant whose images changed, and the notify URLs that changed (entries are never
    removed, and runs scoped to other merchants write theirs meanwhile)."""
    old_retired, new_retired = base.retired, new.retired
    retired = None if new_retired is old_retired or new_retired == old_retired else new_retired
    old_ids, new_ids = base.retired_stock_ids, new.retired_stock_ids
    retired_ids = None if new_ids is old_ids or new_ids == old_ids else new_ids
    old_images, new_images = base.images, new.images
    images = None
    if new_images is not old_images and new_images != old_images:
        images = {m: v for m, v in new_images.items() if old_images.get(m) != v}
    old_cb, new_cb = base.callbacks, new.callbacks
    callbacks = None
    if new_cb is not old_cb and new_cb != old_cb:
        callbacks = {k: v for k, v in new_cb.items() if old_cb.get(k) != v}
    return retired, retired_ids, images, callbacks


def delta(base: State | Listed, new: State | Listed) -> Delta:
    """The changes from `base` to `new`: the stocks that are not the same (or an equal)
    object. For the common shapes (the same ids in the same order, or new ids appended, which
    is what `with_stock` produces) the unchanged runs are skipped by list comparisons in C,
    whose identity shortcut makes them cost a pointer compare per stock."""
    tracked = tracked_delta(
        base.state if isinstance(base, Listed) else base,
        new.state if isinstance(new, Listed) else new,
    )
    if tracked is not None:
        return tracked
    b = base if isinstance(base, Listed) else Listed.of(base)
    n = new if isinstance(new, Listed) else Listed.of(new)
    old, cur = b.state.stocks, n.state.stocks
    changed: dict[str, StockState | None] = {}
    if cur is not old:
        old_keys, cur_keys = b.keys, n.keys
        common = min(len(old_keys), len(cur_keys))
        if len(cur_keys) >= len(old_keys) and cur_keys[:common] == old_keys:
            positions: list[int] = []
            values = n.values if len(n.values) == common else n.values[:common]
            _differing(values, b.values, 0, common, positions)  # type: ignore[arg-type]
            for i in positions:
                changed[cur_keys[i]] = cur[cur_keys[i]]
            for key in cur_keys[common:]:
                changed[key] = cur[key]
        else:
            for key, value in cur.items():
                if old.get(key) is not value:
                    changed[key] = value
            for key in old.keys() - cur.keys():
                changed[key] = None
    return Delta(changed, *_side_changes(b.state, n.state))


def _differing(a: list[object], b: list[object], lo: int, hi: int, out: list[int]) -> None:
    if (a == b) if (lo, hi) == (0, len(a)) else (a[lo:hi] == b[lo:hi]):
        return
    if hi - lo <= 16:
        out.extend(i for i in range(lo, hi) if a[i] is not b[i] and a[i] != b[i])
        return
    mid = (lo + hi) // 2
    _differing(a, b, lo, mid, out)
    _differing(a, b, mid, hi, out)


def iter_merchants(d: Delta, base: State) -> Iterator[str]:
    """The merchants whose stocks `d` touches (removed stocks count by their old entry)."""
    for key, value in d.stocks.items():
        entry = value if value is not None else base.stocks.get(key)
        if entry is not None:
            yield entry.merchant
    yield from d.images or ()
    yield from (key.split("/", 1)[0] for key in d.callbacks or ())
