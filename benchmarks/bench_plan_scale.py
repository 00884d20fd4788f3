"""`plan --refresh=false` at scale against a bare C-parser read of the same files, with and
without the parse cache. Prints medians and same-run ratios.

    .venv/bin/python benchmarks/bench_plan_scale.py [N ...] [--runs R]

For each N (default 10,000 and 50,000) stocks whose state is in sync, each measurement runs
in a fresh process (so its peak memory is its own), and the sizes take turns, round by round:
- bare:  read every file and yaml.load it with CSafeLoader (PyYAML's libyaml binding), nothing
         else: the floor any YAML-based tool pays;
- cold:  the plan with the parse cache off (RECONCILER_CACHE_DIR=off);
- warm:  the plan with a warm parse cache and one file changed since it was written.
Targets: cold or warm 10k ≤ 1.3 × bare; 50k ≤ 5.5 × 10k, peak ≤ 600 MB; warm 10k ≤ 1 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import NOW, emulator, peak_rss_mb, write_project, write_stocks  # noqa: E402

from reconciler import engine  # noqa: E402
from reconciler.config import load_project  # noqa: E402
from reconciler.ids import body_digest  # noqa: E402
from reconciler.kinds import kind_of  # noqa: E402
from reconciler.runtime import Clock, Runtime  # noqa: E402
from reconciler.state.model import State, StockState  # noqa: E402
from reconciler.state.store import StateStore  # noqa: E402


def setup(root: Path, count: int) -> None:
    """N stock files and a state in sync with them."""
    clock = Clock.starting_at(NOW)
    write_stocks(root / "stocks", count)
    emu, merchant = emulator(root, clock)
    write_project(root, "http://127.0.0.1:9", merchant, emu)
    project, diagnostics = load_project(root / "reconciler.yaml")
    assert project is not None, diagnostics
    ws = engine.open_workspace(project, Runtime(root, {"RECONCILER_CACHE_DIR": "off"}, clock))
    stocks = {}
    for i, loaded in enumerate(ws.desired):
        s = loaded.stock
        entry = StockState.new(s.id, s.kind, s.merchant)
        body = kind_of(s.kind).create_body(s, entry.out_request_no)
        stocks[s.id] = entry.model_copy(
            update={
                "stock_id": str(10_000_000 + i),
                "sent_body": body,
                "sent_digest": body_digest(body),
                "created_at": clock.now(),
            }
        )
    state = State(lineage="6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab", serial=0, stocks=stocks)
    StateStore(root / "state.json", clock).save(state)


def child_bare(root: Path) -> None:
    import yaml  # type: ignore[import-untyped]

    count = 0
    for dirpath, _, filenames in os.walk(root / "stocks"):
        for name in filenames:
            if name.endswith(".yaml"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    yaml.load(f.read(), Loader=yaml.CSafeLoader)
                count += 1
    assert count


def child_plan(root: Path) -> None:
    clock = Clock.starting_at(NOW)
    project, diagnostics = load_project(root / "reconciler.yaml")
    assert project is not None, diagnostics
    ws = engine.open_workspace(project, Runtime(root, dict(os.environ), clock), read_state=True)
    plan = engine.plan(ws, "none").plan
    assert not plan.has_changes, [c.action for c in plan.changes if c.operations][:3]


def measure(what: str, root: Path, cache: str) -> tuple[float, float]:
    """(seconds, peak MB) of one measurement in a fresh process."""
    env = {**os.environ, "RECONCILER_CACHE_DIR": cache}
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, str(root)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return figures["seconds"], figures["peak_mb"]


def touch_one(root: Path, round: int) -> None:
    """Change one file the way an edit does (its comment), so exactly one entry misses."""
    path = next((root / "stocks").rglob("*.yaml"))
    text = path.read_text(encoding="utf-8")
    marker = "# edited "
    lines = [line for line in text.splitlines() if not line.startswith(marker)]
    path.write_text("\n".join([f"{marker}{round}", *lines]) + "\n", encoding="utf-8")


def bench(sizes: list[int], runs: int) -> dict[int, dict[str, float]]:
    """Medians per size. The sizes' runs take turns (round r measures every size before round
    r + 1 starts), so a ratio between sizes compares runs of the same minutes."""
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for n in sizes:
            root = roots[n] = Path(tmp) / str(n)
            root.mkdir()
            setup(root, n)
            measure("plan", root, str(root / "cache"))  # fills the cache (and the page cache)
        found: dict[int, dict[str, list[float]]] = {
            n: {"bare": [], "cold": [], "warm": [], "peak": []} for n in sizes
        }
        for r in range(runs):
            for n in sizes:
                root, mine = roots[n], found[n]
                mine["bare"].append(measure("bare", root, "off")[0])
                seconds, peak = measure("plan", root, "off")
                mine["cold"].append(seconds)
                mine["peak"].append(peak)
                touch_one(root, r)
                seconds, peak = measure("plan", root, str(root / "cache"))
                mine["warm"].append(seconds)
                mine["peak"].append(peak)
    return {
        n: {k: max(v) if k == "peak" else statistics.median(v) for k, v in mine.items()}
        for n, mine in found.items()
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        start = time.perf_counter()
        {"bare": child_bare, "plan": child_plan}[argv[1]](Path(argv[2]))
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))
        return
    runs = 3
    if "--runs" in argv:
        at = argv.index("--runs")
        runs = int(argv[at + 1])
        del argv[at : at + 2]
    sizes = [int(a) for a in argv] or [10_000, 50_000]
    results = bench(sizes, runs)
    for n, m in results.items():
        print(
            f"plan --refresh=false, {n:,} stocks (median of {runs}): bare CSafeLoader read "
            f"{m['bare']:.2f} s; plan, no cache {m['cold']:.2f} s ({m['cold'] / m['bare']:.2f}× "
            f"bare); warm cache, one file changed {m['warm']:.2f} s "
            f"({m['warm'] / m['bare']:.2f}× bare); peak {m['peak']:.0f} MB",
            flush=True,
        )
    if 10_000 in results and 50_000 in results:
        small, large = results[10_000], results[50_000]
        print(
            f"50k / 10k: no cache {large['cold'] / small['cold']:.2f}×, warm cache "
            f"{large['warm'] / small['warm']:.2f}× (bare read {large['bare'] / small['bare']:.2f}×)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
