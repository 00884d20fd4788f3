"""How much of an apply the state costs: 1,000 new 商家券 (busifavor) created against the
emulator on loopback HTTP (in a process of its own), with the create rate limit raised on both sides so the run is
bounded by the work, not by waiting. Prints medians.

    .venv/bin/python benchmarks/bench_state_apply.py [--runs R] [--stocks N] [--backend local|postgres|both]

The backend is instrumented: every `save` (and, for the local backend, the compaction when
the lock is released) is timed inside the run. Runs without any state and with the backend
take turns, in pairs (see `paired`). Target: state ≤ 10 % of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from support import NOW, emulator, write_project, write_stocks

from reconciler import engine
from reconciler.applier import Applier
from reconciler.config import load_project
from reconciler.emulator import Emulator, EmulatorSettings
from reconciler.emulator.settings import RateLimit
from reconciler.limits import Limit
from reconciler.runtime import Clock, Runtime
from reconciler.state.backend import StateBackend
from reconciler.state.model import State
from reconciler.wechatpay.ratelimit import RateLimiter

RATE = 1_000_000  # creates per minute, both sides: nothing waits for the bucket


class Timed:
    """A backend whose saves (with their group-commit waits) and compaction are timed as
    wall time during which at least one thread was in them: overlapping waits count once."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.saves = 0
        self._guard = threading.Lock()
        self._active = 0
        self._since = 0.0
        if hasattr(inner, "save_deferred"):
            self.save_deferred = self._save_deferred

    def _enter(self) -> None:
        with self._guard:
            if self._active == 0:
                self._since = time.perf_counter()
            self._active += 1

    def _leave(self) -> None:
        with self._guard:
            self._active -= 1
            if self._active == 0:
                self.seconds += time.perf_counter() - self._since

    def save(self, state: State, *, previous: State | None = None) -> State:
        self._enter()
        try:
            self.saves += 1
            return self.inner.save(state, previous=previous)  # type: ignore[no-any-return]
        finally:
            self._leave()

    def _save_deferred(
        self, state: State, *, previous: State | None = None
    ) -> tuple[State, Callable[[], None]]:
        self._enter()
        try:
            self.saves += 1
            written, durable = self.inner.save_deferred(state, previous=previous)
        except BaseException:
            self._leave()
            raise

        def wait() -> None:
            try:
                durable()
            finally:
                self._leave()

        return written, wait

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[object]:
        compact = getattr(self.inner, "compact", None)
        if compact is not None:
            with self.inner.lock(command) as info:
                yield info
                # Compacted here, timed, so the release finds nothing left to do.
                self._enter()
                try:
                    compact()
                finally:
                    self._leave()
        else:
            with self.inner.lock(command) as info:
                yield info

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class InMemory:
    """No state cost at all: what the run takes without a backend (the baseline)."""

    location = "memory"

    def save(self, state: State, *, previous: State | None = None) -> State:
        return state.model_copy(update={"serial": state.serial + 1})

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        yield None

    def close(self) -> None:
        """Nothing to release."""


def _serve(emu: Emulator, conn: Connection) -> None:
    """The emulator's process: serve until told to stop; answer how many creates it took."""
    with emu.serve() as server:
        conn.send(server.base_url)
        while conn.recv() == "count":
            conn.send(
                sum(1 for e in emu.request_log if e.path.endswith("/stocks") and e.status == 200)
            )


@contextlib.contextmanager
def served_apart(emu: Emulator) -> Iterator[tuple[str, Callable[[], int]]]:
    """The emulator in a process of its own, as WeChat Pay is elsewhere: its signing and JSON
    work do not take the interpreter lock from the run's threads (in one process, each state
    commit waited milliseconds for the lock between its round trips). Yields the base URL and
    a function that counts the creates it answered with 200."""
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(emu, theirs), daemon=True)
    process.start()
    theirs.close()  # so that a child that dies unstarted is an EOFError here, not a hang
    try:
        base_url = mine.recv()

        def created() -> int:
            mine.send("count")
            return int(mine.recv())

        yield base_url, created
    finally:
        with contextlib.suppress(OSError):
            mine.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


