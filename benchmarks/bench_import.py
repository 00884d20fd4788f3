"""`reconciler import favor` of 2,000 stocks against the emulator on loopback, 50 ms latency.

    .venv/bin/python benchmarks/bench_import.py [N]

The stocks are seeded into the emulator as made elsewhere (`reconciler.emulator.seed`), then
imported through the engine as the command does: the list (10 a page), then per stock its
detail and its merchants list, every call paced by the client's rate limiter against the
documented limits (list and detail 500/s, merchants 1000/min), which the emulator enforces
too. Prints the time, the calls made by endpoint and the 429s the emulator answered (target:
0), then checks that the next plan (no refresh) is empty. The merchants list at 1000/min
bounds the run: about 2 minutes for 2,000 stocks.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from support import NOW, emulator, write_project

from reconciler import engine
from reconciler.config import load_project
from reconciler.emulator import EmulatorSettings, Faults
from reconciler.emulator.samples import favor_create_body
from reconciler.emulator.seed import seed
from reconciler.engine.importing import ImportRequest, import_stocks
from reconciler.runtime import Clock, Runtime

MCHID = "1900000001"
LATENCY_MS = 50


def _stocks(count: int, now: float) -> list[dict[str, Any]]:
    base = favor_create_body(MCHID, now, "seed")
    out: list[dict[str, Any]] = []
    for i in range(count):
        body = copy.deepcopy(base)
        del body["out_request_no"]
        body["stock_name"] = f"bench {i:05d}"
        body["stock_use_rule"]["max_coupons"] += i
        body["stock_use_rule"]["max_amount"] = (
            body["stock_use_rule"]["max_coupons"]
            * body["coupon_use_rule"]["fixed_normal_coupon"]["coupon_amount"]
        )
        status = ("unactivated", "running", "paused")[i % 3]
        out.append({"kind": "favor", "merchant": MCHID, "status": status, "body": body})
    return out


def measure(count: int) -> dict[str, float]:
    """Seed `count` favor stocks, import them; the time, the 429s and whether the next plan
    is empty (1.0) or not (0.0)."""
    clock = Clock.starting_at(NOW)
    settings = EmulatorSettings(faults=Faults(latency_ms=LATENCY_MS))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "stocks").mkdir()
        emu, merchant = emulator(root, clock, settings)
        seed(emu, _stocks(count, clock.time()), clock.time())
        with emu.serve("127.0.0.1", 0) as server:
            write_project(root, server.base_url, merchant, emu)
            project, diagnostics = load_project(root / "reconciler.yaml")
            assert project is not None, diagnostics
            ws = engine.open_workspace(project, Runtime(root, {}, clock))
            emu.clear_request_log()
            started = time.perf_counter()
            result = import_stocks(ws, ImportRequest(kind="favor", merchant=MCHID))
            elapsed = time.perf_counter() - started
            log = emu.request_log
        calls = Counter(e.endpoint for e in log)
        print("calls: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=str)))
        ws = engine.open_workspace(project, Runtime(root, {}, clock))
        plan = engine.plan(ws, "none").plan
        assert len(result.files) == count
        return {
            "seconds": elapsed,
            "http_429": sum(1 for e in log if e.status == 429),
            "plan_empty": 0.0 if plan.has_changes else 1.0,
        }


def main(count: int) -> None:
    m = measure(count)
    print(f"import favor: {count} stocks in {m['seconds']:.1f} s ({LATENCY_MS} ms latency)")
    print(f"429 answers: {m['http_429']:.0f}")
    print(f"next plan (no refresh): {'empty' if m['plan_empty'] else 'HAS CHANGES'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
