"""Validate N generated stock files; prints wall time (median of runs) and peak memory, without
and with the service-provider rules (as `reconciler validate` beside a reconciler.yaml that
declares sub_merchants: the rules run on each file as it is read).

    .venv/bin/python benchmarks/bench_validate.py            # 1,000 and 10,000 files
    .venv/bin/python benchmarks/bench_validate.py 50000      # any counts

Each run happens in a fresh subprocess so peak RSS is per count, not cumulative.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = (ROOT / "stocks" / "favor" / "spring-sale-10-off-100.yaml").read_text(encoding="utf-8")
BUSI = (ROOT / "stocks" / "busifavor" / "member-day-latte-8-off.yaml").read_text(encoding="utf-8")

CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from reconciler.loader import load_stocks
from reconciler.spec.rules_partner import Partners, Relation
subs = {f"19001000{i:02d}": f"store {i}" for i in range(20)}
partners = Partners({"1900000001": Relation(subs)}) if sys.argv[3] == "partners" else None
t1 = time.perf_counter()
r = load_stocks([Path(sys.argv[1])], base=Path(sys.argv[1]), keep=False, partners=partners)
t2 = time.perf_counter()
assert r.ok and r.valid == int(sys.argv[2]), (r.valid, r.diagnostics[:3])
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it can show the parent's peak.
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"import": t1 - t0, "validate": t2 - t1,
                  "peak_rss_mb": int(peak.split()[1]) / 1024}))
"""


def generate(directory: Path, count: int) -> None:
    for i in range(count):
        sub = directory / f"team-{i % 50:02d}"
        sub.mkdir(exist_ok=True)
        template = TEMPLATE if i % 2 == 0 else BUSI
        old_id = "spring-sale-10-off-100" if i % 2 == 0 else "member-day-latte-8-off"
        text = template.replace(f"id: {old_id}", f"id: stock-{i:06d}")
        # distinct specs (as in a real repository), so the duplicate-spec check does real work
        text = text.replace("max_coupons: 20000", f"max_coupons: {20000 + i}").replace(
            "max_amount: 20000000 ", f"max_amount: {(20000 + i) * 1000} "
        )
        if template is BUSI:
            text = text.replace("max_coupons: 50000", f"max_coupons: {50000 + i}")
        (sub / f"stock-{i:06d}.yaml").write_text(text, encoding="utf-8")


def measure(count: int, runs: int, mode: str = "none") -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), count)
        samples = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, tmp, str(count), mode],
                check=True,
                capture_output=True,
                text=True,
            )
            samples.append(json.loads(out.stdout))
    return {
        "validate_s": statistics.median(s["validate"] for s in samples),
        "per_file_ms": statistics.median(s["validate"] for s in samples) / count * 1000,
        "peak_rss_mb": statistics.median(s["peak_rss_mb"] for s in samples),
    }


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    print(
        f"{'files':>8} {'partner rules':>14} {'validate (median)':>18} {'per file':>10} {'peak RSS':>10}"
    )
    for count in counts:
        for mode in ("none", "partners"):
            m = measure(count, 3 if count <= 10000 else 1, mode)
            print(
                f"{count:>8,} {'yes' if mode == 'partners' else 'no':>14}"
                f" {m['validate_s']:>16.2f} s {m['per_file_ms']:>7.3f} ms {m['peak_rss_mb']:>7.0f} MB"
            )


if __name__ == "__main__":
    main()
