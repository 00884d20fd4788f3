"""The state never silently empties, never loses a backup, and fails with a sentence, not a
traceback (issue 10: defects 1, 3, 5 and 6, the storage part)."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from reconciler.emulator.store import save_atomically
from reconciler.errors import StateError
from reconciler.fsutil import temp_path
from reconciler.state.lock import LockInfo, StateLockedError
from reconciler.state.model import State, StateDataError, StockState
from reconciler.state.store import StateMissingError, StateStore, parse_state

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


def full_history(store: StateStore) -> State:
    """Two saves of lineage A, so that `.backup` holds serial 1 and the file serial 2."""
    state = store.save(created(State.new(LINEAGE_A), "spring", "10000001"))
    return store.save(state)


# --- defect 1: a missing state with evidence is never read as empty --------------------------


def test_missing_state_with_a_backup_is_refused_even_when_creation_is_allowed(
    store: StateStore,
) -> None:
    full_history(store)
    store.path.unlink()
    with pytest.raises(StateMissingError) as raised:
        store.load(create_if_missing=True)
    message = str(raised.value)
    assert isinstance(raised.value, StateError)
    assert str(store.backup_path) in message
    assert f"cp {store.backup_path} {store.path}" in message
    assert "--init-state" in message
    assert names(store.path.parent) == ["state.json.backup"]  # nothing written meanwhile


def test_missing_state_with_a_lock_of_another_run_is_refused(store: StateStore) -> None:
    other = make_store(store.path)
    with other.lock("apply", holder="ci@runner-7:4242") as held:
        with pytest.raises(StateMissingError) as raised:
            store.load(create_if_missing=True)
        message = str(raised.value)
        assert str(store.lock_path) in message
        assert "ci@runner-7:4242" in message
        assert held.lock_id in message


def test_our_own_lock_is_not_evidence(store: StateStore) -> None:
    with store.lock("apply"):
        state = store.load(create_if_missing=True)
        assert (state.serial, state.stocks) == (0, {})
        store.save(state)
    assert store.load().serial == 1


def test_missing_state_with_a_temporary_file_is_refused(store: StateStore) -> None:
    torn = temp_path(store.path, pid=dead_pid())
    torn.write_bytes(b'{"format_version": 1, "lin')
    legacy = store.path.parent / ".state.json.0123456789abcdef.tmp"
    legacy.write_bytes(b"")
    with pytest.raises(StateMissingError) as raised:
        store.load(create_if_missing=True)
    message = str(raised.value)
    assert str(torn) in message
    assert str(legacy) in message
    assert "--init-state" in message


def test_a_kept_backup_of_another_lineage_is_evidence(store: StateStore) -> None:
    kept = store.path.with_name(f"state.json.backup.{LINEAGE_A}.4")
    kept.write_text("{}")
    with pytest.raises(StateMissingError, match=re.escape(str(kept))):
        store.load(create_if_missing=True)


def test_a_fresh_folder_still_starts_a_new_state(tmp_path: Path) -> None:
    store = make_store(tmp_path / "not" / "yet" / "state.json")
    state = store.load(create_if_missing=True)
    assert (state.serial, state.lineage, state.stocks) == (0, LINEAGE_A, {})


def test_init_starts_a_new_state_on_purpose_and_keeps_the_old_backup(store: StateStore) -> None:
    full_history(store)
    old_backup = store.backup_path.read_bytes()
    store.path.unlink()
    fresh = StateStore(store.path, FixedClock(), lineage_source=lambda: UUID(LINEAGE_B))
    state = fresh.load(create_if_missing=True, init=True)
    assert (state.lineage, state.serial, state.stocks) == (LINEAGE_B, 0, {})
    state = fresh.save(state)
    state = fresh.save(state)  # this save would have replaced `.backup` with lineage B
    kept = store.path.with_name(f"state.json.backup.{LINEAGE_A}.1")
    assert kept.read_bytes() == old_backup
    assert parse_state(store.backup_path.read_bytes()).lineage == LINEAGE_B
    assert names(store.path.parent) == ["state.json", "state.json.backup", kept.name]


def test_init_never_replaces_an_existing_state(store: StateStore) -> None:
    saved = full_history(store)
    assert store.load(create_if_missing=True, init=True) == saved


def test_save_sets_aside_a_backup_of_another_lineage(store: StateStore) -> None:
    # A backup restored by hand from elsewhere, or left by a deleted state: never overwritten.
    foreign = make_store(store.path.with_name("other.json"))
    foreign.save(foreign.save(created(State.new(LINEAGE_B), "other", "10000009")))
    store.backup_path.write_bytes(foreign.backup_path.read_bytes())
    state = store.save(created(State.new(LINEAGE_A), "spring", "10000001"))
    store.save(state)
    kept = store.path.with_name(f"state.json.backup.{LINEAGE_B}.1")
    assert kept.read_bytes() == foreign.backup_path.read_bytes()
    assert parse_state(store.backup_path.read_bytes()).lineage == LINEAGE_A


def test_save_sets_aside_an_unreadable_backup(store: StateStore) -> None:
    state = store.save(created(State.new(LINEAGE_A), "spring", "10000001"))
    store.backup_path.write_bytes(b"not a state")
    store.save(state)
    kept = [n for n in names(store.path.parent) if n.startswith("state.json.backup.unreadable.")]
    assert len(kept) == 1
    assert (store.path.parent / kept[0]).read_bytes() == b"not a state"


def test_a_kept_backup_is_never_overwritten_by_a_different_one(store: StateStore) -> None:
    state = store.save(created(State.new(LINEAGE_A), "spring", "10000001"))
    foreign = make_store(store.path.with_name("other.json"))
    foreign.save(foreign.save(created(State.new(LINEAGE_B), "other", "10000009")))
    store.backup_path.write_bytes(foreign.backup_path.read_bytes())
    kept = store.path.with_name(f"state.json.backup.{LINEAGE_B}.1")
    kept.write_bytes(b"something else")
    before = store.path.read_bytes()
    with pytest.raises(StateError, match="already exists") as raised:
        store.save(state)
    assert str(kept) in str(raised.value)
    assert kept.read_bytes() == b"something else"
    assert store.backup_path.read_bytes() == foreign.backup_path.read_bytes()
    assert store.path.read_bytes() == before


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


# --- defect 5: OS errors become one-line StateErrors ------------------------------------------


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a folder read-only. Root ignores the mode bits, so then the calls that would
    modify the folder fail the way the kernel makes them fail for anyone else."""
    folders: list[Path] = []

    def inside(path: Any) -> bool:
        return any(Path(os.fsdecode(path)).parent == f for f in folders)

    def deny(real: Callable[..., Any], *which: int) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if any(inside(args[i]) for i in which):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(args[0]))
            return real(*args, **kwargs)

        return call

    real_open = os.open

    def guarded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    def make(folder: Path) -> None:
        folder.chmod(0o555)
        folders.append(folder)
        if os.access(folder, os.W_OK):
            monkeypatch.setattr(os, "open", guarded_open)
            monkeypatch.setattr(os, "link", deny(os.link, 0, 1))
            monkeypatch.setattr(os, "replace", deny(os.replace, 0, 1))
            monkeypatch.setattr(os, "rename", deny(os.rename, 0, 1))
            monkeypatch.setattr(os, "unlink", deny(os.unlink, 0))
            monkeypatch.setattr(os, "mkdir", deny(os.mkdir, 0))

    yield make
    monkeypatch.undo()
    for folder in folders:
        folder.chmod(0o755)