def run_once(count: int, backend: str, dsn: str | None) -> dict[str, float]:
    clock = Clock.starting_at(NOW)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_stocks(root / "stocks", count, kinds="busifavor")
        settings = EmulatorSettings()
        settings.rate_limits["busifavor.create"] = RateLimit(RATE, 60.0)
        emu, merchant = emulator(root, clock, settings)
        with served_apart(emu) as (base_url, creates_answered):
            write_project(root, base_url, merchant, emu, "concurrency: 16\n")
            project, diagnostics = load_project(root / "reconciler.yaml")
            assert project is not None, diagnostics
            ws = engine.open_workspace(project, Runtime(root, {}, clock))
            ws.limiter = RateLimiter({"busifavor_create": Limit(RATE, 60.0)})
            store: StateBackend = ws.store
            if backend == "none":
                store = InMemory()  # type: ignore[assignment]
            elif backend == "postgres":
                from reconciler.state.postgres import PostgresStateStore
                from tests.pg_support import fresh_schema

                assert dsn is not None
                schema = fresh_schema(dsn, "bench_apply")
                store = PostgresStateStore(dsn, schema=schema, clock=clock)
            planned = engine.plan(ws, "none")
            state = (
                State.new("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab")
                if backend == "none"
                else store.load(create_if_missing=True)
            )
            clients = engine.clients_for(ws, ["1900000001"])
            timed = Timed(store)
            start = time.perf_counter()
            with timed.lock("bench"):
                report = Applier(timed, state, clients, clock.now, concurrency=16).apply(  # type: ignore[arg-type]
                    planned.plan
                )
            total = time.perf_counter() - start
            for c in clients.values():
                c.close()
            assert report.ok, report.results[:3]
            created = creates_answered()
            store.close()
    return {
        "total": total,
        "state": timed.seconds,
        "saves": timed.saves,
        "share": timed.seconds / total * 100,
        "created": created,
    }


def paired(count: int, runs: int, backend: str, dsn: str | None) -> dict[str, Any]:
    """`runs` pairs of runs, one without any state and one with `backend`, taking turns so
    that each pair shares the machine's load of the moment. The state's share of a pair is
    (with − without) / with; the median pair is the figure, with the range beside it (a
    share is a difference of two noisy runs of about ten seconds)."""
    pairs = []
    for _ in range(runs):
        without = run_once(count, "none", None)
        with_state = run_once(count, backend, dsn)
        pairs.append((without, with_state))
    shares = sorted((w["total"] - n["total"]) / w["total"] * 100 for n, w in pairs)
    return {
        "share": statistics.median(shares),
        "low": shares[0],
        "high": shares[-1],
        "with": statistics.median(w["total"] for _, w in pairs),
        "without": statistics.median(n["total"] for n, _ in pairs),
        "saves": statistics.median(w["saves"] for _, w in pairs),
        "busy": statistics.median(w["share"] for _, w in pairs),
        "created": min(w["created"] for _, w in pairs),
    }


def share(count: int, runs: int) -> dict[str, float]:
    """The local state's share of applying `count` creates (`paired`)."""
    return paired(count, runs, "local", None)


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    from bench_state_backends import postgres as started

    with started() as dsn:
        yield dsn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="pairs of runs")
    parser.add_argument("--stocks", type=int, default=1000)
    parser.add_argument("--backend", choices=["local", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["local", "postgres"] if args.backend == "both" else [args.backend]
    with postgres() if "postgres" in backends else contextlib.nullcontext() as dsn:
        for backend in backends:
            if backend == "postgres" and dsn is None:
                print("postgres: skipped (no PostgreSQL)")
                continue
            m = paired(args.stocks, args.runs, backend, dsn)
            print(
                f"apply {args.stocks:,} new busifavor stocks, {backend} state, {args.runs} pairs "
                f"of runs without and with it (medians): {m['without']:.2f} s / "
                f"{m['with']:.2f} s, {m['saves']:.0f} saves; the state's share of a pair "
                f"{m['share']:.1f} % (from {m['low']:.1f} to {m['high']:.1f} %); some save or "
                f"its fsync under way {m['busy']:.0f} % of the time ({m['created']:.0f} creates "
                "answered 200)",
                flush=True,
            )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
