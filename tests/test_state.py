from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from reconciler.errors import StateError
from reconciler.ids import body_digest, out_request_no
from reconciler.operation import OpType
from reconciler.state.lock import LockInfo, StateLockedError
from reconciler.state.model import State, StateDataError, StockState
from reconciler.state.store import StateStore, parse_state, render_state

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
MCH = "1900000001"


class FixedClock:
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def uuids(start: int = 1) -> Iterator[UUID]:
    for n in count(start):
        yield UUID(int=n)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store(tmp_path: Path, clock: FixedClock) -> StateStore:
    lineages, lock_ids = uuids(1), uuids(1000)
    return StateStore(
        tmp_path / "state.json",
        clock,
        lineage_source=lambda: next(lineages),
        lock_id_source=lambda: next(lock_ids),
    )


def create_body(stock: StockState, **extra: Any) -> dict[str, Any]:
    return {
        "stock_name": "春季满减券",
        "belong_merchant": stock.merchant,
        "out_request_no": stock.out_request_no,
        "stock_send_rule": {"max_coupons": 100, "natural_person_limit": False},
        **extra,
    }


def sample_state(lineage: str = str(UUID(int=1))) -> State:
    state = State.new(lineage)
    for id, kind in [("spring-sale", "busifavor"), ("welcome", "favor")]:
        state = state.with_stock(StockState.new(id, kind, MCH))  # type: ignore[arg-type]
    body = create_body(state.stock("spring-sale"))
    state = state.record_sent("spring-sale", body, T0)
    state = state.record_created("spring-sale", "1212000000000001", T0 + timedelta(seconds=2))
    state = state.record_observed("spring-sale", {"status": "ONGOING", "max_coupons": 100}, T0)
    return state.record_sent("welcome", create_body(state.stock("welcome")), T0)


def other_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in {"state.json"})


# --- the pure model ---------------------------------------------------------------------------


def test_new_stock_gets_its_deterministic_create_number() -> None:
    stock = StockState.new("spring-sale", "busifavor", MCH, generation=2)
    assert stock.out_request_no == out_request_no(MCH, "busifavor", "spring-sale", 2)
    assert (stock.stock_id, stock.pending, stock.sent_body) == (None, None, None)


def test_record_sent_keeps_the_exact_body_and_marks_the_create_pending() -> None:
    state = State.new(str(UUID(int=1))).with_stock(StockState.new("s", "favor", MCH))
    body = create_body(state.stock("s"))
    sent = state.record_sent("s", body, T0)
    stock = sent.stock("s")
    assert stock.sent_body == body
    assert stock.sent_digest == body_digest(body)
    assert stock.pending is not None
    assert (stock.pending.action, stock.pending.request_no, stock.pending.attempts) == (
        "create",
        stock.out_request_no,
        1,
    )
    # A retry of the same body counts an attempt and keeps the first start time.
    retried = sent.record_sent("s", body, T0 + timedelta(minutes=5)).stock("s")
    assert retried.pending is not None
    assert (retried.pending.attempts, retried.pending.started_at) == (2, T0)
    # The original state value is untouched, and so is the state when the caller's body changes.
    assert state.stock("s").pending is None
    body["stock_send_rule"]["max_coupons"] = 1
    assert stock.sent_body is not None
    assert stock.sent_body["stock_send_rule"] == {"max_coupons": 100, "natural_person_limit": False}


def test_a_different_body_under_the_same_number_is_refused() -> None:
    state = State.new(str(UUID(int=1))).with_stock(StockState.new("s", "favor", MCH))
    sent = state.record_sent("s", create_body(state.stock("s")), T0)
    with pytest.raises(StateError, match="already sent with a different create body"):
        sent.record_sent("s", create_body(state.stock("s"), comment="changed"), T0)
    with pytest.raises(StateError, match="carries out_request_no 'wrong'"):
        state.record_sent("s", {"out_request_no": "wrong"}, T0)


def test_record_created_settles_the_create() -> None:
    state = sample_state()
    stock = state.stock("spring-sale")
    assert stock.stock_id == "1212000000000001"
    assert stock.created_at == T0 + timedelta(seconds=2)
    assert stock.pending is None
    with pytest.raises(StateError, match="already recorded as 1212000000000001"):
        state.record_created("spring-sale", "999", T0)
    with pytest.raises(StateError, match="already created"):
        state.record_sent("spring-sale", create_body(stock), T0)