def test_lock_in_a_read_only_folder_is_a_state_error(
    store: StateStore, read_only: Callable[[Path], None]
) -> None:
    read_only(store.path.parent)
    with pytest.raises(StateError) as raised, store.lock("apply"):
        pytest.fail("must not get the lock")
    message = one_line(raised.value)
    assert f"cannot create the lock file {store.lock_path}: Permission denied" in message
    assert f"make the folder {store.path.parent} writable" in message
    assert names(store.path.parent) == []


def test_state_folder_that_cannot_be_created_is_a_state_error(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    read_only(tmp_path)
    store = make_store(tmp_path / "new" / "state.json")
    with pytest.raises(StateError) as raised, store.lock("apply"):
        pytest.fail("must not get the lock")
    message = one_line(raised.value)
    assert f"cannot create the state folder {tmp_path / 'new'}: Permission denied" in message


def test_save_in_a_read_only_folder_is_a_state_error(
    store: StateStore, read_only: Callable[[Path], None]
) -> None:
    state = full_history(store)
    before = store.path.read_bytes()
    read_only(store.path.parent)
    with pytest.raises(StateError) as raised:
        store.save(state)
    message = one_line(raised.value)
    assert "Permission denied" in message
    assert f"make the folder {store.path.parent} writable" in message
    assert "previous version is intact" in message
    assert store.path.read_bytes() == before


def test_lock_that_cannot_be_released_or_broken_is_a_state_error(
    store: StateStore, read_only: Callable[[Path], None]
) -> None:
    with pytest.raises(StateError) as raised, store.lock("state rm spring") as held:
        read_only(store.path.parent)  # e.g. remounted read-only during the run
    message = one_line(raised.value)
    assert f"cannot remove the lock file {store.lock_path}: Permission denied" in message
    assert f"reconciler state unlock {held.lock_id}" in message
    with pytest.raises(StateError) as raised:
        store.unlock(held.lock_id)
    assert f"cannot remove the lock file {store.lock_path}" in one_line(raised.value)


class FullDisk:
    """A file whose writes fail as they do on a full disk, after writing part of the data."""

    def __init__(self, real: Callable[..., Any], fd: int, mode: str) -> None:
        self.f = real(fd, mode)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_during_a_save_keeps_the_previous_file(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = full_history(store)
    before, backup = store.path.read_bytes(), store.backup_path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen, fd, mode))
    with pytest.raises(StateError) as raised:
        store.save(state)
    monkeypatch.undo()
    message = one_line(raised.value)
    assert "No space left on device; free some space" in message
    assert "previous version is intact" in message
    assert store.path.read_bytes() == before
    assert store.backup_path.read_bytes() == backup
    assert names(store.path.parent) == ["state.json", "state.json.backup"]


