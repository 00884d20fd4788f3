"""The PostgreSQL state under crashes and concurrency: a process killed (SIGKILL) inside a save's
transaction, the server restarted in the middle of an apply, and two processes locked to
different merchants saving at once. Each ends with 0 stocks lost and 0 created twice.

Each test starts from the PostgreSQL of tests/pg_support.py (skipped with the reason when none
can be started); the restart test starts a cluster of its own, since it restarts it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from reconciler.emulator import Faults
from reconciler.state.model import State, StockState
from reconciler.state.postgres import PostgresStateStore
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    assert_one_remote_per_id,
    emulator_stocks,
    make_workspace,
    write_generated_stocks,
)
from tests.pg_support import Cluster, cluster, fresh_schema, use_postgres

T0 = datetime(2027, 2, 1, 1, 0, tzinfo=UTC)
M1, M2 = "1900000001", "1900000002"
ROOT = Path(__file__).resolve().parent.parent
_schemas = itertools.count()


class Clock:
    def now(self) -> datetime:
        return T0


def open_store(dsn: str, schema: str) -> PostgresStateStore:
    counter = itertools.count(1)
    return PostgresStateStore(
        dsn, schema=schema, clock=Clock(), lineage_source=lambda: UUID(int=next(counter))
    )


def child(code: str, dsn: str, schema: str) -> subprocess.Popen[str]:
    """A Python process running `code` with `store` open on the schema; it prints as it goes."""
    prelude = textwrap.dedent(
        f"""
        import sys, time
        from tests.test_state_pg_faults import open_store, intent, create, StockState
        store = open_store({dsn!r}, {schema!r})
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def intent(state: State, id: str) -> State:
    entry = state.stock(id)
    return state.record_sent(id, {"stock_name": id, "out_request_no": entry.out_request_no}, T0)


def create(store: PostgresStateStore, state: State, id: str, stock_id: str) -> State:
    """The two saves of a create, as the applier makes them: the intent before sending, then
    the result."""
    state = store.save(intent(state, id))
    return store.save(state.record_created(id, stock_id, T0))


def test_sigkill_inside_a_save_transaction_leaves_the_previous_state(postgres_dsn: str) -> None:
    schema = fresh_schema(postgres_dsn, f"kill_{os.getpid()}_{next(_schemas)}")
    store = open_store(postgres_dsn, schema)
    before = store.save(
        store.load(create_if_missing=True).with_stock(StockState.new("a", "busifavor", M1))
    )
    proc = child(
        """
        from reconciler.state.postgres import PostgresStateStore
        original = PostgresStateStore._write_delta
        def stalled(self, *args, **kwargs):
            original(self, *args, **kwargs)  # the rows are written, not committed
            print("in transaction", flush=True)
            time.sleep(60)
        PostgresStateStore._write_delta = stalled
        with store.lock("apply"):
            state = store.load()
            state = state.with_stock(StockState.new("b", "busifavor", "1900000001"))
            store.save(intent(state, "a"))
        """,
        postgres_dsn,
        schema,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "in transaction\n", proc.stderr.read() if proc.stderr else line
        proc.kill()  # SIGKILL between the writes and the COMMIT
    finally:
        proc.kill()
        proc.communicate(timeout=30)  # closes the pipes
    # The server rolls the transaction back and drops the dead session's locks.
    again = open_store(postgres_dsn, schema)
    deadline = time.monotonic() + 10
    with again.lock("apply", wait_seconds=10):
        state = again.load()
        assert state == before and state.serial == before.serial
        create(again, state, "a", "1000000001")
    assert time.monotonic() < deadline
    final = open_store(postgres_dsn, schema).load()
    assert final.stock("a").stock_id == "1000000001" and "b" not in final.stocks
    for s in (store, again):
        s.close()


def test_two_processes_locked_to_different_merchants_save_at_once(postgres_dsn: str) -> None:
    """Two pipelines, one per merchant, on one state: every create of both is recorded once."""
    schema = fresh_schema(postgres_dsn, f"two_{os.getpid()}_{next(_schemas)}")
    store = open_store(postgres_dsn, schema)
    store.save(store.load(create_if_missing=True))
    count = 25
    code = f"""
        merchant, prefix = sys.argv[1], sys.argv[2]
        with store.lock("apply", merchants=[merchant]):
            print("locked", flush=True)
            sys.stdin.readline()  # both hold their locks before either saves
            state = store.load()
            for i in range({count}):
                id = f"{{prefix}}-{{i:03d}}"
                state = store.save(state.with_stock(StockState.new(id, "busifavor", merchant)))
                state = create(store, state, id, f"{{len(prefix)}}{{prefix[-1]}}{{i:08d}}")
        print("done", flush=True)
        """
    procs = []
    for merchant, prefix in ((M1, "one"), (M2, "two")):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    import sys
                    from tests.test_state_pg_faults import open_store, intent, create, StockState
                    store = open_store({postgres_dsn!r}, {schema!r})
                    """
                )
                + textwrap.dedent(code),
                merchant,
                prefix,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "locked\n", proc.stderr.read() if proc.stderr else ""
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and out.endswith("done\n"), err
    final = open_store(postgres_dsn, schema).load()
    assert len(final.stocks) == 2 * count
    assert all(s.stock_id is not None and s.pending is None for s in final.stocks.values())
    assert len({s.stock_id for s in final.stocks.values()}) == 2 * count
    assert {s.merchant for s in final.stocks.values() if s.id.startswith("one")} == {M1}
    store.close()


# --- a PostgreSQL restart during apply ---------------------------------------------------------


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        with cluster() as started:
            yield started
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL cluster could be started: {exc}")


def test_a_postgres_restart_during_apply_fails_cleanly_and_the_next_apply_converges(
    tmp_path: Path, own_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path / "project", mchids=(MCHID,), concurrency=4)
    ids = write_generated_stocks(ws.stocks_dir, 16, ["busifavor", "favor"])
    schema = fresh_schema(own_cluster.dsn, f"restart_{next(_schemas)}")
    with LocalEmulator(ws) as local:
        use_postgres(ws, own_cluster.dsn, schema, monkeypatch)
        local.set_faults(Faults(latency_ms=40))  # creates in flight when the server goes
        restarted = threading.Event()

        def restart_after_some_creates() -> None:
            deadline = time.monotonic() + 60
            while len(local.emu.stocks) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            own_cluster.restart()
            restarted.set()

        restarter = threading.Thread(target=restart_after_some_creates)
        restarter.start()
        first = ws.cli("apply", "--yes")
        restarter.join()
        assert restarted.is_set()
        # Failed cleanly (a message, no traceback) or carried on; never a half-written state.
        assert first.exit_code in (0, 1), str(first)
        assert "Traceback" not in first.output
        if first.exit_code == 1:
            assert "PostgreSQL" in first.output, str(first)
        local.set_faults(Faults())
        for _ in range(3):
            run = ws.cli("apply", "--yes")
            if run.exit_code == 0:
                break
        assert run.exit_code == 0, str(run)
        state = open_store(own_cluster.dsn, schema).load()
        assert_one_remote_per_id(state, emulator_stocks(local.emu), ids)
        final = ws.cli("plan", "--detailed-exitcode")
        assert final.exit_code == 0, str(final)
