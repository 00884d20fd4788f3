"""The StateBackend contract, run against both backends: the local state file with its journal
and PostgreSQL (a throwaway cluster, or RECONCILER_TEST_POSTGRES_DSN)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from reconciler.errors import StateError
from reconciler.ids import body_digest
from reconciler.operation import OpType
from reconciler.state.backend import StateBackend, StateMissingError, delta
from reconciler.state.lock import StateLockedError
from reconciler.state.model import State, StockState
from reconciler.state.store import StateStore, parse_state, render_state
from tests.pg_support import fresh_schema
from tests.test_wechatpay_support import pem_private, rsa_key

T0 = datetime(2027, 2, 1, 1, 0, tzinfo=UTC)
M1, M2 = "1900000001", "1900000002"
_schemas = itertools.count()


class Clock:
    def now(self) -> datetime:
        return T0


def lineages() -> Callable[[], UUID]:
    counter = itertools.count(1)
    return lambda: UUID(int=next(counter))


Factory = Callable[[], StateBackend]


@pytest.fixture(params=["local", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def factory(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Factory]:
    """Opens another handle on one and the same state (as another run would)."""
    opened: list[StateBackend] = []
    if kind == "local":

        def make() -> StateBackend:
            return StateStore(tmp_path / "state.json", Clock(), lineages(), journal=True)

    else:
        from reconciler.state.postgres import PostgresStateStore

        dsn = request.getfixturevalue("postgres_dsn")
        schema = fresh_schema(dsn, f"contract_{os.getpid()}_{next(_schemas)}")

        def make() -> StateBackend:
            store = PostgresStateStore(
                dsn, schema=schema, dsn_source="$TEST_DSN", clock=Clock(), lineage_source=lineages()
            )
            opened.append(store)
            return store

    yield make
    for store in opened:
        store.close()


def stock(id: str, merchant: str = M1) -> StockState:
    return StockState.new(id, "busifavor", merchant)


def sent(state: State, id: str) -> State:
    entry = state.stock(id)
    body = {"stock_name": f"券 {id}", "out_request_no": entry.out_request_no}
    return state.record_sent(id, body, T0)


def created(state: State, id: str, n: int) -> State:
    return state.record_created(id, f"1{n:09d}", T0)


def test_a_new_state_is_saved_loaded_and_keeps_lineage_and_serial(factory: Factory) -> None:
    store = factory()
    with pytest.raises(StateMissingError):
        store.load()
    new = store.load(create_if_missing=True)
    assert new.serial == 0
    first = store.save(new.with_stock(stock("a")).with_stock(stock("b")))
    assert first.serial == 1
    second = store.save(sent(first, "a"))
    third = store.save(created(second, "a", 1))
    assert third.serial == 3
    again = factory().load()
    assert again.lineage == new.lineage and again.serial == 3
    assert again.stocks == third.stocks
    assert again.stock("a").stock_id == "1000000001"


def test_removals_renames_and_retired_numbers_survive(factory: Factory) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    for i in range(5):
        state = store.save(state.with_stock(stock(f"s-{i}")))
    state = store.save(state.without_stock("s-1"))
    state = store.save(state.renamed("s-2", "renamed"))
    loaded = factory().load()
    assert loaded.stocks == state.stocks
    assert loaded.retired == state.retired and loaded.retired
    assert "s-1" not in loaded.stocks and "renamed" in loaded.stocks


def test_the_stock_id_of_a_retired_number_survives(factory: Factory) -> None:
    """`state rm` of a created stock keeps its stock_id, so a later plan can name it."""
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    state = store.save(created(sent(state, "a"), "a", 7))
    number = state.stock("a").out_request_no
    state = store.save(state.without_stock("a"))
    loaded = factory().load()
    assert loaded.retired == {number: "a"}
    assert loaded.retired_stock_ids == {number: "1000000007"}


def test_a_run_that_loaded_an_older_serial_cannot_save(factory: Factory) -> None:
    one, two = factory(), factory()
    base = one.save(one.load(create_if_missing=True).with_stock(stock("a")))
    stale = two.load()
    one.save(sent(base, "a"))
    with pytest.raises(StateError, match="another run wrote the state meanwhile"):
        two.save(stale.with_stock(stock("b")))
    assert "b" not in factory().load().stocks


def test_another_lineage_is_never_overwritten(factory: Factory) -> None:
    store = factory()
    store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    other = State.new("00000000-0000-0000-0000-00000000abcd").with_stock(stock("z"))
    with pytest.raises(StateError, match="lineage"):
        factory().save(other.model_copy(update={"serial": 1}))
    assert sorted(factory().load().stocks) == ["a"]


def test_missing_with_evidence_is_refused_and_init_starts_anew(
    factory: Factory, kind: str, tmp_path: Path
) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    store.save(state.with_stock(stock("b")))
    if kind == "local":
        (tmp_path / "state.json").unlink()  # the backup (or the journal) is still there
    else:
        import psycopg

        from reconciler.state.postgres import PostgresStateStore

        assert isinstance(store, PostgresStateStore)
        with psycopg.connect(store._dsn, autocommit=True) as conn:
            conn.execute(f"DELETE FROM {store.schema}.state")  # the stock rows stay
    with pytest.raises(StateMissingError) as raised:
        factory().load(create_if_missing=True)
    assert raised.value.evidence
    fresh = factory().load(init=True)
    assert fresh.serial == 0 and fresh.stocks == {}


def test_the_lock_is_exclusive_read_and_broken_by_id(factory: Factory) -> None:
    store, other = factory(), factory()
    store.save(store.load(create_if_missing=True))
    with store.lock("apply", holder="ci@runner:1") as info:
        held = other.read_lock()
        assert held is not None and held.lock_id == info.lock_id and held.command == "apply"
        with (
            pytest.raises(StateLockedError, match="locked by ci@runner:1"),
            other.lock("state rm x"),
        ):
            pass
    assert other.read_lock() is None
    with other.lock("state mv a b"):
        pass


def test_merchant_locks(factory: Factory) -> None:
    """Runs on different merchants hold their locks at once, and both saves land (local: in
    turns, appended to one journal); a whole-state lock waits for them."""
    store = factory()
    base = store.save(store.load(create_if_missing=True).with_stock(stock("a", M1)))
    base = store.save(base.with_stock(stock("b", M2)))
    one, two = factory(), factory()
    with one.lock("apply", merchants=[M1]), two.lock("apply", merchants=[M2]):
        s1, s2 = one.load(), two.load()
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(backend: StateBackend, state: State, id: str, n: int) -> None:
            try:
                barrier.wait()
                state = backend.save(sent(state, id))
                backend.save(created(state, id, n))
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(one, s1, "a", 1)),
            threading.Thread(target=run, args=(two, s2, "b", 2)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        with pytest.raises(StateLockedError), factory().lock("state rm a"):
            pass
        with pytest.raises(StateLockedError), factory().lock("apply", merchants=[M1]):
            pass
        with pytest.raises(StateError, match="holds the locks of merchant"):
            one.save(one.load().with_stock(stock("c", M2)))
    final = factory().load()
    assert final.stock("a").stock_id == "1000000001"
    assert final.stock("b").stock_id == "1000000002"
    assert final.serial == base.serial + 4


def test_a_save_that_fails_halfway_leaves_the_previous_state(
    factory: Factory, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    state = store.save(state.with_stock(stock("b")))  # a journal exists (local)
    changed = sent(state, "a").with_stock(stock("c"))
    if kind == "local":

        def full_disk(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("reconciler.state.store.os.fsync", full_disk)
    else:
        from reconciler.state.postgres import PostgresStateStore

        original = PostgresStateStore._write_delta

        def broken(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)  # the rows are written ...
            raise StateError("the connection broke")  # ... and the transaction never commits

        monkeypatch.setattr(PostgresStateStore, "_write_delta", broken)
    with pytest.raises(StateError):
        store.save(changed)
    monkeypatch.undo()
    loaded = factory().load()
    assert loaded.serial == state.serial and loaded.stocks == state.stocks
    # And the same handle saves on from where it was.
    after = store.save(sent(state, "a"))
    assert factory().load().stocks == after.stocks


def test_secrets_are_refused(factory: Factory) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    entry = state.stock("a")
    pem = pem_private(rsa_key("state-secret")).decode("ascii")  # generated at test time
    body = {"out_request_no": entry.out_request_no, "comment": pem}
    with pytest.raises(StateError, match="PRIVATE KEY"):
        store.save(state.record_sent("a", body, T0))
    assert factory().load().stock("a").sent_body is None


def test_push_and_pull_move_a_state_between_backends(factory: Factory, tmp_path: Path) -> None:
    from reconciler.engine import state_ops

    (tmp_path / "elsewhere").mkdir()
    source = StateStore(tmp_path / "elsewhere" / "state.json", Clock(), journal=True)
    state = source.load(create_if_missing=True).with_stock(stock("a")).with_stock(stock("b"))
    state = source.save(state)
    exported = state_ops.pull(source)
    target = factory()
    pushed = state_ops.push(target, exported.encode(), "export.json")
    assert pushed.lineage == state.lineage and pushed.serial == state.serial + 1
    assert parse_state(state_ops.pull(target).encode()).stocks == state.stocks
    other = State.new("00000000-0000-0000-0000-00000000abcd").with_stock(stock("z"))
    raw = render_state(other.model_copy(update={"serial": 9}).to_data()).encode()
    with pytest.raises(StateError, match="different state histories"):
        state_ops.push(factory(), raw, "other.json")
    forced = state_ops.push(factory(), raw, "other.json", force=True)
    assert forced.serial == 10 and sorted(factory().load().stocks) == ["z"]


def test_pending_intents_are_durable_when_save_returns(factory: Factory) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    state = store.save(sent(state, "a"))
    pending = factory().load().stock("a").pending
    assert pending is not None and pending.action is OpType.CREATE
    assert pending.body_digest == body_digest(state.stock("a").sent_body or {})


def test_delta_finds_exactly_the_changed_stocks() -> None:
    base = State.new(str(UUID(int=1)))
    for i in range(10):
        base = base.with_stock(stock(f"s-{i}"))
    assert delta(base, base).size == 0
    one = sent(base, "s-3")
    assert list(delta(base, one).stocks) == ["s-3"]
    grown = one.with_stock(stock("new"))
    assert sorted(delta(base, grown).stocks) == ["new", "s-3"]
    gone = base.without_stock("s-0")
    change = delta(base, gone)
    assert change.stocks == {"s-0": None} and change.retired == gone.retired


def test_uploaded_images_survive_per_merchant(factory: Factory) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    sha1, sha2 = "a" * 64, "b" * 64
    state = store.save(state.record_upload_intent(M1, sha1, "logo.png", T0))
    assert factory().load().media_urls(M1) == {}
    assert factory().load().images[M1][sha1].filename == "logo.png"
    state = store.save(state.record_media_url(M1, sha1, "https://img.example/1", T0))
    state = store.save(state.record_media_url(M2, sha2, "https://img.example/2", T0))
    loaded = factory().load()
    assert loaded.images == state.images
    assert loaded.media_urls(M1) == {sha1: "https://img.example/1"}
    assert loaded.media_urls(M2) == {sha2: "https://img.example/2"}
    # A state with images only changed is a save of its own (one journal line, a few rows).
    assert delta(state, state.record_upload_intent(M1, "c" * 64, "x.png", T0)).size == 1


def test_code_batches_and_callbacks_survive_every_save(factory: Factory) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    state = store.save(state.record_code_batch("a", "1900000001_BU0_a_x1", ["C1", "C2"], T0))
    state = store.save(state.set_callback(f"{M1}/favor", pending="https://a.example.com/n"))
    intent = factory().load()
    assert not intent.stock("a").code_batches["1900000001_BU0_a_x1"].done
    assert intent.callbacks[f"{M1}/favor"].pending == "https://a.example.com/n"
    state = store.save(state.record_code_batch_done("a", "1900000001_BU0_a_x1", ["C1", "C2"], {}))
    state = store.save(
        state.set_callback(f"{M1}/favor", url="https://a.example.com/n", pending=None)
    )
    loaded = factory().load()
    assert loaded.stocks == state.stocks and loaded.callbacks == state.callbacks
    assert loaded.callbacks[f"{M1}/favor"].url == "https://a.example.com/n"
    assert loaded.stock("a").code_batches["1900000001_BU0_a_x1"].uploaded == ["C1", "C2"]


def test_merchant_scoped_runs_each_keep_their_callbacks(factory: Factory, kind: str) -> None:
    """Two runs on different merchants both set a callback; neither save drops the other's
    (each replaces only its own merchants' entries)."""
    store = factory()
    store.save(store.load(create_if_missing=True).with_stock(stock("a", M1)))
    one, two = factory(), factory()
    with one.lock("apply", merchants=[M1]), two.lock("apply", merchants=[M2]):
        s1, s2 = one.load(), two.load()
        one.save(s1.set_callback(f"{M1}/favor", url="https://one.example.com/n", pending=None))
        two.save(s2.set_callback(f"{M2}/favor", url="https://two.example.com/n", pending=None))
    final = factory().load()
    assert {k: v.url for k, v in final.callbacks.items()} == {
        f"{M1}/favor": "https://one.example.com/n",
        f"{M2}/favor": "https://two.example.com/n",
    }


def test_pure_updates_record_the_ids_they_touch() -> None:
    base = State.new(str(UUID(int=1)))
    for i in range(5):
        base = base.with_stock(stock(f"s-{i}"))
    base = base.model_copy()  # a copy is its own root, as a loaded or saved state is
    assert base.changed_since(base) == set()
    changed = sent(base, "s-1").renamed("s-2", "two").without_stock("s-4")
    assert changed.changed_since(base) == {"s-1", "s-2", "two", "s-4"}
    assert changed.changed_since(changed.model_copy()) is None  # not derived from it
    assert changed.model_copy().changed_since(base) is None
    # The recorded ids give the same delta as comparing every stock.
    change = delta(base, changed)
    assert set(change.stocks) == {"s-1", "s-2", "two", "s-4"}
    assert change.stocks["s-2"] is None and change.stocks["s-4"] is None
    assert change.stocks["two"] == base.stock("s-2").model_copy(update={"id": "two"})
    # A touched id that is in neither state is not written (nor removed).
    back = base.renamed("s-0", "zero").renamed("zero", "s-0")
    assert back.changed_since(base) == {"s-0", "zero"}
    assert list(delta(base, back).stocks) == ["s-0"]


def test_invariants_hold_for_updates_from_a_state_whose_index_moved_on() -> None:
    base = State.new(str(UUID(int=1))).with_stock(stock("a")).with_stock(stock("b"))
    first = created(base, "a", 1)  # takes base's index with it
    # A second update from `base` (not from `first`) is checked against base's own stocks.
    second = created(base, "b", 1)
    assert second.stock("b").stock_id == "1000000001"
    with pytest.raises(StateError, match="one remote stock belongs to one id"):
        created(first, "b", 1)
    with pytest.raises(StateError, match="used by both"):
        base.with_stock(stock("a").model_copy(update={"id": "c"}))
    gone = base.without_stock("a")
    assert gone.request_no_in_use(base.stock("a").out_request_no)
    with pytest.raises(StateError, match="retired"):
        gone.with_stock(stock("a"))
    assert not first.request_no_in_use("not-a-number")


def test_a_journal_save_writes_only_the_touched_stocks(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json", Clock(), lineages(), journal=True)
    state = store.load(create_if_missing=True)
    for i in range(300):
        state = state.with_stock(stock(f"s-{i}"))
    state = store.save(state)
    state = store.save(created(sent(state, "s-7"), "s-7", 7).record_observed("s-9", {}, T0))
    last = (tmp_path / "state.json.journal").read_bytes().splitlines()[-1]
    record = parse_state_line(last)
    assert sorted(record["stocks"]) == ["s-7", "s-9"] and record["serial"] == state.serial
    assert StateStore(tmp_path / "state.json", Clock()).load() == state


def parse_state_line(line: bytes) -> dict[str, Any]:
    import json

    value = json.loads(line.partition(b" ")[2])
    assert isinstance(value, dict)
    return value


def test_group_commit_shares_fsyncs_and_a_failed_one_acknowledges_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path / "state.json", Clock(), lineages(), journal=True)
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    state = store.save(state.with_stock(stock("b")))  # the journal exists now
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr("reconciler.state.store.os.fsync", counted_fsync)
    waits = []
    for i in range(5):  # five saves written before anyone waits, as five workers would
        state, durable = store.save_deferred(state.record_observed("a", {"n": i}, T0))
        waits.append(durable)
    for durable in waits:
        durable()
    assert len(fsyncs) == 1  # one fsync made all five durable
    assert StateStore(tmp_path / "state.json", Clock()).load() == state
    durable_state = state

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("reconciler.state.store.os.fsync", full_disk)
    state, first = store.save_deferred(sent(state, "a"))
    state, second = store.save_deferred(state.record_observed("b", {}, T0))
    for durable in (first, second):
        with pytest.raises(StateError, match="could not make the journal"):
            durable()  # neither is acknowledged: nothing may be sent on them
    # Their lines are cut off: what is on disk is the last acknowledged save.
    assert StateStore(tmp_path / "state.json", Clock()).load() == durable_state
    monkeypatch.undo()
    # A save begun from the unacknowledged state after the cut writes the state whole.
    after = store.save(state.record_observed("a", {"again": True}, T0))
    assert StateStore(tmp_path / "state.json", Clock()).load() == after


def test_a_value_json_cannot_hold_is_refused_by_every_save(factory: Factory) -> None:
    store = factory()
    state = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    for odd in ({"tags": {1, 2}}, {"ratio": float("nan")}):
        with pytest.raises(StateError, match="a body must be JSON"):
            state.record_observed("a", odd, T0)
    # A state made some other way is refused by the save, and nothing is written.
    bad = state.stock("a").model_copy(update={"observed": {"tags": object()}, "observed_at": T0})
    with pytest.raises(StateError, match="refusing to save"):
        store.save(state.with_stock(bad))
    assert factory().load() == state


def postgres_store(dsn: str) -> Callable[[], Any]:
    """Handles on one fresh PostgreSQL schema (as other runs would open it)."""
    from reconciler.state.postgres import PostgresStateStore

    schema = fresh_schema(dsn, f"group_{os.getpid()}_{next(_schemas)}")
    return lambda: PostgresStateStore(
        dsn, schema=schema, dsn_source="$TEST_DSN", clock=Clock(), lineage_source=lineages()
    )


def test_postgres_group_commit_writes_concurrent_saves_in_one_transaction(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.state.postgres import PostgresStateStore

    handle = postgres_store(postgres_dsn)
    store, reader = handle(), handle()
    ids = [f"s{i}" for i in range(1, 6)]
    start = store.load(create_if_missing=True)
    for id in ids:
        start = start.with_stock(stock(id))
    start = store.save(start)
    assert reader.load() == start  # (its first use sets the schema up)
    original = PostgresStateStore._write_delta
    gate = threading.Event()
    batches: list[list[str]] = []

    def gated(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)  # the rows are written, not committed ...
        batches.append(sorted(args[1].stocks))
        gate.wait(10)  # ... until the gate opens

    monkeypatch.setattr(PostgresStateStore, "_write_delta", gated)
    saving = threading.Lock()  # saves are made one at a time, as the applier makes them
    current = [start]
    queued: list[str] = []
    acted: dict[str, bool] = {}  # id -> its intent was in the stored state when acted on

    def worker(id: str) -> None:
        with saving:
            written, durable = store.save_deferred(sent(current[0], id))
            current[0] = written
            queued.append(id)
        durable()
        acted[id] = reader.load().stock(id).sent_body is not None  # what a crash would leave

    threads = [threading.Thread(target=worker, args=(id,)) for id in ids]
    threads[0].start()
    while not batches:  # the first save's commit is under way
        threads[0].join(0.01)
    for thread in threads[1:]:
        thread.start()
    while len(queued) < len(ids):  # the others queued theirs meanwhile and wait
        threads[-1].join(0.01)
    threads[-1].join(0.2)
    assert acted == {} and reader.load() == start  # nobody returned before its commit
    gate.set()
    for thread in threads:
        thread.join(30)
    # Five saves, two transactions: the first alone, the four queued behind it together.
    assert batches == [["s1"], ["s2", "s3", "s4", "s5"]]
    assert acted == dict.fromkeys(ids, True)
    loaded = reader.load()
    assert loaded == current[0] and loaded.serial == start.serial + len(ids)
    for s in (store, reader):
        s.close()


def test_postgres_a_failed_group_commit_fails_every_save_in_it(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.state.postgres import PostgresStateStore

    handle = postgres_store(postgres_dsn)
    store = handle()
    before = store.save(store.load(create_if_missing=True).with_stock(stock("a")))
    original = PostgresStateStore._write_delta
    transactions: list[int] = []

    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)  # the rows are written ...
        transactions.append(len(args[1].stocks))
        raise StateError("the connection broke")  # ... and the transaction never commits

    monkeypatch.setattr(PostgresStateStore, "_write_delta", broken)
    state, waits = before, []
    for id in ("b", "c", "d"):  # three saves queued before anyone waits, as three workers
        state, durable = store.save_deferred(sent(state.with_stock(stock(id)), id))
        waits.append(durable)
    failures: list[str] = []
    acted: list[int] = []

    def wait(durable: Callable[[], None]) -> None:
        try:
            durable()
        except StateError as exc:
            failures.append(str(exc))
            return
        acted.append(1)  # a request would be sent here

    threads = [threading.Thread(target=wait, args=(durable,)) for durable in waits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert transactions == [3]  # one transaction held all three
    assert acted == [] and failures == ["the connection broke"] * 3
    assert handle().load() == before  # none of them was written
    monkeypatch.undo()
    # The next save, from the unacknowledged state, writes the state whole.
    after = store.save(state.with_stock(stock("e")))
    loaded = handle().load()
    assert loaded == after and sorted(loaded.stocks) == ["a", "b", "c", "d", "e"]
    assert loaded.serial > before.serial
    store.close()
