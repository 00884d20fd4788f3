"""One state save with 1k/10k/50k stocks in the state, per backend design; prints medians.

Run: .venv/bin/python benchmarks/bench_state_backends.py [N ...] [--runs R]

Each save changes one stock (an intent recorded before a send), as the applier does. Timed is
the save alone (the pure update is made before the clock starts):
- journal: the local backend (state.json + an fsynced append-only journal), what ships;
- sqlite: the alternative the issue named, SQLite in WAL mode with synchronous=FULL (durable
  at COMMIT), one row per stock, written per change in one transaction (built here only);
- rewrite: the previous design, the whole file rewritten and fsynced (1k and 10k only);
- postgres: the PostgreSQL backend on a unix socket (RECONCILER_TEST_POSTGRES_DSN, or a
  throwaway cluster started here).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_state import T0, FixedClock, build  # noqa: E402

from reconciler.state.backend import delta  # noqa: E402
from reconciler.state.model import State  # noqa: E402
from reconciler.state.store import StateStore  # noqa: E402


class SqliteCandidate:
    """The SQLite design, as small as it can be while keeping the same guarantees."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE stocks (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        self.db.execute("CREATE TABLE meta (lineage TEXT, serial INTEGER)")
        self.known: State | None = None

    def save(self, state: State) -> State:
        base = self.known
        rows = state.stocks if base is None else delta(base, state).stocks
        serial = state.serial + 1
        self.db.execute("BEGIN IMMEDIATE")
        (current,) = self.db.execute("SELECT count(*) FROM meta").fetchone()
        if current:
            (disk,) = self.db.execute("SELECT serial FROM meta").fetchone()
            assert disk == state.serial, "another writer"
        self.db.executemany(
            "INSERT INTO stocks (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            [
                (k, json.dumps(v.model_dump(mode="json"), sort_keys=True, ensure_ascii=False))
                for k, v in rows.items()
                if v is not None
            ],
        )
        self.db.execute("DELETE FROM meta")
        self.db.execute("INSERT INTO meta VALUES (?, ?)", (state.lineage, serial))
        self.db.execute("COMMIT")
        written = state.model_copy(update={"serial": serial})
        self.known = written
        return written


def one_change(state: State, i: int) -> State:
    return state.record_observed(f"stock-{i % len(state.stocks):05d}", {"n": i}, T0)


def median_save(save: Callable[[State], State], state: State, runs: int) -> float:
    times = []
    for i in range(runs):
        changed = one_change(state, i)
        start = time.perf_counter()
        state = save(changed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    dsn = os.environ.get("RECONCILER_TEST_POSTGRES_DSN")
    if dsn:
        yield dsn
        return
    try:
        from tests.pg_support import throwaway_cluster

        with throwaway_cluster() as started:
            yield started
    except RuntimeError as exc:
        print(f"  (no PostgreSQL: {exc})", file=sys.stderr)
        yield None


def measure(n: int, runs: int, dsn: str | None) -> dict[str, float]:
    state = build(n)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "state.json", FixedClock(), journal=True)
        first = store.save(state)
        out["journal"] = median_save(store.save, first, runs)
        start = time.perf_counter()
        store.compact()
        out["journal compaction"] = (time.perf_counter() - start) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteCandidate(Path(tmp) / "state.db")
        out["sqlite"] = median_save(sqlite.save, sqlite.save(state), runs)
    if n <= 10_000:
        with tempfile.TemporaryDirectory() as tmp:
            plain = StateStore(Path(tmp) / "state.json", FixedClock())
            out["rewrite"] = median_save(plain.save, plain.save(state), max(3, runs // 10))
    if dsn is not None:
        from reconciler.state.postgres import PostgresStateStore
        from tests.pg_support import fresh_schema

        schema = fresh_schema(dsn, f"bench_{n}")
        pg = PostgresStateStore(dsn, schema=schema, clock=FixedClock())
        out["postgres"] = median_save(pg.save, pg.save(state), runs)
        pg.close()
        fresh_schema(dsn, f"bench_{n}")
    return out


def main(argv: list[str]) -> None:
    runs = 50
    if "--runs" in argv:
        at = argv.index("--runs")
        runs = int(argv[at + 1])
        del argv[at : at + 2]
    sizes = [int(a) for a in argv] or [1000, 10000, 50000]
    with postgres() as dsn:
        for n in sizes:
            figures = measure(n, runs, dsn)
            shown = ", ".join(f"{k} {v:.2f} ms" for k, v in figures.items())
            print(f"one save, {n:,} stocks in the state (median of {runs}): {shown}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
