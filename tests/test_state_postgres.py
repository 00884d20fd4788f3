"""The PostgreSQL state: configuration, secrecy of the DSN, applies end to end, and runs killed
in the middle of a transaction."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_project
from reconciler.emulator import EmulatorSettings
from reconciler.emulator.faults import Faults
from reconciler.errors import ConfigError, StateError
from reconciler.state.factory import open_backend
from reconciler.state.model import State, StockState
from reconciler.state.postgres import PostgresStateStore
from tests.e2e_support import (
    LocalEmulator,
    Workspace,
    assert_one_remote_per_id,
    emulator_stocks,
    make_workspace,
    stopped,
    wait_for,
    write_generated_stocks,
)
from tests.pg_support import fresh_schema

T0 = datetime(2027, 2, 1, 1, 0, tzinfo=UTC)
VARIABLE = "RECONCILER_STATE_DSN"
_schemas = itertools.count()


class Clock:
    def now(self) -> datetime:
        return T0


@pytest.fixture
def schema(postgres_dsn: str) -> str:
    return fresh_schema(postgres_dsn, f"pgtest_{os.getpid()}_{next(_schemas)}")


def store_for(dsn: str, schema: str) -> PostgresStateStore:
    return PostgresStateStore(dsn, schema=schema, dsn_source=f"${VARIABLE}", clock=Clock())


def project_text(schema: str) -> str:
    return (
        f"stocks: stocks\nstate:\n  postgres:\n    dsn: {{env: {VARIABLE}}}\n    schema: {schema}\n"
    )


# --- configuration and the secret -------------------------------------------------------------


def test_the_project_file_selects_postgres_and_names_the_variable(
    tmp_path: Path, postgres_dsn: str, schema: str
) -> None:
    (tmp_path / "reconciler.yaml").write_text(project_text(schema), encoding="utf-8")
    project, diagnostics = load_project(tmp_path / "reconciler.yaml")
    assert project is not None, diagnostics
    with pytest.raises(ConfigError, match=VARIABLE):
        open_backend(project, Clock(), {})
    store = open_backend(project, Clock(), {VARIABLE: postgres_dsn})
    assert isinstance(store, PostgresStateStore)
    assert store.location == f"postgresql schema {schema} (DSN from ${VARIABLE})"
    store.close()


def test_a_secret_in_place_of_the_dsn_source_is_refused_without_echo(tmp_path: Path) -> None:
    dsn = "postgresql://app:hunter2secret@db.internal/stocks"
    (tmp_path / "reconciler.yaml").write_text(
        f"state:\n  postgres:\n    dsn: {dsn}\n", encoding="utf-8"
    )
    project, diagnostics = load_project(tmp_path / "reconciler.yaml")
    assert project is None
    assert "hunter2secret" not in "".join(d.message for d in diagnostics)


def test_connection_errors_never_show_the_dsn(tmp_path: Path) -> None:
    dsn = f"host={tmp_path}/nowhere port=5999 user=alice_secret password=hunter2secret dbname=x"
    store = store_for(dsn, "reconciler")
    with pytest.raises(StateError) as raised:
        store.load(create_if_missing=True)
    message = str(raised.value)
    assert f"${VARIABLE}" in message
    for part in ("hunter2secret", "alice_secret", str(tmp_path)):
        assert part not in message, message
    assert "hunter2secret" not in repr(store)
    with pytest.raises(StateError) as malformed:
        store_for("host=x password=hunter2secret nonsense", "reconciler").load()
    assert "hunter2secret" not in str(malformed.value)


def test_the_schema_is_versioned_and_created_on_first_use(postgres_dsn: str, schema: str) -> None:
    import psycopg

    store = store_for(postgres_dsn, schema)
    store.save(store.load(create_if_missing=True))
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        row = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
        assert row.fetchone() == ("1",)
        conn.execute(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(StateError, match="newer reconciler"):
        store_for(postgres_dsn, schema).load()


def test_a_run_starting_takes_no_table_lock_that_waits_for_a_save_under_way(
    postgres_dsn: str, schema: str
) -> None:
    """A store's first use sets the schema up only when this reconciler's DDL has not run on
    it: ALTER TABLE and CREATE INDEX lock their tables even when there is nothing to do, and a
    plan starting while an apply saved deadlocked that save (every step of the apply failed).
    Here another session holds the locks a save holds, and a new store must still load."""
    import threading

    import psycopg

    store = store_for(postgres_dsn, schema)
    store.save(store.load(create_if_missing=True))
    store.close()
    loaded: list[State] = []
    with psycopg.connect(postgres_dsn) as saving:  # a transaction, as a save is
        saving.execute(f"SELECT serial FROM {schema}.state FOR UPDATE")
        saving.execute(f"LOCK TABLE {schema}.stocks IN ROW EXCLUSIVE MODE")
        reader = threading.Thread(
            target=lambda: loaded.append(store_for(postgres_dsn, schema).load()), daemon=True
        )
        reader.start()
        reader.join(10)
        finished = not reader.is_alive()
        saving.rollback()
    reader.join(30)
    assert finished, "a new store's first use waited for a lock of the save under way"
    assert loaded and loaded[0].serial == 1


@pytest.mark.parametrize(
    ("data", "problem"),
    [("{broken", "is not JSON"), ("[1, 2]", "is not an object"), ("[" * 100_000, "is not JSON")],
)
def test_a_damaged_stock_row_is_a_state_error_naming_the_table(
    postgres_dsn: str, schema: str, data: str, problem: str
) -> None:
    import psycopg

    store = store_for(postgres_dsn, schema)
    state = store.load(create_if_missing=True)
    store.save(state.with_stock(StockState.new("row-one", "favor", "1900000001")))
    assert "row-one" in store_for(postgres_dsn, schema).load().stocks
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.stocks SET data = %s", (data,))
    store.close()
    with pytest.raises(StateError) as info:
        store_for(postgres_dsn, schema).load()
    assert f"has a row in {schema}.stocks that {problem}" in str(info.value)
    assert "reconciler state pull" in str(info.value)


# --- killed in the middle of a transaction ----------------------------------------------------


def _save_and_hang(dsn: str, schema: str, ready: Any) -> None:
    """In a child: start a save that writes its rows, then signal and wait to be killed."""
    store = store_for(dsn, schema)
    state = store.load()
    original = PostgresStateStore._write_delta

    def hang(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        ready.set()
        signal.pause()

    PostgresStateStore._write_delta = hang  # type: ignore[method-assign]
    with store.lock("apply"):
        entry = state.stock("a")
        body = {"out_request_no": entry.out_request_no, "stock_name": "x"}
        store.save(state.record_sent("a", body, T0).with_stock(StockState.new("b", "favor", "1")))


def test_sigkill_during_a_transaction_leaves_the_previous_state_and_no_lock(
    postgres_dsn: str, schema: str
) -> None:
    store = store_for(postgres_dsn, schema)
    before = store.save(
        store.load(create_if_missing=True).with_stock(StockState.new("a", "busifavor", "1"))
    )
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_save_and_hang, args=(postgres_dsn, schema, ready))
    child.start()
    try:
        assert ready.wait(30), "the child never reached the middle of its transaction"
        assert store.read_lock() is not None
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(30)
    after = store_for(postgres_dsn, schema)
    wait_for(lambda: after.read_lock() is None, "the server to end the killed session", 10)
    loaded = after.load()
    assert loaded.serial == before.serial and loaded.stocks == before.stocks
    with after.lock("apply"):  # no stale lock to break
        after.save(loaded.with_stock(StockState.new("c", "favor", "1")))
    after.close()
    store.close()


# --- end to end against the emulator ----------------------------------------------------------


@pytest.fixture
def pg_ws(
    tmp_path: Path, postgres_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, LocalEmulator]]:
    monkeypatch.setenv(VARIABLE, postgres_dsn)
    ws = make_workspace(tmp_path / "project")
    settings = EmulatorSettings(rate_limiting=False, faults=Faults(latency_ms=40))
    with LocalEmulator(ws, settings) as local:
        text = ws.project_file.read_text(encoding="utf-8")
        pg = f"state:\n  postgres:\n    dsn: {{env: {VARIABLE}}}\n    schema: {schema}\n"
        ws.project_file.write_text(text.replace("state: state.json\n", pg), encoding="utf-8")
        yield ws, local


def pg_state(dsn: str, schema: str) -> State:
    store = store_for(dsn, schema)
    try:
        return store.load()
    finally:
        store.close()


def test_apply_end_to_end_on_postgres(
    pg_ws: tuple[Workspace, LocalEmulator], postgres_dsn: str, schema: str
) -> None:
    ws, local = pg_ws
    ids = write_generated_stocks(ws.stocks_dir, 4)
    run = ws.cli("apply", "--yes")
    assert run.exit_code == 0, str(run)
    assert not ws.state_path.exists()  # the state is in PostgreSQL only
    assert_one_remote_per_id(pg_state(postgres_dsn, schema), emulator_stocks(local.emu), ids)
    listed = ws.cli("state", "list")
    assert f"state postgresql schema {schema} (DSN from ${VARIABLE})" in listed.stdout
    assert postgres_dsn not in listed.output
    again = ws.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, str(again)
    pulled = ws.cli("state", "pull", str(ws.root / "export.json"))
    assert pulled.exit_code == 0, str(pulled)
    assert postgres_dsn not in (ws.root / "export.json").read_text(encoding="utf-8")


def test_sigkill_mid_apply_on_postgres_loses_nothing_and_duplicates_nothing(
    pg_ws: tuple[Workspace, LocalEmulator], postgres_dsn: str, schema: str
) -> None:
    ws, local = pg_ws
    ids = write_generated_stocks(ws.stocks_dir, 10)

    def in_flight() -> bool:
        try:
            state = pg_state(postgres_dsn, schema)
        except StateError:
            return False
        return any(s.pending is not None for s in state.stocks.values())

    with open(ws.root / "apply.log", "wb") as log:
        proc = subprocess.Popen(
            ws.command("apply", "--yes"), stdout=log, stderr=log, env=ws.env(), cwd=ws.root
        )
    with stopped(proc):
        wait_for(lambda: in_flight() or proc.poll() is not None, "a create in flight")
        assert proc.poll() is None, "the apply finished before a create was in flight"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    created_before = len(local.stocks)
    assert created_before < len(ids), "the kill came after the last create"
    # The server ended the killed session: its lock is gone, nobody has to break it.
    done = ws.cli("apply", "--yes")
    assert done.exit_code == 0, str(done) + (ws.root / "apply.log").read_text()
    assert_one_remote_per_id(pg_state(postgres_dsn, schema), emulator_stocks(local.emu), ids)


def test_two_pipelines_on_different_merchants_do_not_block_each_other(
    postgres_dsn: str, schema: str
) -> None:
    """Two processes, each holding one merchant's lock, save their stocks at once."""
    ctx = multiprocessing.get_context("spawn")
    store = store_for(postgres_dsn, schema)
    store.save(store.load(create_if_missing=True))
    store.close()
    start = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_merchant_run, args=(postgres_dsn, schema, m, start))
        for m in ("1900000001", "1900000002")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    final = pg_state(postgres_dsn, schema)
    assert len(final.stocks) == 2 * 20
    assert all(s.stock_id is not None for s in final.stocks.values())


def _merchant_run(dsn: str, schema: str, merchant: str, start: Any) -> None:
    store = store_for(dsn, schema)
    with store.lock(f"apply {merchant}", merchants=[merchant]):
        start.wait(30)
        state = store.load()
        for i in range(20):
            entry = StockState.new(f"m{merchant[-1]}-{i}", "busifavor", merchant)
            body = {"out_request_no": entry.out_request_no, "stock_name": f"券 {i}"}
            state = store.save(state.with_stock(entry).record_sent(entry.id, body, T0))
            state = store.save(state.record_created(entry.id, f"{merchant[-1]}{i:09d}", T0))
    store.close()
    sys.exit(0)