def test_pending_update_and_clear() -> None:
    state = sample_state()
    change = body_digest({"target_max_coupons": 200})
    number = "1900000001_BQ0_spring-sale_" + "0" * 32
    pending = state.set_pending("spring-sale", OpType.BUDGET, number, change, T0)
    assert pending.stock("spring-sale").pending is not None
    with pytest.raises(StateError, match="already has a pending budget"):
        pending.set_pending("spring-sale", OpType.MODIFY, number, change, T0)
    assert pending.clear_pending("spring-sale").stock("spring-sale").pending is None


def test_rename_keeps_numbers_and_remote_id() -> None:
    state = sample_state()
    moved = state.renamed("spring-sale", "spring-sale-2026")
    assert "spring-sale" not in moved.stocks
    old, new = state.stock("spring-sale"), moved.stock("spring-sale-2026")
    assert new.id == "spring-sale-2026"
    assert (new.out_request_no, new.stock_id, new.sent_body) == (
        old.out_request_no,
        old.stock_id,
        old.sent_body,
    )
    with pytest.raises(StateError, match="'welcome' is already in the state"):
        state.renamed("spring-sale", "welcome")
    with pytest.raises(ValueError, match="invalid stock id 'Bad Id'"):
        state.renamed("spring-sale", "Bad Id")
    with pytest.raises(StateError, match="no stock 'nope'"):
        state.renamed("nope", "x")


def test_removed_stock_numbers_are_never_given_out_again() -> None:
    state = sample_state()
    with pytest.raises(StateError, match="pending create"):
        state.without_stock("welcome")
    number = state.stock("spring-sale").out_request_no
    removed = state.without_stock("spring-sale")
    assert "spring-sale" not in removed.stocks
    assert removed.retired == {number: "spring-sale"}
    assert removed.request_no_in_use(number)
    # Re-adding the id must pick generation 1, or WeChat Pay would see the old number again.
    assert removed.free_generation(MCH, "busifavor", "spring-sale") == 1
    assert removed.free_generation(MCH, "favor", "fresh") == 0
    with pytest.raises(StateDataError, match="is retired"):
        removed.with_stock(StockState.new("spring-sale", "busifavor", MCH))


def test_renamed_away_id_cannot_reuse_the_number_either() -> None:
    moved = sample_state().renamed("spring-sale", "spring")
    assert moved.free_generation(MCH, "busifavor", "spring-sale") == 1


def test_data_round_trip() -> None:
    state = sample_state()
    data = state.to_data()
    assert State.from_data(json.loads(json.dumps(data))) == state
    assert data["stocks"]["spring-sale"]["created_at"] == "2026-05-01T09:30:02Z"
    assert data["stocks"]["welcome"]["pending"] == {
        "action": "create",
        "request_no": state.stock("welcome").out_request_no,
        "body_digest": body_digest(create_body(state.stock("welcome"))),
        "started_at": "2026-05-01T09:30:00Z",
        "attempts": 1,
        "outcome": None,
    }


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["stocks"].update(other=d["stocks"].pop("welcome")), "holds a stock whose id"),
        (lambda d: d["stocks"]["welcome"].update(sent_digest="sha256:0"), "does not match"),
        (lambda d: d["stocks"]["welcome"].update(generation="1"), "stocks.welcome.generation"),
        (lambda d: d["stocks"]["welcome"].update(created_at="2026-05-01T09:30:00"), "timezone"),
        (lambda d: d["stocks"]["welcome"].update(color="red"), "stocks.welcome.color"),
        (lambda d: d.update(lineage="not-a-uuid"), "is not a UUID"),
        (
            lambda d: d["stocks"]["welcome"].update(
                out_request_no=d["stocks"]["spring-sale"]["out_request_no"],
                sent_body=None,
                sent_digest=None,
                pending=None,
            ),
            "is used by both spring-sale and welcome",
        ),
    ],
)
def test_from_data_names_each_problem(mutate: Any, problem: str) -> None:
    data = sample_state().to_data()
    mutate(data)
    with pytest.raises(StateDataError, match=problem):
        State.from_data(data)


# --- load / save ------------------------------------------------------------------------------


