"""How much of an apply the state costs: 1,000 new 商家券 (busifavor) created against the
emulator on loopback HTTP, with the create rate limit raised on both sides so the run is
bounded by the work, not by waiting. Prints medians.

    .venv/bin/python benchmarks/bench_state_apply.py [--runs R] [--stocks N] [--backend local|postgres|both]

The backend is instrumented: every `save` (and, for the local backend, the compaction when
the lock is released) is timed inside the run. Target: state ≤ 10 % of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from support import NOW, emulator, write_project, write_stocks

from reconciler import engine
from reconciler.applier import Applier
from reconciler.config import load_project
from reconciler.emulator import EmulatorSettings
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


def run_once(count: int, backend: str, dsn: str | None) -> dict[str, float]:
    clock = Clock.starting_at(NOW)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_stocks(root / "stocks", count, kinds="busifavor")
        settings = EmulatorSettings()
        settings.rate_limits["busifavor.create"] = RateLimit(RATE, 60.0)
        emu, merchant = emulator(root, clock, settings)
        with emu.serve() as server:
            write_project(root, server.base_url, merchant, emu, "concurrency: 16\n")
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
            created = sum(
                1 for e in emu.request_log if e.path.endswith("/stocks") and e.status == 200
            )
            store.close()
    return {
        "total": total,
        "state": timed.seconds,
        "saves": timed.saves,
        "share": timed.seconds / total * 100,
        "created": created,
    }


def share(count: int, runs: int) -> dict[str, float]:
    """The local state's share of applying `count` creates: medians with and without it."""
    without = statistics.median(run_once(count, "none", None)["total"] for _ in range(runs))
    with_state = statistics.median(run_once(count, "local", None)["total"] for _ in range(runs))
    return {
        "with": with_state,
        "without": without,
        "share": (with_state - without) / with_state * 100,
    }


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    from bench_state_backends import postgres as started

    with started() as dsn:
        yield dsn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stocks", type=int, default=1000)
    parser.add_argument("--backend", choices=["local", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["local", "postgres"] if args.backend == "both" else [args.backend]
    baseline = [run_once(args.stocks, "none", None)["total"] for _ in range(args.runs)]
    bare = statistics.median(baseline)
    print(f"apply {args.stocks:,} new busifavor stocks, no state at all: {bare:.2f} s", flush=True)
    with postgres() if "postgres" in backends else contextlib.nullcontext() as dsn:
        for backend in backends:
            if backend == "postgres" and dsn is None:
                print("postgres: skipped (no PostgreSQL)")
                continue
            runs = [run_once(args.stocks, backend, dsn) for _ in range(args.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"apply {args.stocks:,} new busifavor stocks, {backend} state (median of "
                f"{args.runs}): run {med['total']:.2f} s, {med['saves']:.0f} saves; state cost "
                f"{med['total'] - bare:+.2f} s = {(med['total'] - bare) / med['total'] * 100:.1f} % "
                f"of the run; some save or its fsync under way {med['share']:.0f} % of the time "
                f"({med['created']:.0f} creates answered 200)",
                flush=True,
            )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
