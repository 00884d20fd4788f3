"""The `state` use cases: inspect and repair the state without creating anything.

Every change goes through the state model's validated updates, under the state lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.engine.workspace import Workspace, clients_for
from reconciler.errors import ApiError, ConfigError, StateError
from reconciler.kinds import FieldDiff, kind_of
from reconciler.spec.common import parse_rfc3339
from reconciler.state.backend import StateBackend
from reconciler.state.lock import LockInfo
from reconciler.state.model import State, StockState
from reconciler.state.store import parse_state, render_state


def read(store: StateBackend) -> State:
    return store.load()


def remove(store: StateBackend, id: str) -> State:
    """Stop tracking a stock; its create number is retired, never given out again."""
    with store.lock(f"state rm {id}"):
        return store.save(store.load().without_stock(id))


def rename(store: StateBackend, old: str, new: str) -> State:
    """Move a stock to a new id, keeping its numbers and stock_id; WeChat Pay is not called."""
    with store.lock(f"state mv {old} {new}"):
        return store.save(store.load().renamed(old, new))


def unlock(store: StateBackend, lock_id: str) -> LockInfo:
    return store.unlock(lock_id)


def pull(store: StateBackend) -> str:
    """The state as today's JSON state file (what `state push` and a local state read)."""
    return render_state(store.load().to_data()) + "\n"


def push(store: StateBackend, raw: bytes, name: str, *, force: bool = False) -> State:
    """Import a JSON state file into the backend, under the lock; refuses another lineage
    (or an older serial) unless `force`, and keeps what it replaces."""
    try:
        incoming = parse_state(raw)
    except StateError as exc:
        raise StateError(f"{name} {exc}; nothing was pushed") from None
    with store.lock("state push"):
        return store.replace(incoming, force=force)


@dataclass(frozen=True)
class Imported:
    id: str
    stock_id: str
    facts: dict[str, Any]
    differences: list[FieldDiff]
    """Fields where WeChat Pay holds other values than the file says (before: remote)."""
    serial: int


def import_stock(ws: Workspace, id: str, stock_id: str) -> Imported:
    """Adopt an existing remote stock for the file with `id`, after reading it from WeChat Pay.

    Four starting points: a create still in doubt (settled with this stock_id); an entry that
    was never created (adopted); no entry (a new one, with a number never used); an entry that
    already has a stock (refused: `state rm` first)."""
    desired = next((d.stock for d in ws.desired if d.stock.id == id), None)
    if desired is None:
        raise ConfigError(f"no stock file has id {id!r}; write its file first, then import")
    kind = kind_of(desired.kind)
    client = clients_for(ws, [desired.merchant])[desired.merchant]
    try:
        detail = kind.detail(client, stock_id, desired.merchant)
    except ApiError as exc:
        raise ApiError(f"cannot import {stock_id}: {exc}") from exc
    finally:
        client.close()
    with ws.store.lock(f"state import {id} {stock_id}"):
        current = ws.load_state()
        now = ws.runtime.clock.now()
        owner = next(
            (s.id for s in current.stocks.values() if s.stock_id == stock_id and s.id != id), None
        )
        if owner is not None:
            raise StateError(
                f"{stock_id} is already in the state as {owner!r}; one remote stock cannot belong to two stock files. Check the stock_id (renaming an id is `reconciler state mv`)"
            )
        entry = current.stocks.get(id)
        if entry is not None and entry.stock_id is not None:
            raise StateError(
                f"{id!r} is already in the state as {entry.stock_id}; `reconciler state rm {id}` first if you mean to replace it"
            )
        if entry is not None and entry.pending is not None:
            created = _time(str(detail.get("create_time") or ""), now)
            updated = current.record_created(id, stock_id, created)
        else:
            if entry is None:
                generation = current.free_generation(desired.merchant, kind.name, id)  # type: ignore[arg-type]
                entry = StockState.new(id, kind.name, desired.merchant, generation)  # type: ignore[arg-type]
                current = current.with_stock(entry)
            body = kind.create_body(desired, entry.out_request_no)
            # The file was written by hand: what the detail does not show is not checked
            # against the stock, so it is unknown at import (as `reconciler import` marks it).
            updated = current.adopt(id, stock_id, body, kind.unknown_paths(detail))
        updated = updated.record_observed(id, detail, now)
        saved = ws.store.save(updated)
    stock = saved.stock(id)
    applied = stock.applied_body or stock.sent_body or {}
    return Imported(id, stock_id, kind.facts(detail), kind.drifted(applied, detail), saved.serial)


def _time(value: str, fallback: datetime) -> datetime:
    try:
        return parse_rfc3339(value)
    except ValueError:
        return fallback