def _counting_digests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the body digests the state model computes while validating."""
    import reconciler.state.model as model

    calls: list[int] = []

    def counted(body: Any) -> str:
        calls.append(1)
        return body_digest(body)

    monkeypatch.setattr(model, "body_digest", counted)
    return calls


def test_a_state_file_whose_bodies_passed_is_not_checked_again_until_a_byte_changes(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.parsecache import CheckedStates

    checked = CheckedStates(tmp_path / "cache")
    store = StateStore(tmp_path / "state.json", clock, checked=checked)
    saved = store.save(sample_state())
    calls = _counting_digests(monkeypatch)
    assert store.load() == saved
    first = len(calls)
    assert first == 2  # both recorded bodies checked, and the file remembered
    assert StateStore(tmp_path / "state.json", clock, checked=checked).load() == saved
    assert len(calls) == first  # same bytes: not checked again
    # A hand edit of a body (its digest left as it was) is a different file: checked, refused.
    data = json.loads(store.path.read_bytes())
    data["stocks"]["welcome"]["sent_body"]["stock_name"] = "edited"
    store.path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(StateError, match="sent_digest does not match sent_body"):
        StateStore(tmp_path / "state.json", clock, checked=checked).load()
    assert len(checked.keys()) == 1  # the refused file is not remembered


def test_the_check_is_skipped_only_for_what_this_reconciler_remembered(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.parsecache as parsecache

    checked = parsecache.CheckedStates(tmp_path / "cache")
    store = StateStore(tmp_path / "state.json", clock, checked=checked, journal=True)
    store.save(sample_state())
    store.load()
    calls = _counting_digests(monkeypatch)
    # Another version of reconciler (another fingerprint) checks in full.
    monkeypatch.setattr(parsecache, "fingerprint", lambda: "another version")
    store.load()
    assert len(calls) == 2
    # So does a load with a journal, whose records the file's digest does not cover.
    with store.lock("test"):
        state = store.load()
        store.save(state.record_observed("spring-sale", {"status": "PAUSED"}, T0), previous=state)
        assert store.journal_path.exists()
        calls.clear()
        reader = StateStore(tmp_path / "state.json", clock, checked=checked)
        reader.load()
        reader.load()
        assert len(calls) == 4
    # A damaged memo is no memo.
    store.load()  # the compacted file, remembered
    calls.clear()
    store.load()
    assert calls == []
    checked.path.write_bytes(b"\xff\xfe not ascii")
    store.load()
    assert len(calls) == 2


def test_missing_file_is_an_error_unless_creation_is_allowed(store: StateStore) -> None:
    with pytest.raises(StateError, match=r"does not exist.*first `reconciler apply`"):
        store.load()
    state = store.load(create_if_missing=True)
    assert (state.serial, state.lineage, state.stocks) == (0, str(UUID(int=1)), {})
    assert not store.path.exists()


def test_round_trip_through_the_file(store: StateStore) -> None:
    state = sample_state()
    saved = store.save(state)
    loaded = store.load()
    assert loaded == saved
    assert loaded.stocks == state.stocks
    text = store.path.read_text(encoding="utf-8")
    assert "春季满减券" in text  # stored as UTF-8, not \\u escapes
    assert json.loads(text) == saved.to_data()
    lines = text.splitlines()
    # One stock per line, in id order, so a state-branch diff shows which stocks changed.
    stock_lines = [line for line in lines if line.startswith("    ")]
    assert len(stock_lines) == len(saved.stocks)
    assert [json.loads("{" + line.strip().rstrip(",") + "}") for line in stock_lines] == [
        {k: v} for k, v in sorted(saved.to_data()["stocks"].items())
    ]
    assert text == render_state(saved.to_data()) + "\n"


def test_serial_rises_on_every_save(store: StateStore) -> None:
    state = store.init()
    assert state.serial == 1
    serials = []
    for n in range(4):
        state = store.save(state.with_stock(StockState.new(f"s{n}", "favor", MCH)))
        serials.append(state.serial)
        assert json.loads(store.path.read_text())["serial"] == state.serial
    assert serials == [2, 3, 4, 5]
    assert store.load().serial == 5
    with pytest.raises(StateError, match="already exists"):
        store.init()


def test_backup_holds_the_previous_version(store: StateStore) -> None:
    first = store.save(sample_state())
    assert not store.backup_path.exists()
    second = store.save(first.clear_pending("welcome"))
    assert parse_state(store.backup_path.read_bytes()) == first
    store.save(second.without_stock("welcome"))
    assert parse_state(store.backup_path.read_bytes()) == second
    assert other_files(store.path.parent) == ["state.json.backup"]


def test_first_file_mode_follows_the_umask(store: StateStore) -> None:
    old = os.umask(0o022)
    try:
        store.init()
    finally:
        os.umask(old)
    assert store.path.stat().st_mode & 0o777 == 0o644


VALID_STATE = json.dumps(sample_state().to_data(), indent=2).encode()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty (0 bytes)"),
        (b"  \n", "is empty (only whitespace)"),
        (VALID_STATE[: len(VALID_STATE) // 2], "is truncated"),
        (VALID_STATE[:-1], "is truncated"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not UTF-8 text"),
        (b"lineage = 1\n", "is not valid JSON: Expecting value at line 1 column 1"),
        (VALID_STATE + b"}", "is not valid JSON: Extra data"),
        (b"[1, 2]", "the top level is an array, expected an object"),
        (b"[" * 100_000, "is not a state file reconciler can read"),  # nested too deep
        (b'{"serial": ' + b"9" * 5000 + b"}", "is not a state file reconciler can read"),
        (b"\xef\xbb\xbf" + VALID_STATE, "is not valid JSON: Unexpected UTF-8 BOM"),
        (b'{"serial": 1}', "has no format_version"),
        (
            VALID_STATE.replace(b'"format_version": 1', b'"format_version": 2'),
            "has format_version 2, but this reconciler reads format_version 1 only: it was "
            "written by a newer reconciler. Upgrade reconciler",
        ),
        (
            VALID_STATE.replace(b'"format_version": 1', b'"format_version": "1"'),
            "has format_version '1', which no reconciler writes",
        ),
        (
            VALID_STATE.replace(b'"format_version": 1', b'"format_version": true'),
            "has format_version True, which no reconciler writes",
        ),
        (
            VALID_STATE.replace(b'"serial": 0', b'"serial": -4'),
            "does not match the state format: serial: Input should be greater than or equal to 0",
        ),
    ],
)
@pytest.mark.parametrize("with_backup", [True, False])
def test_damaged_file_is_an_error_with_the_way_out(
    store: StateStore, content: bytes, problem: str, with_backup: bool
) -> None:
    if with_backup:
        store.save(store.save(sample_state()))  # the second save leaves serial 1 as backup
    store.path.write_bytes(content)
    for create_if_missing in (False, True):  # never mistaken for a missing/empty state
        with pytest.raises(StateError) as info:
            store.load(create_if_missing=create_if_missing)
        message = str(info.value)
        assert message.startswith(f"state file {store.path} ")
        assert problem in message
        assert "Do not delete the file" in message
        if with_backup:
            assert f"{store.backup_path} (serial 1)" in message
            assert f"cp {store.backup_path} {store.path}" in message
        else:
            assert f"There is no backup ({store.backup_path} does not exist)" in message
    assert store.path.read_bytes() == content  # nothing was changed


def test_unusable_backup_is_reported(store: StateStore) -> None:
    store.path.write_bytes(b"{")
    store.backup_path.write_bytes(b"")
    with pytest.raises(StateError, match=r"(?s)is truncated.*backup .* is unusable too \(is empty"):
        store.load()


def test_missing_file_with_a_backup_points_at_it(store: StateStore) -> None:
    store.save(store.init())
    store.path.unlink()
    with pytest.raises(StateError, match=f"a backup exists: cp {store.backup_path}"):
        store.load()


def test_other_lineage_is_never_overwritten(store: StateStore, tmp_path: Path) -> None:
    store.save(sample_state(str(UUID(int=7))))
    before = store.path.read_bytes()
    with pytest.raises(StateError) as info:
        store.save(sample_state(str(UUID(int=8))))
    message = str(info.value)
    assert f"belongs to state lineage {UUID(int=7)}" in message
    assert f"this state is lineage {UUID(int=8)}" in message
    assert "Nothing was written" in message
    assert store.path.read_bytes() == before


def test_a_newer_file_on_disk_is_never_overwritten(store: StateStore) -> None:
    base = store.init()
    mine = store.load()
    store.save(base.with_stock(StockState.new("theirs", "favor", MCH)))
    before = store.path.read_bytes()
    with pytest.raises(StateError, match="at serial 2, but this run loaded serial 1"):
        store.save(mine.with_stock(StockState.new("mine", "favor", MCH)))
    assert store.path.read_bytes() == before


def test_file_damaged_after_load_is_not_overwritten(store: StateStore) -> None:
    state = store.init()
    store.path.write_text("garbage")
    with pytest.raises(StateError, match="became unreadable after this run loaded it"):
        store.save(state)
    assert store.path.read_text() == "garbage"


def test_private_keys_never_reach_the_file(store: StateStore) -> None:
    state = store.init()
    label = "PRIVATE" + " KEY"  # spelled apart so no committed file carries a PEM header
    key = f"-----BEGIN {label}-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END {label}-----"
    leaky = state.with_stock(StockState.new("s", "favor", MCH)).record_observed(
        "s", {"notes": ["ok", key]}, T0
    )
    before = store.path.read_bytes()
    with pytest.raises(StateError) as info:
        store.save(leaky)
    message = str(info.value)
    assert "stocks.s.observed.notes[1] contains 'PRIVATE KEY'" in message
    assert "MIIEvQ" not in message
    assert store.path.read_bytes() == before
    keyed = state.with_stock(StockState.new("s", "favor", MCH)).record_observed("s", {key: 1}, T0)
    with pytest.raises(StateError, match=r"stocks\.s\.observed \(one of its keys\)") as info:
        store.save(keyed)
    assert "MIIEvQ" not in str(info.value)


def test_failed_replace_leaves_the_old_file(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.save(sample_state())
    before = store.path.read_bytes()

    def broken_replace(src: Any, dst: Any) -> None:
        if Path(dst) == store.path:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    real_replace = os.replace
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StateError, match=r"No space left on device.*previous version is intact"):
        store.save(old.clear_pending("welcome"))
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert store.load() == old
    assert other_files(store.path.parent) == ["state.json.backup"]  # no temp left behind
    # And the store still works: the next save succeeds and its backup is the old version.
    store.save(old.clear_pending("welcome"))
    assert parse_state(store.backup_path.read_bytes()) == old


def test_torn_temp_file_leaves_the_old_file(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.save(sample_state())
    before = store.path.read_bytes()
    real_fdopen = os.fdopen

    class TornFile:
        """Writes half of what it is given, then the 'machine' fails."""

        def __init__(self, fd: int) -> None:
            self.f = real_fdopen(fd, "wb")

        def __enter__(self) -> TornFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: TornFile(fd))
    with pytest.raises(StateError, match="Input/output error"):
        store.save(old.clear_pending("welcome"))
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert other_files(store.path.parent) == []


def test_leftover_torn_temp_from_a_killed_run_is_harmless(store: StateStore) -> None:
    old = store.save(sample_state())
    torn = store.path.parent / ".state.json.0123456789abcdef.tmp"
    torn.write_bytes(store.path.read_bytes()[:100])
    assert store.load() == old
    assert store.save(old).serial == old.serial + 1


def test_backup_falls_back_to_a_copy_without_hard_links(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.save(sample_state())

    def no_links(src: Any, dst: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store.save(first)
    assert parse_state(store.backup_path.read_bytes()) == first
    assert store.backup_path.stat().st_ino != store.path.stat().st_ino


def test_backup_equal_to_current_after_a_failed_save_is_handled(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.save(sample_state())
    real_replace = os.replace

    def fail_main(src: Any, dst: Any) -> None:
        if Path(dst) == store.path:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_main)
    with pytest.raises(StateError):
        store.save(first)
    monkeypatch.undo()
    # Now .backup and state.json are one file; the next backup rename is a no-op in POSIX.
    assert store.backup_path.stat().st_ino == store.path.stat().st_ino
    store.save(first)
    assert other_files(store.path.parent) == ["state.json.backup"]


# --- the lock ---------------------------------------------------------------------------------


def test_lock_is_held_for_the_block_and_describes_its_holder(store: StateStore) -> None:
    with store.lock("apply") as info:
        on_disk = json.loads(store.lock_path.read_text())
        assert on_disk["lock_id"] == info.lock_id == str(UUID(int=1000))
        assert on_disk["command"] == "apply"
        assert on_disk["created_at"] == "2026-05-01T09:30:00Z"
        assert on_disk["holder"].endswith(f"@{socket.gethostname()}:{os.getpid()}")
        assert (on_disk["host"], on_disk["pid"]) == (socket.gethostname(), os.getpid())
        assert store.read_lock() == info
    assert not store.lock_path.exists()
    assert store.read_lock() is None
    assert other_files(store.path.parent) == []


def test_lock_is_released_when_the_block_fails(store: StateStore) -> None:
    with pytest.raises(KeyError, match="boom"), store.lock("apply"):
        raise KeyError("boom")
    assert not store.lock_path.exists()


def test_contention_names_holder_time_command_and_the_way_out(
    store: StateStore, clock: FixedClock
) -> None:
    with store.lock("apply", holder="ci@runner-7:4242") as held:
        clock.current = T0 + timedelta(minutes=3, seconds=5)
        with pytest.raises(StateLockedError) as info, store.lock("plan"):
            pytest.fail("must not get the lock")
        message = str(info.value)
        assert f"{store.path} is locked by ci@runner-7:4242, running `apply`" in message
        assert "since 2026-05-01T09:30:00+00:00 (3m05s ago)" in message
        assert f"lock id {held.lock_id}" in message
        assert f"reconciler state unlock {held.lock_id}" in message
        assert "stale" not in message
        assert info.value.lock == held
        assert info.value.stale is False
    assert not store.lock_path.exists()


def test_waiting_for_the_lock(store: StateStore, tmp_path: Path, clock: FixedClock) -> None:
    other = StateStore(store.path, clock)
    with other.lock("apply") as held:
        started = time.monotonic()
        with pytest.raises(StateLockedError):
            store.lock("plan", wait_seconds=0.3, poll_seconds=0.05).__enter__()
        assert time.monotonic() - started >= 0.3
        assert store.read_lock() == held

    release_later = threading.Event()

    def holder() -> None:
        with other.lock("apply"):
            release_later.set()
            time.sleep(0.2)

    thread = threading.Thread(target=holder)
    thread.start()
    release_later.wait()
    with store.lock("plan", wait_seconds=5, poll_seconds=0.02) as mine:
        assert mine.command == "plan"
    thread.join()


def test_unlock_breaks_only_the_named_lock(store: StateStore, clock: FixedClock) -> None:
    with pytest.raises(StateError, match="is not locked"):
        store.unlock("anything")
    other = StateStore(store.path, clock)
    cm = other.lock("apply")
    held = cm.__enter__()
    with pytest.raises(StateError, match=f"locked under lock id {held.lock_id}.*nothing removed"):
        store.unlock("wrong-id")
    assert store.read_lock() == held
    assert store.unlock(held.lock_id) == held
    assert not store.lock_path.exists()
    with store.lock("apply"):
        pass
    # The broken holder finds out when it tries to release.
    with pytest.raises(StateError, match="broken while this run held it"):
        cm.__exit__(None, None, None)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(store: StateStore, host: str, pid: int) -> LockInfo:
    info = LockInfo(
        lock_id="stale-lock-1",
        holder=f"alice@{host}:{pid}",
        command="apply",
        created_at=T0 - timedelta(hours=5),
        host=host,
        pid=pid,
    )
    store.lock_path.write_text(info.model_dump_json())
    return info


def test_stale_lock_of_a_dead_process_is_detected_but_kept(store: StateStore) -> None:
    info = write_lock(store, socket.gethostname(), dead_pid())
    with pytest.raises(StateLockedError) as raised, store.lock("plan"):
        pytest.fail("must not get the lock")
    message = str(raised.value)
    assert raised.value.stale is True
    assert f"The lock is stale: no process {info.pid} is running on this host" in message
    assert "(5h00m ago)" in message
    assert "reconciler state unlock stale-lock-1" in message
    assert store.read_lock() == info  # not broken automatically


def test_lock_of_a_live_process_or_another_host_is_not_called_stale(store: StateStore) -> None:
    write_lock(store, socket.gethostname(), os.getpid())
    with pytest.raises(StateLockedError) as raised, store.lock("plan"):
        pass
    assert raised.value.stale is False
    write_lock(store, "some-other-host", dead_pid())
    with pytest.raises(StateLockedError) as raised, store.lock("plan"):
        pass
    assert raised.value.stale is False


def test_unreadable_lock_file(store: StateStore) -> None:
    store.lock_path.write_bytes(b"")
    with pytest.raises(
        StateLockedError, match=rf"cannot be read: it is empty.*rm {store.lock_path}"
    ):
        store.lock("plan").__enter__()
    with pytest.raises(StateLockedError, match="cannot be read"):
        store.unlock("x")


def test_lock_without_hard_links_falls_back_to_exclusive_create(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: Any, dst: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with store.lock("apply") as held:
        assert store.read_lock() == held
        with pytest.raises(StateLockedError), store.lock("plan"):
            pass
    assert other_files(store.path.parent) == []


# --- a real crash -----------------------------------------------------------------------------

# A launcher imports everything once and forks a worker per round, so each round costs a fork,
# not an interpreter start. The worker saves in a loop until the test SIGKILLs it.
LAUNCHER = textwrap.dedent(
    """
    import os, sys, traceback
    from datetime import datetime, timezone
    from pathlib import Path
    from reconciler.state.store import StateStore

    class Clock:
        def now(self):
            return datetime(2026, 5, 1, tzinfo=timezone.utc)

    path = Path(sys.argv[1])
    for _ in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                store = StateStore(path, Clock())
                state = store.load()
                os.write(1, b"ready %d\\n" % os.getpid())
                while True:
                    n = state.serial + 1
                    details = {"serial": n, "filler": "x" * (n * 7919 % 30000)}
                    state = store.save(state.record_observed("counter", details, Clock().now()))
            except BaseException:
                traceback.print_exc()
                os.write(1, b"error\\n")
            finally:
                os._exit(1)
        os.waitpid(pid, 0)
        os.write(1, b"reaped\\n")
    """
)


def read_line(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no answer from the launcher; got {line!r}")
        chunk = proc.stdout.read(1)
        if not chunk:
            raise AssertionError(f"launcher exited; got {line!r}")
        line += chunk
    return line.decode().strip()


def check_complete(store: StateStore, last_serial: int) -> int:
    state = store.load()  # fully parsed and validated, or StateError
    details = state.stock("counter").observed
    assert details is not None
    # The body belongs to the same version as the header: no mixture of two writes.
    assert details["serial"] == state.serial
    assert details["filler"] == "x" * (state.serial * 7919 % 30000)
    assert state.serial >= last_serial, "the file went back in time"
    backup = parse_state(store.backup_path.read_bytes())
    assert backup.serial in (state.serial - 1, state.serial)
    return state.serial


def test_sigkill_during_saves_leaves_a_complete_file(store: StateStore, clock: FixedClock) -> None:
    state = store.init().with_stock(StockState.new("counter", "favor", MCH))
    state = store.save(state.record_observed("counter", {"serial": 2, "filler": "x" * 15838}, T0))
    store.save(state.record_observed("counter", {"serial": 3, "filler": "x" * 23757}, T0))
    rng = random.Random(20260501)
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(store.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdin is not None
    serial, rounds, started, torn_seen = 3, 0, time.monotonic(), 0
    try:
        while rounds < 30 and time.monotonic() - started < 8:
            proc.stdin.write(b"go\n")
            answer = read_line(proc)
            assert answer.startswith("ready "), answer
            time.sleep(rng.uniform(0, 0.03))
            os.kill(int(answer.split()[1]), signal.SIGKILL)
            assert read_line(proc) == "reaped"
            serial = check_complete(store, serial)
            rounds += 1
            # Counted as they appear: the next worker's first save removes them.
            torn_seen += sum(1 for p in store.path.parent.iterdir() if p.name.endswith(".tmp"))
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert rounds >= 10
    assert serial > 3
    # Each temp file left behind is a kill that landed inside a save, between writing the new
    # version and swapping it in: the window this test is about.
    assert torn_seen, f"{rounds} kills over {serial - 3} saves, none inside a save"
    # Whatever the kills left is removed by the next save: every writer of them is dead.
    store.save(store.load())
    assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_lock_creates_the_state_folder_on_a_first_apply(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "new" / "dir" / "state.json", FixedClock())
    with store.lock("apply"):
        assert store.lock_path.exists()
    assert not store.lock_path.exists()