def test_full_disk_while_taking_the_lock(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen, fd, mode))
    with pytest.raises(StateError) as raised, store.lock("apply"):
        pytest.fail("must not get the lock")
    monkeypatch.undo()
    message = one_line(raised.value)
    assert f"cannot create the lock file {store.lock_path}: No space left on device" in message
    assert names(store.path.parent) == []


# --- defect 6: leftovers and a stale lock -----------------------------------------------------


def test_temporary_files_of_dead_processes_are_removed_by_the_next_save(
    store: StateStore,
) -> None:
    state = full_history(store)
    dead = dead_pid()
    stale = [temp_path(store.path, pid=dead), temp_path(store.backup_path, pid=dead)]
    alive = temp_path(store.path, pid=os.getpid())  # a save of this very process, under way
    elsewhere = temp_path(store.path, pid=dead, host="another-host")  # pid means nothing here
    legacy = store.path.parent / ".state.json.0123456789abcdef.tmp"  # owner unknown
    for path in [*stale, alive, elsewhere, legacy]:
        path.write_bytes(b"{")
    store.save(state)
    left = names(store.path.parent)
    assert [p.name for p in stale if p.name in left] == []
    assert {alive.name, elsewhere.name, legacy.name} <= set(left)
    assert str(dead) in stale[0].name


def test_emulator_save_removes_temporary_files_of_dead_processes(tmp_path: Path) -> None:
    path = tmp_path / "emulator.json"
    stale = temp_path(path, pid=dead_pid())
    alive = temp_path(path, pid=os.getpid())
    stale.write_bytes(b"{")
    alive.write_bytes(b"{")
    save_atomically(path, {"v": 1})
    assert names(tmp_path) == sorted([alive.name, "emulator.json"])


def write_stale_lock(store: StateStore) -> LockInfo:
    info = LockInfo(
        lock_id="stale-lock-1",
        holder="alice@here:1",
        command="apply",
        created_at=T0 - timedelta(hours=1),
        host=socket.gethostname(),
        pid=dead_pid(),
    )
    store.lock_path.write_text(info.model_dump_json())
    return info


def test_lock_wait_gives_up_at_once_on_a_stale_lock(store: StateStore) -> None:
    info = write_stale_lock(store)
    started = time.monotonic()
    with pytest.raises(StateLockedError) as raised, store.lock("apply", wait_seconds=30):
        pytest.fail("must not get the lock")
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert raised.value.stale is True
    assert f"no process {info.pid} is running on this host" in message
    assert "waiting" in message
    assert "reconciler state unlock stale-lock-1" in message
    assert store.read_lock() == info  # reported, never stolen
