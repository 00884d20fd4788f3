"""The state never silently empties, never loses a backup, and fails with a sentence, not a
traceback (issue 10: defects 1, 3, 5 and 6, the storage part)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from uuid import UUID

import pytest

from reconciler.errors import StateError
from reconciler.state import (
    State,
    StateDataError,
    StateStore,
    StockState,
)

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
MCH = "1900000001"
LINEAGE_A, LINEAGE_B = str(UUID(int=1)), str(UUID(int=2))


class FixedClock:
    def now(self) -> datetime:
        return T0


def uuids(start: int) -> Iterator[UUID]:
    for n in count(start):
        yield UUID(int=n)


def make_store(path: Path) -> StateStore:
    lineages, lock_ids = uuids(1), uuids(1000)
    return StateStore(
        path,
        FixedClock(),
        lineage_source=lambda: next(lineages),
        lock_id_source=lambda: next(lock_ids),
    )


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return make_store(tmp_path / "state.json")


def created(state: State, id: str, stock_id: str) -> State:
    stock = StockState.new(id, "favor", MCH)
    state = state.with_stock(stock)
    body = {"stock_name": id, "out_request_no": stock.out_request_no}
    state = state.record_sent(id, body, T0)
    return state.record_created(id, stock_id, T0)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message, message
    assert "Traceback" not in message
    return message


# --- defect 3: two ids never share one remote stock -------------------------------------------


def test_two_ids_sharing_a_stock_id_are_refused_on_load(store: StateStore) -> None:
    state = created(created(State.new(LINEAGE_A), "spring", "10000001"), "summer", "10000003")
    store.save(state)
    data = json.loads(store.path.read_text())
    data["stocks"]["summer"]["stock_id"] = "10000001"  # the one-bit flip of the issue
    store.path.write_text(json.dumps(data))
    with pytest.raises(StateError) as raised:
        store.load()
    message = str(raised.value)
    assert "10000001" in message
    assert "spring" in message
    assert "summer" in message


def test_two_ids_sharing_a_stock_id_are_refused_on_update() -> None:
    state = created(State.new(LINEAGE_A), "spring", "10000001")
    with pytest.raises(StateDataError, match=r"10000001.*spring.*summer|10000001.*summer.*spring"):
        created(state, "summer", "10000001")
