"""Run every benchmark of the project and print one table of medians.

    benchmarks/run            # the full set (several minutes on 2 cores)
    benchmarks/run --quick    # smaller counts, for a smoke check

Each figure is a median of repeated runs; the machines are shared, so compare medians only.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_client  # noqa: E402
import bench_import  # noqa: E402
import bench_merchants  # noqa: E402
import bench_plan_apply  # noqa: E402
import bench_plan_scale  # noqa: E402
import bench_state_apply  # noqa: E402
import bench_validate  # noqa: E402


def main() -> None:
    quick = "--quick" in sys.argv
    rows: list[tuple[str, str]] = []

    def row(name: str, figure: str) -> None:
        rows.append((name, figure))
        print(f"  … {name}: {figure}", file=sys.stderr, flush=True)

    for n in (1000, 10000) if quick else (1000, 10000, 50000):
        m = bench_validate.measure(n, runs=1 if quick or n > 10000 else 3)
        row(
            f"validate {n:,} files",
            f"{m['validate_s']:.2f} s ({m['per_file_ms']:.2f} ms/file), peak {m['peak_rss_mb']:.0f} MB",
        )
    for n in (1000, 10000) if quick else (1000, 10000, 50000):
        m = bench_plan_apply.bench_plan(n, runs=1 if quick or n > 10000 else 3)
        row(
            f"plan {n:,} stocks, --refresh=false",
            f"{m['seconds']:.2f} s, peak {m['peak_rss_mb']:.0f} MB",
        )
    scales = bench_plan_scale.bench([10000] if quick else [10000, 50000], runs=1 if quick else 3)
    for n, m in scales.items():
        row(
            f"plan {n:,} stocks: bare CSafeLoader read / no cache / warm cache, 1 file changed",
            f"{m['bare']:.2f} / {m['cold']:.2f} / {m['warm']:.2f} s, peak {m['peak']:.0f} MB",
        )
    m = bench_plan_apply.bench_refresh(200 if quick else 1000)
    row(
        f"plan refreshing {200 if quick else 1000:,} live stocks, 50 ms latency",
        f"{m['seconds']:.2f} s, {m['http_429']:.0f} × 429",
    )
    m = bench_client.run(200 if quick else 1000)
    row(
        f"{200 if quick else 1000:,} detail queries, 50 ms latency",
        f"sequential {m['sequential']:.1f} s, concurrent {m['concurrent']:.2f} s ({m['speedup']:.0f}×)",
    )
    m = bench_import.measure(200 if quick else 2000)
    row(
        f"import favor, {200 if quick else 2000:,} stocks, 50 ms latency",
        f"{m['seconds']:.1f} s, {m['http_429']:.0f} × 429, next plan {'empty' if m['plan_empty'] else 'NOT empty'}",
    )
    m = bench_plan_apply.bench_apply(50 if quick else 100)
    row(
        "apply favor creates at 600/min",
        f"sustained {m['achieved_per_min']:.0f}/min ({m['deviation_pct']:+.1f} %), {m['http_429']:.0f} × 429",
    )
    # Minutes at the documented 60/min; --quick runs 20 creates per merchant.
    creates = 20 if quick else 150
    one = bench_merchants.run(1, creates)
    row(
        f"apply 1 merchant × {creates} favor creates at 60/min",
        f"{one['per_minute']:.1f}/min ({one['per_minute'] / 60 * 100:.1f} %), {one['http_429']:.0f} × 429",
    )
    many = bench_merchants.run(4, creates)
    row(
        f"apply 4 merchants × {creates} favor creates at 60/min",
        f"{many['seconds']:.1f} s ({many['seconds'] / one['seconds']:.3f}× one merchant), {many['http_429']:.0f} × 429",
    )
    m = bench_state_apply.share(200 if quick else 1000, runs=1 if quick else 5)
    row(
        f"apply {200 if quick else 1000:,} busifavor creates: state's share of the run",
        f"{m['share']:.1f} % (pairs {m['low']:.1f} to {m['high']:.1f} %; {m['with']:.2f} s with "
        f"the local state, {m['without']:.2f} s without)",
    )
    signing = subprocess.run(
        [sys.executable, str(HERE / "bench_signing.py"), "--runs", "300" if quick else "2000"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in signing.stdout.splitlines():
        label, _, rest = line.partition(" median ")
        if label.startswith(("sign + send + verify", "WeChatPayClient.busifavor_create")):
            row(f"client cost per request: {label.strip()}", rest.split("p90")[0].strip())

    width = max(len(n) for n, _ in rows)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    )
    print(f"| {'benchmark':<{width}} | median |")
    print(f"|{'-' * (width + 2)}|--------|")
    for name, figure in rows:
        print(f"| {name:<{width}} | {figure} |")


if __name__ == "__main__":
    main()
