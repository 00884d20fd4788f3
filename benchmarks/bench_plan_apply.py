"""Plan and apply at scale. Prints medians.

    .venv/bin/python benchmarks/bench_plan_apply.py [plan|refresh|apply ...]

- plan:    `plan --refresh=false` over N stocks (1k, 10k, 50k) whose state is in sync
           (loading the files, loading the state, planning); target for 10k: ≤ 5 s.
- refresh: plan refreshing 1,000 live stocks against the emulator on loopback with 50 ms added
           latency per request; target ≤ 5 s.
- apply:   apply sustaining the configured create rate (favor_create set to 600/min on both
           sides so the run takes seconds): achieved rate within 5 % and zero 429s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_plan_scale import measure as plan_in_child
from bench_plan_scale import setup as synced_project
from support import NOW, emulator, write_project, write_stocks

from reconciler import engine
from reconciler.applier import Applier
from reconciler.config import load_project
from reconciler.emulator import EmulatorSettings, Faults
from reconciler.emulator.settings import RateLimit
from reconciler.runtime import Clock, Runtime


def _context(root: Path, clock: Clock, read_state: bool = False) -> engine.Workspace:
    project, diagnostics = load_project(root / "reconciler.yaml")
    assert project is not None, diagnostics
    # The parse cache off: these figures are of a plan that parses every file (bench_plan_scale
    # measures the cache).
    runtime = Runtime(root, {"RECONCILER_CACHE_DIR": "off"}, clock)
    return engine.open_workspace(project, runtime, read_state=read_state)


def bench_plan(count: int, runs: int = 3) -> dict[str, float]:
    """Each plan in a fresh process with the parse cache off (as bench_plan_scale's "no
    cache"), so its peak memory is the plan's own, not the set-up's."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synced_project(root, count)
        samples = [plan_in_child("plan", root, "off") for _ in range(runs)]
    return {
        "seconds": statistics.median(s for s, _ in samples),
        "peak_rss_mb": max(peak for _, peak in samples),
    }


def bench_refresh(count: int = 1000, latency_ms: int = 50) -> dict[str, float]:
    """Favor stocks (detail documented at 500/s per merchant), the default client limits."""
    clock = Clock.starting_at(NOW)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_stocks(root / "stocks", count, kinds="favor")
        settings = EmulatorSettings(rate_limiting=False)
        emu, merchant = emulator(root, clock, settings)
        with emu.serve() as server:
            write_project(root, server.base_url, merchant, emu, "concurrency: 32\n")
            # Set-up only: create the stocks without waiting out 60 creates a minute.
            from reconciler.limits import Limit
            from reconciler.wechatpay.ratelimit import RateLimiter

            ctx = _context(root, clock)
            ctx.limiter = RateLimiter({"favor_create": Limit(100_000, 1.0)}, global_limits={})
            planned = engine.plan(ctx, "none")
            first = planned.plan
            state = planned.state
            clients = engine.clients_for(ctx, ["1900000001"])
            with ctx.store.lock("bench"):
                report = Applier(ctx.store, state, clients, clock.now, concurrency=32).apply(first)
            assert report.ok, report.results[:3]
            for c in clients.values():
                c.close()
            settings.rate_limiting = True
            emu.set_faults(Faults(latency_ms=latency_ms))
            samples = []
            for _ in range(3):
                ctx = _context(root, clock)  # default limits again
                emu.clear_request_log()
                start = time.perf_counter()
                planned = engine.plan(ctx, "all")
                plan = planned.plan
                samples.append(time.perf_counter() - start)
                assert not plan.has_changes
                throttled = sum(1 for e in emu.request_log if e.status == 429)
            emu.set_faults(Faults())
    return {"seconds": statistics.median(samples), "http_429": throttled}


def bench_apply(count: int = 100, per_minute: int = 600) -> dict[str, float]:
    clock = Clock.starting_at(NOW)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_stocks(root / "stocks", count, kinds="favor")
        settings = EmulatorSettings()
        settings.rate_limits["favor.create"] = RateLimit(per_minute, 60.0)
        emu, merchant = emulator(root, clock, settings)
        with emu.serve() as server:
            write_project(root, server.base_url, merchant, emu)
            (root / "reconciler.yaml").write_text(
                (root / "reconciler.yaml").read_text()
                + f"    rate_limits:\n      favor_create: {{count: {per_minute}, per_seconds: 60}}\n"
            )
            ctx = _context(root, clock)
            planned = engine.plan(ctx, "none")
            plan = planned.plan
            state = planned.state
            clients = engine.clients_for(ctx, ["1900000001"])
            emu.clear_request_log()
            start = time.perf_counter()
            with ctx.store.lock("bench"):
                report = Applier(ctx.store, state, clients, clock.now).apply(plan)
            elapsed = time.perf_counter() - start
            for c in clients.values():
                c.close()
            assert report.ok
            creates = [e for e in emu.request_log if e.path.endswith("/coupon-stocks")]
            throttled = sum(1 for e in emu.request_log if e.status == 429)
    # The token bucket starts full (one second's worth, `Limit.capacity`), then admits one create
    # per interval: the sustained rate is what follows the initial burst.
    from reconciler.limits import Limit

    burst = Limit(per_minute, 60.0).capacity
    rate = (len(creates) - burst) / elapsed * 60
    return {
        "configured_per_min": per_minute,
        "achieved_per_min": rate,
        "deviation_pct": (rate - per_minute) / per_minute * 100,
        "http_429": throttled,
        "seconds": elapsed,
        "burst": burst,
    }


def main() -> None:
    which = sys.argv[1:] or ["plan", "refresh", "apply"]
    if "plan" in which:
        print(f"{'plan --refresh=false':<28} {'stocks':>8} {'median':>9} {'peak RSS':>9}")
        for n in (1000, 10000):
            m = bench_plan(n)
            print(f"{'':<28} {n:>8,} {m['seconds']:>7.2f} s {m['peak_rss_mb']:>6.0f} MB")
    if "refresh" in which:
        m = bench_refresh()
        print(
            f"plan refreshing 1,000 live stocks, 50 ms latency, concurrency 32: {m['seconds']:.2f} s (median of 3), {m['http_429']} × 429"
        )
    if "apply" in which:
        m = bench_apply()
        print(
            f"apply 100 favor creates at {m['configured_per_min']}/min: sustained {m['achieved_per_min']:.0f}/min "
            f"({m['deviation_pct']:+.1f} %) after a burst of {m['burst']:.0f}, {m['http_429']} × 429, {m['seconds']:.1f} s"
        )


if __name__ == "__main__":
    main()
